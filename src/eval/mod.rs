//! Evaluation metrics: for binary scores AUC, Gini and the Kolmogorov–Smirnov
//! statistic, computed exactly (ties handled as scikit-learn does); for
//! regressors R², MAE and MSE.
//!
//! Control-plane code: allocates freely, never runs on the hot path.

#![forbid(unsafe_code)]

/// Why a metric cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricError {
    /// Scores and labels differ in length.
    #[error("{scores} scores for {labels} labels")]
    LengthMismatch {
        /// Number of scores.
        scores: usize,
        /// Number of labels.
        labels: usize,
    },
    /// Both classes must be present.
    #[error("labels contain {positives} positives and {negatives} negatives; both are needed")]
    OneClass {
        /// Positive labels.
        positives: usize,
        /// Negative labels.
        negatives: usize,
    },
    /// A score is NaN.
    #[error("score {index} is NaN")]
    NaNScore {
        /// Index of the first NaN score.
        index: usize,
    },
}

/// The KS statistic and the score threshold where it occurs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ks {
    /// max over thresholds of TPR − FPR.
    pub statistic: f64,
    /// Score at which it is reached (rows with score ≥ it are flagged).
    pub threshold: f64,
}

/// Sort indices by descending score, checking inputs.
fn ranked(scores: &[f64], labels: &[bool]) -> Result<(Vec<usize>, usize, usize), MetricError> {
    if scores.len() != labels.len() {
        return Err(MetricError::LengthMismatch {
            scores: scores.len(),
            labels: labels.len(),
        });
    }
    if let Some(index) = scores.iter().position(|s| s.is_nan()) {
        return Err(MetricError::NaNScore { index });
    }
    let positives = labels.iter().filter(|&&l| l).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return Err(MetricError::OneClass {
            positives,
            negatives,
        });
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    Ok((order, positives, negatives))
}

/// Walk the ROC curve: one point per distinct score, highest first.
fn roc_points(scores: &[f64], labels: &[bool]) -> Result<Vec<(f64, f64, f64)>, MetricError> {
    let (order, p, n) = ranked(scores, labels)?;
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut points = Vec::new();
    let mut i = 0;
    while i < order.len() {
        let s = scores[order[i]];
        while i < order.len() && scores[order[i]] == s {
            if labels[order[i]] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        points.push((fp as f64 / n as f64, tp as f64 / p as f64, s));
    }
    Ok(points)
}

/// Area under the ROC curve (trapezoidal over distinct thresholds, which
/// counts tied positive/negative pairs as one half, as scikit-learn does).
pub fn auc(scores: &[f64], labels: &[bool]) -> Result<f64, MetricError> {
    let points = roc_points(scores, labels)?;
    let (mut area, mut prev) = (0.0, (0.0, 0.0));
    for &(fpr, tpr, _) in &points {
        area += (fpr - prev.0) * (tpr + prev.1) / 2.0;
        prev = (fpr, tpr);
    }
    Ok(area)
}

/// Kolmogorov–Smirnov statistic: the largest gap between the cumulative
/// score distributions of positives and negatives.
pub fn ks(scores: &[f64], labels: &[bool]) -> Result<Ks, MetricError> {
    let points = roc_points(scores, labels)?;
    let mut best = Ks {
        statistic: 0.0,
        threshold: f64::INFINITY,
    };
    for &(fpr, tpr, s) in &points {
        if tpr - fpr > best.statistic {
            best = Ks {
                statistic: tpr - fpr,
                threshold: s,
            };
        }
    }
    Ok(best)
}

/// Gini coefficient, 2·AUC − 1.
pub fn gini(scores: &[f64], labels: &[bool]) -> Result<f64, MetricError> {
    Ok(2.0 * auc(scores, labels)? - 1.0)
}

/// Regression quality: coefficient of determination, mean absolute and
/// mean squared error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Regression {
    /// R² = 1 − SS_res / SS_tot.
    pub r2: f64,
    /// Mean absolute error.
    pub mae: f64,
    /// Mean squared error.
    pub mse: f64,
}

/// R², MAE and MSE of `predictions` against `truth`.
pub fn regression(predictions: &[f64], truth: &[f64]) -> Result<Regression, MetricError> {
    if predictions.len() != truth.len() || truth.is_empty() {
        return Err(MetricError::LengthMismatch {
            scores: predictions.len(),
            labels: truth.len(),
        });
    }
    if let Some(index) = predictions.iter().position(|s| s.is_nan()) {
        return Err(MetricError::NaNScore { index });
    }
    let n = truth.len() as f64;
    let mean = truth.iter().sum::<f64>() / n;
    let (mut ss_res, mut ss_tot, mut abs) = (0.0, 0.0, 0.0);
    for (p, t) in predictions.iter().zip(truth) {
        ss_res += (t - p) * (t - p);
        ss_tot += (t - mean) * (t - mean);
        abs += (t - p).abs();
    }
    Ok(Regression {
        r2: 1.0 - ss_res / ss_tot,
        mae: abs / n,
        mse: ss_res / n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_and_inverted_ranking() {
        let s = [0.9, 0.8, 0.2, 0.1];
        let l = [true, true, false, false];
        assert_eq!(auc(&s, &l).unwrap(), 1.0);
        assert_eq!(ks(&s, &l).unwrap().statistic, 1.0);
        let inv = [false, false, true, true];
        assert_eq!(auc(&s, &inv).unwrap(), 0.0);
    }

    #[test]
    fn ties_count_one_half() {
        // One positive and one negative share a score: that pair counts 0.5.
        let s = [0.5, 0.5, 0.1];
        let l = [true, false, false];
        assert_eq!(auc(&s, &l).unwrap(), 0.75);
    }

    #[test]
    fn regression_metrics() {
        let r = regression(&[1.0, 2.0, 3.0], &[1.0, 2.0, 5.0]).unwrap();
        assert_eq!(r.mae, 2.0 / 3.0);
        assert_eq!(r.mse, 4.0 / 3.0);
        // mean 8/3, SS_tot = 25/9 + 4/9 + 49/9 = 78/9, SS_res = 4.
        assert!((r.r2 - (1.0 - 4.0 / (78.0 / 9.0))).abs() < 1e-12);
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(matches!(
            auc(&[0.1], &[true, false]),
            Err(MetricError::LengthMismatch { .. })
        ));
        assert!(matches!(
            auc(&[0.1, 0.2], &[true, true]),
            Err(MetricError::OneClass { .. })
        ));
        assert_eq!(
            ks(&[f64::NAN, 0.2], &[true, false]),
            Err(MetricError::NaNScore { index: 0 })
        );
    }
}
