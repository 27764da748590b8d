//! Tree ensembles: semantics on a hand-built ensemble (thresholds, NaN
//! routing, base values, logistic), and a typed refusal for every kind of
//! malformed ensemble.

mod common;

use common::{model_bytes, value};
use tickscore::{InputPolicy, LoadError, LoadOptions, Model, NonFinitePolicy};
use tract_onnx::pb;

fn ints(name: &str, v: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: 7,
        ints: v.to_vec(),
        ..Default::default()
    }
}
fn floats(name: &str, v: &[f32]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: 6,
        floats: v.to_vec(),
        ..Default::default()
    }
}
fn strings(name: &str, v: &[&str]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: 8,
        strings: v.iter().map(|s| s.as_bytes().to_vec()).collect(),
        ..Default::default()
    }
}
fn string(name: &str, v: &str) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: 3,
        s: v.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// One tree: x[1] <= 2.5 (NaN goes true) ? leaf 1 (w = 1.5) : leaf 2 (w = -0.5);
/// base value 0.25; LOGISTIC; binary labels [0, 1]; two input features.
fn attributes() -> Vec<pb::AttributeProto> {
    vec![
        ints("nodes_treeids", &[0, 0, 0]),
        ints("nodes_nodeids", &[0, 1, 2]),
        ints("nodes_featureids", &[1, 0, 0]),
        strings("nodes_modes", &["BRANCH_LEQ", "LEAF", "LEAF"]),
        floats("nodes_values", &[2.5, 0.0, 0.0]),
        ints("nodes_truenodeids", &[1, 0, 0]),
        ints("nodes_falsenodeids", &[2, 0, 0]),
        ints("nodes_missing_value_tracks_true", &[1, 0, 0]),
        ints("class_treeids", &[0, 0]),
        ints("class_nodeids", &[1, 2]),
        ints("class_ids", &[0, 0]),
        floats("class_weights", &[1.5, -0.5]),
        floats("base_values", &[0.25]),
        ints("classlabels_int64s", &[0, 1]),
        string("post_transform", "LOGISTIC"),
    ]
}

fn ensemble(attrs: Vec<pb::AttributeProto>) -> Vec<u8> {
    let mut node = common::node(
        "TreeEnsembleClassifier",
        "ai.onnx.ml",
        &["x"],
        &["label", "probabilities"],
    );
    node.attribute = attrs;
    model_bytes(
        vec![node],
        vec![value("x", 1, &[None, Some(2)])],
        vec![
            value("label", 7, &[None]),
            value("probabilities", 1, &[None, Some(2)]),
        ],
        vec![],
    )
}

