//! ONNX-ML tree semantics against onnxruntime: every aggregate function,
//! post-transform, branch mode (but EQ, see make_cases.py), NaN routing,
//! multiclass, multi-target, the binary special cases and opset-3
//! `*_as_tensor` attributes, on rows with NaN and threshold ties. Cases and
//! onnxruntime's outputs come from tests/data/trees/make_cases.py.

use std::path::{Path, PathBuf};

use tickscore::input::read_features_file;
use tickscore::{InputPolicy, LoadOptions, Model, NonFinitePolicy, Tier};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/trees")
}

fn read_matrix(path: &Path) -> (usize, Vec<f32>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let width = lines.next().unwrap().split(',').count();
    let values = lines
        .flat_map(|l| {
            l.split(',')
                .map(|v| v.parse::<f32>().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    (width, values)
}

fn check(case: &str, model_file: &str) {
    let options = LoadOptions {
        input_policy: InputPolicy {
            nan: NonFinitePolicy::Pass,
            infinite: NonFinitePolicy::Reject,
        },
        ..LoadOptions::default()
    };
    let model =
        Model::load(dir().join(model_file), &options).unwrap_or_else(|e| panic!("{case}: {e}"));
    assert!(
        matches!(model.tier(), Tier::Lowered { .. }),
        "{case}: {}",
        model.tier()
    );
    let rows = read_features_file(&dir().join("inputs.csv"), 4, None).unwrap();
    let (k, expected) = read_matrix(&dir().join(format!("{case}.expected.csv")));
    assert_eq!(model.info().score_width, k, "{case}: output width");
    let mut got = vec![0f32; rows.rows() * k];
    model
        .scorer()
        .unwrap()
        .score_batch(&rows.values, &mut got)
        .unwrap();
    // One row at a time must agree with the batch, bit for bit.
    let mut scorer = model.scorer().unwrap();
    let mut one = vec![0f32; k];
    for r in 0..rows.rows() {
        scorer.score(rows.row(r), &mut one).unwrap();
        let batch = &got[r * k..(r + 1) * k];
        assert!(
            one.iter()
                .zip(batch)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{case} row {r}: {one:?} vs {batch:?}"
        );
    }
    // PROBIT with one class id: onnxruntime writes only the first column.
    let columns = if case.contains("probit") { 1 } else { k };
    let mut worst = 0f32;
    for (r, (g, e)) in got
        .chunks_exact(k)
        .zip(expected.chunks_exact(k))
        .enumerate()
    {
        for c in 0..columns {
            let (a, b) = (g[c], e[c]);
            if a.is_nan() && b.is_nan() {
                continue;
            }
            let d = (a - b).abs();
            assert!(
                d <= 1e-5,
                "{case} row {r} column {c}: tickscore {a} vs onnxruntime {b}"
            );
            worst = worst.max(d);
        }
    }
    println!("{case:32} {k} outputs, max |tickscore - onnxruntime| = {worst:.2e}");
}

#[test]
fn every_case_matches_onnxruntime() {
    let mut cases: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".expected.csv").map(str::to_string))
        .collect();
    cases.sort();
    assert!(cases.len() >= 18, "cases: {cases:?}");
    for case in &cases {
        check(case, &format!("{case}.onnx"));
    }
}

#[test]
fn node_listing_order_does_not_matter() {
    check("all_modes_nan", "all_modes_nan_shuffled.onnx");
}
