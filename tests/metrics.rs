//! tickscore's AUC and KS equal scikit-learn's (recorded by
//! models/make_models.py in models/metrics.json) on the same scores.

mod common;

use tickscore::eval;
use tickscore::input::read_labels_file;

#[test]
fn auc_and_ks_match_scikit_learn_on_the_reference_scores() {
    let text = std::fs::read_to_string(common::models_dir().join("metrics.json")).unwrap();
    let fixtures: serde_json::Value = serde_json::from_str(&text).unwrap();
    let labels = read_labels_file(
        &common::models_dir().join("data/german_test_labels.csv"),
        "bad",
    )
    .unwrap();
    for name in common::bundled_models() {
        let scores: Vec<f64> = common::reference(&name)
            .iter()
            .map(|&s| f64::from(s))
            .collect();
        let want = &fixtures[&name];
        let (auc, ks) = (
            eval::auc(&scores, &labels).unwrap(),
            eval::ks(&scores, &labels).unwrap(),
        );
        let (want_auc, want_ks) = (want["auc"].as_f64().unwrap(), want["ks"].as_f64().unwrap());
        assert!(
            (auc - want_auc).abs() <= 1e-9,
            "{name}: AUC {auc} vs scikit-learn {want_auc}"
        );
        assert!(
            (ks.statistic - want_ks).abs() <= 1e-9,
            "{name}: KS {} vs {want_ks}",
            ks.statistic
        );
    }
}