fn with(name: &str, replacement: pb::AttributeProto) -> Vec<pb::AttributeProto> {
    attributes()
        .into_iter()
        .map(|a| {
            if a.name == name {
                replacement.clone()
            } else {
                a
            }
        })
        .collect()
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[test]
fn hand_built_ensemble_follows_onnx_ml_semantics() {
    let options = LoadOptions {
        input_policy: InputPolicy {
            nan: NonFinitePolicy::Pass,
            infinite: NonFinitePolicy::Reject,
        },
        ..LoadOptions::default()
    };
    let model = Model::from_bytes(&ensemble(attributes()), &options).expect("loads");
    assert!(
        matches!(model.tier(), tickscore::Tier::Lowered { .. }),
        "{}",
        model.tier()
    );
    let mut scorer = model.scorer().unwrap();
    let mut p = [0f32];
    for (row, leaf_weight) in [
        ([9.0, 2.5], 1.5),      // equal to the threshold: LEQ is true
        ([9.0, 2.5001], -0.5),  // just above
        ([9.0, f32::NAN], 1.5), // NaN follows missing_value_tracks_true
    ] {
        scorer.score(&row, &mut p).unwrap();
        let want = sigmoid(leaf_weight + 0.25);
        assert!((p[0] - want).abs() < 1e-6, "{row:?}: {} vs {want}", p[0]);
    }
}

#[test]
fn malformed_ensembles_are_refused_with_a_typed_error() {
    let cases: Vec<(&str, Vec<pb::AttributeProto>)> = vec![
        (
            "unknown mode",
            with(
                "nodes_modes",
                strings("nodes_modes", &["BRANCH_SOMETIMES", "LEAF", "LEAF"]),
            ),
        ),
        (
            "child id out of range",
            with("nodes_truenodeids", ints("nodes_truenodeids", &[7, 0, 0])),
        ),
        (
            "cycle",
            with("nodes_falsenodeids", ints("nodes_falsenodeids", &[0, 0, 0])),
        ),
        (
            "truncated node arrays",
            with("nodes_values", floats("nodes_values", &[2.5])),
        ),
        (
            "negative feature",
            with("nodes_featureids", ints("nodes_featureids", &[-1, 0, 0])),
        ),
        (
            "class id out of range",
            with("class_ids", ints("class_ids", &[0, 5])),
        ),
        (
            "weight on a branch",
            with("class_nodeids", ints("class_nodeids", &[0, 2])),
        ),
        (
            "unknown post transform",
            with("post_transform", string("post_transform", "CUBIC")),
        ),
        (
            "duplicate node id",
            with("nodes_nodeids", ints("nodes_nodeids", &[0, 1, 1])),
        ),
    ];
    for (what, attrs) in cases {
        match Model::from_bytes(&ensemble(attrs), &LoadOptions::default()) {
            Err(LoadError::InvalidTreeEnsemble(reason)) => println!("{what}: {reason}"),
            Err(other) => panic!("{what}: expected InvalidTreeEnsemble, got {other}"),
            Ok(_) => panic!("{what}: malformed ensemble was accepted"),
        }
    }
}

#[test]
fn an_ensemble_reading_beyond_the_input_is_refused() {
    // Feature 5 of a 2-feature input: would read out of bounds.
    let attrs = with("nodes_featureids", ints("nodes_featureids", &[5, 0, 0]));
    let err = Model::from_bytes(&ensemble(attrs), &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(err, LoadError::Import(ref m) if m.contains("feature")),
        "{err}"
    );
}

#[test]
fn branch_eq_and_neq_follow_ieee_and_missing_rules() {
    // onnxruntime cannot give a reference for arbitrary BRANCH_EQ trees
    // (see tests/data/trees/make_cases.py); these expectations follow the
    // ONNX-ML definition: EQ is `x == t`, NEQ is `x != t` (true for NaN),
    // and a NaN also goes true where missing_value_tracks_true is set.
    let options = LoadOptions {
        input_policy: InputPolicy {
            nan: NonFinitePolicy::Pass,
            infinite: NonFinitePolicy::Reject,
        },
        ..LoadOptions::default()
    };
    for (mode, missing, cases) in [
        (
            "BRANCH_EQ",
            0,
            [
                ([0.0, 2.5], 1.5),
                ([0.0, 2.0], -0.5),
                ([0.0, f32::NAN], -0.5),
            ],
        ),
        (
            "BRANCH_EQ",
            1,
            [
                ([0.0, 2.5], 1.5),
                ([0.0, 2.0], -0.5),
                ([0.0, f32::NAN], 1.5),
            ],
        ),
        (
            "BRANCH_NEQ",
            0,
            [
                ([0.0, 2.5], -0.5),
                ([0.0, 2.0], 1.5),
                ([0.0, f32::NAN], 1.5),
            ],
        ),
    ] {
        let attrs = with(
            "nodes_modes",
            strings("nodes_modes", &[mode, "LEAF", "LEAF"]),
        );
        let attrs: Vec<_> = attrs
            .into_iter()
            .map(|a| {
                if a.name == "nodes_missing_value_tracks_true" {
                    ints("nodes_missing_value_tracks_true", &[missing, 0, 0])
                } else {
                    a
                }
            })
            .collect();
        let model = Model::from_bytes(&ensemble(attrs), &options).expect("loads");
        let mut scorer = model.scorer().unwrap();
        let mut p = [0f32];
        for (row, leaf_weight) in cases {
            scorer.score(&row, &mut p).unwrap();
            let want = sigmoid(leaf_weight + 0.25);
            assert!(
                (p[0] - want).abs() < 1e-6,
                "{mode} missing={missing} {row:?}: {} vs {want}",
                p[0]
            );
        }
    }
}

#[test]
fn uniform_neq_ensembles_of_mixed_depth_stop_at_their_leaves() {
    // Every branch is BRANCH_NEQ and the trees have different depths, so a
    // lockstep walk takes extra steps on the shallow tree's leaf: the leaf
    // must hold (a leaf's `x != NaN` would be true, hence the per-node path).
    // Tree 0: x0 != 1 ? 0.1 : -0.2 (a negative weight keeps onnxruntime's
    // binary rule on the plain logistic).  Tree 1: x1 != 0 ? (x0 != 5 ? 1.0 : 2.0) : 4.0.
    let attrs = vec![
        ints("nodes_treeids", &[0, 0, 0, 1, 1, 1, 1, 1]),
        ints("nodes_nodeids", &[0, 1, 2, 0, 1, 2, 3, 4]),
        ints("nodes_featureids", &[0, 0, 0, 1, 0, 0, 0, 0]),
        strings(
            "nodes_modes",
            &[
                "BRANCH_NEQ",
                "LEAF",
                "LEAF",
                "BRANCH_NEQ",
                "BRANCH_NEQ",
                "LEAF",
                "LEAF",
                "LEAF",
            ],
        ),
        floats("nodes_values", &[1.0, 0.0, 0.0, 0.0, 5.0, 0.0, 0.0, 0.0]),
        ints("nodes_truenodeids", &[1, 0, 0, 1, 3, 0, 0, 0]),
        ints("nodes_falsenodeids", &[2, 0, 0, 2, 4, 0, 0, 0]),
        ints("nodes_missing_value_tracks_true", &[0; 8]),
        ints("class_treeids", &[0, 0, 1, 1, 1]),
        ints("class_nodeids", &[1, 2, 2, 3, 4]),
        ints("class_ids", &[0; 5]),
        floats("class_weights", &[0.1, -0.2, 4.0, 1.0, 2.0]),
        floats("base_values", &[0.0]),
        ints("classlabels_int64s", &[0, 1]),
        string("post_transform", "LOGISTIC"),
    ];
    let model = Model::from_bytes(&ensemble(attrs), &LoadOptions::default()).expect("loads");
    let mut scorer = model.scorer().unwrap();
    let mut p = [0f32];
    for (row, sum) in [
        ([1.0, 3.0], -0.2 + 1.0),
        ([7.0, 0.0], 0.1 + 4.0),
        ([5.0, 2.0], 0.1 + 2.0),
    ] {
        scorer.score(&row, &mut p).unwrap();
        assert!(
            (p[0] - sigmoid(sum)).abs() < 1e-6,
            "{row:?}: {} vs {}",
            p[0],
            sigmoid(sum)
        );
    }
}
