//! tickscore's metrics (AUC, KS, confusion, precision/recall/F1, Brier, log
//! loss, calibration deciles, PSI; R², MAE, MSE for regressors) equal
//! scikit-learn's / numpy's (recorded by models/make_models.py in
//! models/metrics.json) on the same scores, within 1e-9.

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
        check_psi(&name, &scores, want);
        if want["r2"].is_f64() {
            let target = common::models_dir().join(&name).join("target.csv");
            let text = std::fs::read_to_string(target).unwrap();
            let truth: Vec<f64> = text.lines().skip(1).map(|l| l.parse().unwrap()).collect();
            let r = eval::regression(&scores, &truth).unwrap();
            close(r.r2, &want["r2"], &name, "R2");
            close(r.mae, &want["mae"], &name, "MAE");
            close(r.mse, &want["mse"], &name, "MSE");
            regressors += 1;
            continue;
        }
        close(
            eval::auc(&scores, &labels).unwrap(),
            &want["auc"],
            &name,
            "AUC",
        );
        close(
            eval::ks(&scores, &labels).unwrap().statistic,
            &want["ks"],
            &name,
            "KS",
        );
        let threshold = want["threshold"].as_f64().unwrap();
        let c = eval::confusion(&scores, &labels, threshold).unwrap();
        let wc = &want["confusion"];
        assert_eq!(
            [c.tp, c.fp, c.tn, c.fn_],
            ["tp", "fp", "tn", "fn"].map(|k| wc[k].as_u64().unwrap()),
            "{name}: confusion matrix"
        );
        close(c.precision(), &want["precision"], &name, "precision");
        close(c.recall(), &want["recall"], &name, "recall");
        close(c.f1(), &want["f1"], &name, "F1");
        close(
            eval::brier(&scores, &labels).unwrap(),
            &want["brier"],
            &name,
            "Brier",
        );
        close(
            eval::log_loss(&scores, &labels).unwrap(),
            &want["log_loss"],
            &name,
            "log loss",
        );
        let bins = eval::calibration_deciles(&scores, &labels).unwrap();
        let want_bins = want["calibration_deciles"].as_array().unwrap();
        assert_eq!(bins.len(), want_bins.len(), "{name}: calibration bins");
        for (b, w) in bins.iter().zip(want_bins) {
            assert_eq!(
                b.count as u64,
                w["count"].as_u64().unwrap(),
                "{name}: bin size"
            );
            close(b.mean_score, &w["mean_score"], &name, "bin mean score");
            close(
                b.observed_rate,
                &w["observed_rate"],
                &name,
                "bin observed rate",
            );
        }
        classifiers += 1;
    }
    assert_eq!((classifiers, regressors), (7, 1));
}

fn close(got: f64, want: &serde_json::Value, name: &str, what: &str) {
    let want = want
        .as_f64()
        .unwrap_or_else(|| panic!("{name}: fixture lacks {what}"));
    assert!(
        (got - want).abs() <= 1e-9,
        "{name}: {what} {got} vs scikit-learn {want}"
    );
}

/// PSI of the test-split scores against the NaN-row scores (tree models).
fn check_psi(name: &str, scores: &[f64], want: &serde_json::Value) {
    let Some(reference) = common::reference_nan(name) else {
        return;
    };
    let nan_scores: Vec<f64> = reference.iter().map(|&s| f64::from(s)).collect();
    close(
        eval::psi(scores, &nan_scores).unwrap(),
        &want["psi_test_vs_nan_rows"],
        name,
        "PSI",
    );
}
