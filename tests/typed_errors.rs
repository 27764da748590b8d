//! Every bad input yields its own typed error, and no input — including
//! random bytes and mutated real models — makes the loader panic.

mod common;

use common::{f32_initializer, model_bytes, node, tiny_logistic, value};
use tickscore::{
    InputPolicy, LoadError, LoadOptions, Model, NonFiniteKind, NonFinitePolicy, ScoreError,
};

fn load(bytes: &[u8]) -> Result<Model, LoadError> {
    Model::from_bytes(bytes, &LoadOptions::default())
}

#[test]
fn the_synthetic_model_itself_loads_and_scores() {
    let model = load(&tiny_logistic()).expect("tiny model loads");
    let mut out = [0f32];
    model
        .scorer()
        .unwrap()
        .score(&[1.0, 0.0, 0.0], &mut out)
        .unwrap();
    let want = 1.0 / (1.0 + (-(0.5f32 + 0.25)).exp());
    assert!((out[0] - want).abs() < 1e-6, "{} vs {want}", out[0]);
}

#[test]
fn missing_file_is_io() {
    let err = Model::load("/nonexistent/model.onnx", &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, LoadError::Io { .. }), "{err}");
}

#[test]
fn garbage_empty_and_truncated_files_are_malformed() {
    for (what, bytes) in [
        (
            "garbage",
            b"this is not a protobuf \xff\xfe\x00\x01".to_vec(),
        ),
        ("empty", Vec::new()),
        ("truncated", {
            let real = std::fs::read(common::model_path("german_mlp")).unwrap();
            real[..real.len() / 2].to_vec()
        }),
    ] {
        let err = load(&bytes).unwrap_err();
        assert!(matches!(err, LoadError::Malformed(_)), "{what}: {err}");
    }
}

#[test]
fn oversized_file_is_refused_before_parsing() {
    let options = LoadOptions {
        max_model_bytes: 100,
        ..LoadOptions::default()
    };
    let err = Model::load(common::model_path("german_mlp"), &options).unwrap_err();
    assert!(
        matches!(err, LoadError::TooLarge { limit: 100, .. }),
        "{err}"
    );
}

#[test]
fn unsupported_operator_is_named() {
    let bytes = model_bytes(
        vec![
            node("FancyScore", "com.example", &["x"], &["z"]),
            node("Sigmoid", "", &["z"], &["score"]),
        ],
        vec![value("x", 1, &[None, Some(3)])],
        vec![value("score", 1, &[None, Some(1)])],
        vec![],
    );
    match load(&bytes).unwrap_err() {
        LoadError::UnsupportedOperator {
            op_type, domain, ..
        } => {
            assert_eq!(
                (op_type.as_str(), domain.as_str()),
                ("FancyScore", "com.example")
            );
        }
        other => panic!("expected UnsupportedOperator, got {other}"),
    }
}

#[test]
fn unsupported_operator_off_the_scoring_path_does_not_block() {
    // A label branch with an unknown op, as some converters emit.
    let mut bytes_nodes = vec![
        node("MatMul", "", &["x", "w"], &["score"]),
        node("FancyLabel", "com.example", &["score"], &["label"]),
    ];
    bytes_nodes[1].name = "label_node".into();
    let bytes = model_bytes(
        bytes_nodes,
        vec![value("x", 1, &[None, Some(2)])],
        vec![
            value("label", 7, &[None]),
            value("score", 1, &[None, Some(1)]),
        ],
        vec![f32_initializer("w", &[2, 1], &[1.0, 2.0])],
    );
    let model = load(&bytes).expect("loads");
    let mut out = [0f32];
    model
        .scorer()
        .unwrap()
        .score(&[3.0, 4.0], &mut out)
        .unwrap();
    assert_eq!(out[0], 11.0);
}

#[test]
fn inputs_that_are_not_one_f32_matrix_are_refused() {
    let int_input = model_bytes(
        vec![node("Cast", "", &["x"], &["score"])],
        vec![value("x", 7, &[None, Some(3)])],
        vec![value("score", 1, &[None, Some(3)])],
        vec![],
    );
    let two_inputs = model_bytes(
        vec![node("Add", "", &["x", "y"], &["score"])],
        vec![
            value("x", 1, &[None, Some(3)]),
            value("y", 1, &[None, Some(3)]),
        ],
        vec![value("score", 1, &[None, Some(3)])],
        vec![],
    );
    let unknown_width = model_bytes(
        vec![node("Sigmoid", "", &["x"], &["score"])],
        vec![value("x", 1, &[None, None])],
        vec![value("score", 1, &[None, None])],
        vec![],
    );
    for (what, bytes) in [
        ("int64", int_input),
        ("two inputs", two_inputs),
        ("unknown width", unknown_width),
    ] {
        let err = load(&bytes).unwrap_err();
        assert!(
            matches!(err, LoadError::UnsupportedInput(_)),
            "{what}: {err}"
        );
    }
}

#[test]
fn expected_width_mismatch_is_typed() {
    let options = LoadOptions {
        expect_width: Some(60),
        ..LoadOptions::default()
    };
    let err = Model::load(common::model_path("german_logreg"), &options).unwrap_err();
    assert!(
        matches!(
            err,
            LoadError::InputWidthMismatch {
                expected: 60,
                model: 61
            }
        ),
        "{err}"
    );
}

