//! tickscore's AUC and KS (and R² for regressors) equal scikit-learn's
//! (recorded by models/make_models.py in models/metrics.json) on the same
//! scores.

mod common;

use tickscore::eval;
use tickscore::input::read_labels_file;

#[test]
fn metrics_match_scikit_learn_on_the_reference_scores() {
    let text = std::fs::read_to_string(common::models_dir().join("metrics.json")).unwrap();
    let fixtures: serde_json::Value = serde_json::from_str(&text).unwrap();
    let labels_path = common::models_dir().join("data/german_test_labels.csv");
    let labels = read_labels_file(&labels_path, "bad").unwrap();
    let (mut classifiers, mut regressors) = (0, 0);
    for name in common::bundled_models() {
        let scores: Vec<f64> = common::reference(&name)
            .iter()
            .map(|&s| f64::from(s))
            .collect();
        let want = &fixtures[&name];
        if let Some(want_r2) = want["r2"].as_f64() {
            let target = common::models_dir().join(&name).join("target.csv");
            let text = std::fs::read_to_string(target).unwrap();
            let truth: Vec<f64> = text.lines().skip(1).map(|l| l.parse().unwrap()).collect();
            let r2 = eval::regression(&scores, &truth).unwrap().r2;
            assert!(
                (r2 - want_r2).abs() <= 1e-9,
                "{name}: R2 {r2} vs scikit-learn {want_r2}"
            );
            regressors += 1;
            continue;
        }
        let auc = eval::auc(&scores, &labels).unwrap();
        let ks = eval::ks(&scores, &labels).unwrap().statistic;
        let want_auc = want["auc"].as_f64().expect("classifier fixture has auc");
        let want_ks = want["ks"].as_f64().expect("classifier fixture has ks");
        assert!(
            (auc - want_auc).abs() <= 1e-9,
            "{name}: AUC {auc} vs scikit-learn {want_auc}"
        );
        assert!(
            (ks - want_ks).abs() <= 1e-9,
            "{name}: KS {ks} vs scikit-learn {want_ks}"
        );
        classifiers += 1;
    }
    assert_eq!((classifiers, regressors), (6, 1));
}
