//! Parity: every bundled model, every test row (and for tree models every
//! row with NaN), both tiers, against the scores recorded from onnxruntime
//! by models/make_models.py.

mod common;

use tickscore::input::FeatureRows;
use tickscore::{InputPolicy, LoadOptions, Model, NonFinitePolicy, Tier, TierChoice};

const TOLERANCE: f32 = 1e-5;

fn score_all(model: &Model) -> Vec<f32> {
    score_rows(model, &common::test_rows(model))
}

fn score_rows(model: &Model, rows: &FeatureRows) -> Vec<f32> {
    let mut scorer = model.scorer().expect("scorer");
    let mut out = vec![0f32; rows.rows()];
    for (i, o) in out.iter_mut().enumerate() {
        scorer
            .score(rows.row(i), std::slice::from_mut(o))
            .expect("scores");
    }
    out
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn load(name: &str, tier: TierChoice) -> Model {
    // NaN reaches only the tree models (the NaN rows are scored only for
    // models with a NaN reference), which route it as "missing".
    let options = LoadOptions {
        tier,
        input_policy: InputPolicy {
            nan: NonFinitePolicy::Pass,
            infinite: NonFinitePolicy::Reject,
        },
        ..LoadOptions::default()
    };
    Model::load(common::model_path(name), &options)
        .unwrap_or_else(|e| panic!("{name} ({tier:?}) fails to load: {e}"))
}

#[test]
fn every_bundled_model_matches_onnxruntime_on_every_tier() {
    for name in common::bundled_models() {
        let reference = common::reference(&name);
        assert_eq!(reference.len(), 300, "{name}: reference rows");
        let auto = load(&name, TierChoice::Auto);
        let tract = load(&name, TierChoice::Tract);
        let (a, t) = (score_all(&auto), score_all(&tract));
        let (da, dt, dat) = (
            max_diff(&a, &reference),
            max_diff(&t, &reference),
            max_diff(&a, &t),
        );
        println!(
            "{name:16} {:40} vs ORT {da:.2e}; tract vs ORT {dt:.2e}; tiers {dat:.2e}",
            auto.tier().to_string()
        );
        assert!(
            da <= TOLERANCE,
            "{name}: tickscore ({}) vs onnxruntime {da}",
            auto.tier()
        );
        assert!(dt <= TOLERANCE, "{name}: tract tier vs onnxruntime {dt}");
        assert!(dat <= TOLERANCE, "{name}: lowered vs tract {dat}");
    }
}

#[test]
fn tree_models_match_onnxruntime_on_rows_with_nan() {
    let mut checked = 0;
    for name in common::bundled_models() {
        let Some(reference) = common::reference_nan(&name) else {
            continue;
        };
        let model = load(&name, TierChoice::Auto);
        let rows = common::nan_rows(&model);
        assert!(
            rows.values.iter().any(|v| v.is_nan()),
            "{name}: the NaN rows hold NaN"
        );
        let d = max_diff(&score_rows(&model, &rows), &reference);
        println!("{name:20} NaN rows: vs ORT {d:.2e}");
        assert!(d <= TOLERANCE, "{name}: NaN rows vs onnxruntime {d}");
        checked += 1;
    }
    assert_eq!(checked, 6, "every tree model has NaN references");
}

#[test]
fn every_bundled_model_runs_on_the_lowered_tier() {
    for name in [
        "german_logreg",
        "german_mlp",
        "german_lightgbm",
        "german_xgboost",
        "german_wide_xgboost",
    ] {
        let model = load(name, TierChoice::Auto);
        assert!(
            matches!(model.tier(), Tier::Lowered { .. }),
            "{name}: {}",
            model.tier()
        );
    }
    let forced = load("german_logreg", TierChoice::Tract);
    assert!(matches!(forced.tier(), Tier::Tract { .. }));
}

#[test]
fn batch_scoring_equals_row_by_row() {
    for name in common::bundled_models() {
        let model = load(&name, TierChoice::Auto);
        let rows = common::test_rows(&model);
        let single = score_all(&model);
        let mut batch = vec![0f32; rows.rows()];
        model
            .scorer()
            .unwrap()
            .score_batch(&rows.values, &mut batch)
            .expect("batch scores");
        assert_eq!(single, batch, "{name}");
    }
}