#[test]
fn model_without_float_output_has_no_score() {
    let bytes = model_bytes(
        vec![node("ArgMax", "", &["x"], &["label"])],
        vec![value("x", 1, &[None, Some(3)])],
        vec![value("label", 7, &[None, Some(1)])],
        vec![],
    );
    let err = load(&bytes).unwrap_err();
    assert!(matches!(err, LoadError::NoScoreOutput(_)), "{err}");
}

#[test]
fn scoring_errors_are_typed_and_leave_the_output_untouched() {
    let model = load(&tiny_logistic()).unwrap();
    let mut scorer = model.scorer().unwrap();
    let mut out = [42f32];
    assert_eq!(
        scorer.score(&[1.0, 2.0], &mut out),
        Err(ScoreError::WidthMismatch {
            expected: 3,
            got: 2
        })
    );
    assert_eq!(
        scorer.score(&[1.0, 2.0, 3.0], &mut []),
        Err(ScoreError::OutputMismatch {
            expected: 1,
            got: 0
        })
    );
    for (value, kind) in [
        (f32::NAN, NonFiniteKind::NaN),
        (f32::INFINITY, NonFiniteKind::PosInf),
        (f32::NEG_INFINITY, NonFiniteKind::NegInf),
    ] {
        assert_eq!(
            scorer.score(&[0.0, value, 0.0], &mut out),
            Err(ScoreError::NonFinite {
                row: 0,
                column: 1,
                kind
            })
        );
    }
    assert_eq!(out, [42.0], "output untouched on error");

    // Batch: the third row is bad; nothing is written.
    let rows = [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, f32::NAN];
    let mut batch_out = [7f32; 3];
    assert_eq!(
        scorer.score_batch(&rows, &mut batch_out),
        Err(ScoreError::NonFinite {
            row: 2,
            column: 2,
            kind: NonFiniteKind::NaN
        })
    );
    assert_eq!(batch_out, [7.0; 3]);
}

#[test]
fn a_pass_policy_lets_nan_reach_the_model() {
    let options = LoadOptions {
        input_policy: InputPolicy {
            nan: NonFinitePolicy::Pass,
            infinite: NonFinitePolicy::Reject,
        },
        ..LoadOptions::default()
    };
    let model = Model::from_bytes(&tiny_logistic(), &options).unwrap();
    let mut scorer = model.scorer().unwrap();
    let mut out = [0f32];
    scorer.score(&[f32::NAN, 0.0, 0.0], &mut out).unwrap();
    assert!(out[0].is_nan(), "NaN propagates like onnxruntime");
    assert!(matches!(
        scorer.score(&[f32::INFINITY, 0.0, 0.0], &mut out),
        Err(ScoreError::NonFinite {
            kind: NonFiniteKind::PosInf,
            ..
        })
    ));
}

/// xorshift64*: deterministic, dependency-free randomness.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

#[test]
fn random_bytes_and_mutated_models_never_panic() {
    let mut rng = 0x1234_5678_9ABC_DEF1u64;
    let mut refused = 0;
    for _ in 0..3000 {
        let len = (next(&mut rng) % 512) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| next(&mut rng) as u8).collect();
        if load(&bytes).is_err() {
            refused += 1;
        }
    }
    assert!(
        refused > 2900,
        "random bytes were accepted {} times",
        3000 - refused
    );

    // Byte flips and cuts of real models exercise deeper parser paths.
    for name in ["german_logreg", "german_mlp"] {
        let real = std::fs::read(common::model_path(name)).unwrap();
        for _ in 0..300 {
            let mut bytes = real.clone();
            for _ in 0..1 + next(&mut rng) % 8 {
                let at = (next(&mut rng) as usize) % bytes.len();
                bytes[at] ^= 1 << (next(&mut rng) % 8);
            }
            if next(&mut rng) % 4 == 0 {
                bytes.truncate((next(&mut rng) as usize) % bytes.len());
            }
            // Either outcome is fine; a loaded model must also score safely.
            if let Ok(model) = load(&bytes) {
                let w = model.info().input_width;
                let mut out = vec![0f32; model.info().score_width];
                let _ = model.scorer().map(|mut s| s.score(&vec![0.5; w], &mut out));
            }
        }
    }
}

/// Inputs the fuzzers (fuzz/) once crashed on, kept as ordinary tests: each
/// must now be refused with a precise typed error, not a contained panic.
#[test]
fn fuzzer_findings_are_typed_errors() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz");
    // A graph output that no node produces: tract's importer indexed a map
    // with it and panicked.
    let bytes = std::fs::read(dir.join("model_bytes-output-without-producer.onnx")).unwrap();
    let err = load(&bytes).unwrap_err();
    assert!(
        matches!(err, LoadError::Malformed(ref m) if m.contains("produced by nothing")),
        "{err}"
    );

    let dangling_input = model_bytes(
        vec![node("Sigmoid", "", &["ghost"], &["score"])],
        vec![value("x", 1, &[None, Some(3)])],
        vec![value("score", 1, &[None, Some(3)])],
        vec![],
    );
    let err = load(&dangling_input).unwrap_err();
    assert!(
        matches!(err, LoadError::Malformed(ref m) if m.contains("\"ghost\"")),
        "{err}"
    );
}
