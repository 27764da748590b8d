//! Parity: every bundled model, every test row, both tiers, against the
//! scores recorded from onnxruntime by models/make_models.py.

mod common;

use tickscore::{LoadOptions, Model, Tier, TierChoice};

const TOLERANCE: f32 = 1e-5;

fn score_all(model: &Model) -> Vec<f32> {
    let rows = common::test_rows(model.info().input_width);
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
    let options = LoadOptions {
        tier,
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
fn every_bundled_model_runs_on_the_lowered_tier() {
    for name in [
        "german_logreg",
        "german_mlp",
        "german_lightgbm",
        "german_xgboost",
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
        let rows = common::test_rows(model.info().input_width);
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
