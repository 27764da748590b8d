//! Latency recording and summaries (HdrHistogram, nanosecond resolution,
//! 3 significant digits).
//!
//! Recording into a [`LatencyRecorder`] is allocation-free once it exists;
//! summaries are computed off the hot path.

#![forbid(unsafe_code)]

use hdrhistogram::Histogram;

/// Highest latency tracked: one minute, in nanoseconds.
const MAX_NS: u64 = 60_000_000_000;

/// A single-thread latency histogram.
#[derive(Debug, Clone)]
pub struct LatencyRecorder {
    hist: Histogram<u64>,
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyRecorder {
    /// An empty recorder covering 1 ns to 60 s.
    pub fn new() -> LatencyRecorder {
        // Constant bounds inside hdrhistogram's documented limits (low ≥ 1,
        // high ≥ 2·low, 0-5 significant digits): this cannot fail at run time.
        let hist = Histogram::new_with_bounds(1, MAX_NS, 3).expect("valid constant bounds");
        LatencyRecorder { hist }
    }

    /// Record one latency (clamped into the tracked range).
    #[inline]
    pub fn record_ns(&mut self, ns: u64) {
        self.hist.saturating_record(ns.clamp(1, MAX_NS));
    }

    /// The underlying histogram.
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.hist
    }

    /// Percentile summary.
    pub fn summary(&self) -> LatencySummary {
        LatencySummary::of(&self.hist)
    }
}

/// Percentiles of a latency distribution, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean_ns: f64,
    /// Median.
    pub p50_ns: u64,
    /// 90th percentile.
    pub p90_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// 99.99th percentile.
    pub p9999_ns: u64,
    /// Largest sample.
    pub max_ns: u64,
}

impl LatencySummary {
    /// The summary of a nanosecond histogram.
    pub fn of(h: &Histogram<u64>) -> LatencySummary {
        LatencySummary {
            count: h.len(),
            mean_ns: h.mean(),
            p50_ns: h.value_at_quantile(0.50),
            p90_ns: h.value_at_quantile(0.90),
            p99_ns: h.value_at_quantile(0.99),
            p999_ns: h.value_at_quantile(0.999),
            p9999_ns: h.value_at_quantile(0.9999),
            max_ns: h.max(),
        }
    }
}

/// Format nanoseconds for people: `850 ns`, `2.41 µs`, `1.52 ms`.
pub fn human_ns(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.0} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{:.2} ms", ns / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_track_recorded_values() {
        let mut r = LatencyRecorder::new();
        for ns in 1..=1000u64 {
            r.record_ns(ns * 1000);
        }
        let s = r.summary();
        assert_eq!(s.count, 1000);
        assert!((499_000..=501_000).contains(&s.p50_ns), "{s:?}");
        assert!((989_000..=991_000).contains(&s.p99_ns), "{s:?}");
        assert_eq!(human_ns(2_410.0), "2.41 µs");
    }
}
