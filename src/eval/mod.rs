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

/// Counts at a threshold (positive prediction: `score >= threshold`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Confusion {
    /// Predicted positive, labelled positive.
    pub tp: u64,
    /// Predicted positive, labelled negative.
    pub fp: u64,
    /// Predicted negative, labelled negative.
    pub tn: u64,
    /// Predicted negative, labelled positive.
    pub fn_: u64,
}

impl Confusion {
    /// tp / (tp + fp), 0 when nothing is predicted positive.
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    /// tp / (tp + fn), 0 when nothing is labelled positive.
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }
    /// Harmonic mean of precision and recall (0 when both are 0).
    pub fn f1(&self) -> f64 {
        ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn_)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

fn check(scores: &[f64], labels: &[bool]) -> Result<(), MetricError> {
    if scores.len() != labels.len() || scores.is_empty() {
        return Err(MetricError::LengthMismatch {
            scores: scores.len(),
            labels: labels.len(),
        });
    }
    match scores.iter().position(|s| s.is_nan()) {
        Some(index) => Err(MetricError::NaNScore { index }),
        None => Ok(()),
    }
}

/// The confusion matrix at `threshold`.
pub fn confusion(
    scores: &[f64],
    labels: &[bool],
    threshold: f64,
) -> Result<Confusion, MetricError> {
    check(scores, labels)?;
    let mut c = Confusion::default();
    for (&s, &l) in scores.iter().zip(labels) {
        match (s >= threshold, l) {
            (true, true) => c.tp += 1,
            (true, false) => c.fp += 1,
            (false, false) => c.tn += 1,
            (false, true) => c.fn_ += 1,
        }
    }
    Ok(c)
}

/// Brier score: mean squared difference between probability and outcome.
pub fn brier(scores: &[f64], labels: &[bool]) -> Result<f64, MetricError> {
    check(scores, labels)?;
    let sum: f64 = scores
        .iter()
        .zip(labels)
        .map(|(&s, &l)| (s - f64::from(u8::from(l))).powi(2))
        .sum();
    Ok(sum / scores.len() as f64)
}

/// Log loss (cross-entropy), probabilities clipped to [ε, 1 − ε] with ε the
/// f64 machine epsilon, as scikit-learn does.
pub fn log_loss(scores: &[f64], labels: &[bool]) -> Result<f64, MetricError> {
    check(scores, labels)?;
    let eps = f64::EPSILON;
    let sum: f64 = scores
        .iter()
        .zip(labels)
        .map(|(&s, &l)| {
            let p = s.clamp(eps, 1.0 - eps);
            if l {
                -p.ln()
            } else {
                -(1.0 - p).ln()
            }
        })
        .sum();
    Ok(sum / scores.len() as f64)
}

/// One calibration bin.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CalibrationBin {
    /// Rows in the bin.
    pub count: usize,
    /// Mean score.
    pub mean_score: f64,
    /// Fraction labelled positive.
    pub observed_rate: f64,
}

/// Calibration by deciles: rows sorted by score (ties by position), split
/// into 10 groups whose sizes differ by at most one (larger groups first,
/// as numpy's `array_split`).
pub fn calibration_deciles(
    scores: &[f64],
    labels: &[bool],
) -> Result<Vec<CalibrationBin>, MetricError> {
    check(scores, labels)?;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
    let (n, k) = (order.len(), 10.min(order.len()));
    let mut bins = Vec::with_capacity(k);
    let mut start = 0;
    for i in 0..k {
        let size = n / k + usize::from(i < n % k);
        let group = &order[start..start + size];
        start += size;
        let mean =
            |f: &dyn Fn(usize) -> f64| group.iter().map(|&r| f(r)).sum::<f64>() / size as f64;
        bins.push(CalibrationBin {
            count: size,
            mean_score: mean(&|r| scores[r]),
            observed_rate: mean(&|r| f64::from(u8::from(labels[r]))),
        });
    }
    Ok(bins)
}

/// numpy's default (linear) quantile of sorted data.
fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, frac) = (pos.floor() as usize, pos - pos.floor());
    match sorted.get(lo + 1) {
        Some(&hi) => sorted[lo] + (hi - sorted[lo]) * frac,
        None => sorted[lo],
    }
}

/// Population stability index of `current` against `baseline` over the
/// baseline's 10 decile bins (edges by linear quantiles; a value belongs to
/// the first bin whose upper edge is ≥ it); bin shares are floored at 1e-4.
pub fn psi(baseline: &[f64], current: &[f64]) -> Result<f64, MetricError> {
    if baseline.is_empty() || current.is_empty() {
        return Err(MetricError::LengthMismatch {
            scores: current.len(),
            labels: baseline.len(),
        });
    }
    for v in [baseline, current] {
        if let Some(index) = v.iter().position(|s| s.is_nan()) {
            return Err(MetricError::NaNScore { index });
        }
    }
    let mut sorted = baseline.to_vec();
    sorted.sort_by(f64::total_cmp);
    let edges: Vec<f64> = (1..10)
        .map(|i| quantile_sorted(&sorted, i as f64 / 10.0))
        .collect();
    let shares = |v: &[f64]| {
        let mut counts = [0usize; 10];
        for &x in v {
            counts[edges.partition_point(|&e| e < x)] += 1;
        }
        counts.map(|c| (c as f64 / v.len() as f64).max(1e-4))
    };
    let (b, c) = (shares(baseline), shares(current));
    Ok(b.iter()
        .zip(c.iter())
        .map(|(&b, &c)| (c - b) * (c / b).ln())
        .sum())
}

/// Points of the ROC curve (false positive rate, true positive rate,
/// threshold), from (0, 0), one per distinct score.
pub fn roc_curve(scores: &[f64], labels: &[bool]) -> Result<Vec<(f64, f64, f64)>, MetricError> {
    let mut points = vec![(0.0, 0.0, f64::INFINITY)];
    points.extend(roc_points(scores, labels)?);
    Ok(points)
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
