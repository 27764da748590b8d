//! Load generation for benchmarks: open loop at a fixed rate (the
//! coordinated-omission-free method of wrk2) or closed loop, over the
//! inline path or the worker runtime, into an HdrHistogram.
//!
//! Open loop: request `i` is due at `t0 + i / rate`; the sender busy-waits
//! for that instant (sleeps are far too coarse at microsecond rates) and
//! each latency is measured from the *due* time, so a stall delays every
//! request queued behind it and shows in the tail instead of vanishing.
//! Closed loop: the next request goes as soon as the last one finished
//! (maximum throughput; its latencies hide stalls).
//!
//! Never on a scoring hot path: this module is a client of the engine.

#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::runtime::{Engine, Producer, RequestError, StageTimes, SubmitError, Ticket};
use crate::scorer::Scorer;

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// Open loop at this many requests per second.
    Rate(f64),
    /// Closed loop: back to back.
    Closed,
}

/// Where requests go.
pub enum Target<'a> {
    /// `Scorer::score` on this thread.
    Inline(&'a mut Scorer),
    /// Submission through a registered producer's lane + completion, up to
    /// `in_flight` outstanding.
    Ring {
        /// The engine.
        engine: &'a Engine,
        /// Most requests outstanding at once (open loop).
        in_flight: usize,
        /// Submit through the shared MPMC queue instead of a registered
        /// producer's SPSC lane (to compare the two).
        shared_queue: bool,
        /// Lane only: take back and score on this thread any request no
        /// worker has finished this long after its submission
        /// ([`Producer::with_reclaim`]).
        reclaim_after: Option<Duration>,
    },
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct Run {
    /// Latency per request, ns (from the due time in open loop).
    pub histogram: Histogram<u64>,
    /// Requests completed (scored or failed).
    pub requests: u64,
    /// Requests that failed (invalid row, deadline, panic).
    pub errors: u64,
    /// Submissions refused with Busy (ring path; retried until accepted).
    pub busy: u64,
    /// Requests the caller took back and scored itself (ring path with
    /// reclaim).
    pub reclaimed: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Run {
    /// Completed requests per second.
    pub fn throughput(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The run's JSON summary fields, without braces: `count`, `p50_ns`,
    /// `p90_ns`, `p99_ns`, `p999_ns`, `p9999_ns`, `max_ns`, `mean_ns`,
    /// `throughput_per_s`.
    pub fn json_fields(&self) -> String {
        let h = &self.histogram;
        let q = |p: f64| h.value_at_quantile(p);
        format!(
            "\"count\":{},\"p50_ns\":{},\"p90_ns\":{},\"p99_ns\":{},\"p999_ns\":{},\"p9999_ns\":{},\"max_ns\":{},\"mean_ns\":{:.1},\"throughput_per_s\":{:.1}",
            self.requests,
            q(0.5),
            q(0.9),
            q(0.99),
            q(0.999),
            q(0.9999),
            h.max(),
            h.mean(),
            self.throughput()
        )
    }
}

/// The load generator's clock: the runtime's (the CPU's time-stamp counter
/// where it is invariant, 7 ns a read here, against 21 ns for `Instant`),
/// so that timing both paths costs less and a poll loop notices a result
/// sooner. Both paths are timed with it alike.
#[derive(Debug, Clone, Copy)]
struct Stopwatch(crate::runtime::clock::Clock);

impl Stopwatch {
    fn start() -> Stopwatch {
        Stopwatch(crate::runtime::clock::Clock::start())
    }

    #[inline]
    fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.0.now_ns())
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid constant bounds")
}

/// Run `requests` requests over `rows` (`width` floats each, cycled).
/// `hook(i)` runs when request `i` is due, inside its timed region (tests
/// use it to inject a stall); `progress(done)` is called about every 1/16
/// of the run.
pub fn run(
    target: Target<'_>,
    rows: &[f32],
    width: usize,
    pacing: Pacing,
    requests: usize,
    mut hook: impl FnMut(usize),
    mut progress: impl FnMut(usize),
) -> Run {
    let n_rows = (rows.len() / width).max(1);
    let row = |i: usize| &rows[(i % n_rows) * width..(i % n_rows + 1) * width];
    let interval_ns = match pacing {
        Pacing::Rate(r) if r > 0.0 => 1e9 / r,
        _ => 0.0,
    };
    let mut hist = histogram();
    let (mut errors, mut busy, mut reclaimed) = (0u64, 0u64, 0u64);
    let report_every = (requests / 16).max(1);
    let t0 = Stopwatch::start();
    let due = |i: usize| Duration::from_nanos((i as f64 * interval_ns) as u64);
    let wait_until = |d: Duration| {
        while t0.elapsed() < d {
            std::hint::spin_loop();
        }
    };
    match target {
        Target::Inline(scorer) => {
            let mut out = vec![0f32; scorer.model().info().score_width];
            for i in 0..requests {
                let start = if interval_ns > 0.0 {
                    wait_until(due(i));
                    due(i)
                } else {
                    t0.elapsed()
                };
                hook(i);
                if scorer.score(row(i), &mut out).is_err() {
                    errors += 1;
                }
                hist.saturating_record(
                    (t0.elapsed().saturating_sub(start).as_nanos() as u64).max(1),
                );
                if i % report_every == 0 {
                    progress(i);
                }
            }
        }
        Target::Ring {
            engine,
            in_flight,
            shared_queue,
            reclaim_after,
        } => {
            let mut ring = RingClient::new(engine, in_flight, shared_queue, reclaim_after);
            for i in 0..requests {
                let due_ns = if interval_ns > 0.0 {
                    // Collect what finished while waiting for the due time.
                    ring.collect_until(t0, due(i), &mut hist);
                    due(i).as_nanos() as u64
                } else {
                    t0.elapsed().as_nanos() as u64
                };
                hook(i);
                ring.send(row(i), t0, due_ns, &mut hist);
                if i % report_every == 0 {
                    progress(i);
                }
            }
            ring.drain(t0, &mut hist);
            errors = ring.errors;
            busy = ring.busy;
            reclaimed = ring.reclaimed;
        }
    }
    Run {
        requests: hist.len(),
        histogram: hist,
        errors,
        busy,
        reclaimed,
        elapsed: t0.elapsed(),
    }
}

/// The submitting side of the ring path: a registered producer (or the
/// shared queue), its requests in flight, and the latency of each as the
/// *caller* sees it: from its due time to the moment `poll`/`wait` hands
/// the scores back (so the hop back to the caller is included).
struct RingClient<'e> {
    engine: &'e Engine,
    producer: Option<Producer<'e>>,
    in_flight: usize,
    /// (ticket, ns from t0 to its due time)
    pending: VecDeque<(Ticket<'e>, u64)>,
    out: Vec<f32>,
    errors: u64,
    busy: u64,
    reclaimed: u64,
    /// The producer reclaims overdue requests.
    reclaiming: bool,
}

impl<'e> RingClient<'e> {
    fn new(
        engine: &'e Engine,
        in_flight: usize,
        shared_queue: bool,
        reclaim_after: Option<Duration>,
    ) -> RingClient<'e> {
        // Submit as a trading thread would: through a registered producer's
        // own lane (the shared queue if registration fails).
        let producer = if shared_queue {
            None
        } else {
            engine.register_producer().ok()
        };
        let producer = match (producer, reclaim_after) {
            (Some(p), Some(after)) => p.with_reclaim(after).ok(),
            (p, _) => p,
        };
        RingClient {
            engine,
            reclaiming: reclaim_after.is_some() && producer.is_some(),
            producer,
            in_flight: in_flight.max(1),
            pending: VecDeque::with_capacity(in_flight.max(1)),
            out: vec![0f32; engine.score_width()],
            errors: 0,
            busy: 0,
            reclaimed: 0,
        }
    }

    fn record(
        &mut self,
        result: Result<StageTimes, RequestError>,
        due_ns: u64,
        t0: Stopwatch,
        hist: &mut Histogram<u64>,
    ) {
        match result {
            Ok(t) if t.reclaimed => self.reclaimed += 1,
            Ok(_) => {}
            Err(_) => self.errors += 1,
        }
        let done = t0.elapsed().as_nanos() as u64;
        hist.saturating_record(done.saturating_sub(due_ns).max(1));
    }

    /// Wait for the oldest request in flight.
    fn settle_oldest(&mut self, t0: Stopwatch, hist: &mut Histogram<u64>) {
        if let Some((ticket, due_ns)) = self.pending.pop_front() {
            let result = match &mut self.producer {
                Some(p) => p.wait(ticket, &mut self.out),
                None => self.engine.wait(ticket, &mut self.out),
            };
            self.record(result, due_ns, t0, hist);
        }
    }

    /// Poll completions until `until` (since `t0`) has come.
    fn collect_until(&mut self, t0: Stopwatch, until: Duration, hist: &mut Histogram<u64>) {
        while t0.elapsed() < until {
            let Some((ticket, due_ns)) = self.pending.pop_front() else {
                std::hint::spin_loop();
                continue;
            };
            match self.poll(ticket) {
                Ok(result) => self.record(result, due_ns, t0, hist),
                Err(ticket) => {
                    self.pending.push_front((ticket, due_ns));
                    // With reclaim, a backlog is shared: the worker takes
                    // from the front, this thread from the back (the
                    // requests the worker would reach last).
                    if self.reclaiming && self.pending.len() > 1 {
                        if let Some((ticket, due_ns)) = self.pending.pop_back() {
                            match self.poll(ticket) {
                                Ok(result) => self.record(result, due_ns, t0, hist),
                                Err(ticket) => self.pending.push_back((ticket, due_ns)),
                            }
                        }
                    }
                    std::hint::spin_loop();
                }
            }
        }
    }

    /// Poll one ticket (through the producer, which may reclaim it).
    fn poll(&mut self, ticket: Ticket<'e>) -> Result<Result<StageTimes, RequestError>, Ticket<'e>> {
        match &mut self.producer {
            Some(p) => p.poll(ticket, &mut self.out),
            None => self.engine.poll(ticket, &mut self.out),
        }
    }

    /// Submit `row` (due at `due_ns`), retrying while the queue is full.
    fn send(&mut self, row: &[f32], t0: Stopwatch, due_ns: u64, hist: &mut Histogram<u64>) {
        loop {
            let submitted = match &mut self.producer {
                Some(p) => p.submit(row),
                None => self.engine.submit(row),
            };
            match submitted {
                Ok(t) => {
                    self.pending.push_back((t, due_ns));
                    break;
                }
                Err(SubmitError::Busy) => {
                    if self.on_busy(row, t0, due_ns, hist) {
                        break;
                    }
                }
                Err(_) => {
                    self.errors += 1;
                    break;
                }
            }
        }
        if self.pending.len() >= self.in_flight {
            self.settle_oldest(t0, hist);
        }
    }

    /// The queue or lane is full. A reclaiming caller does not wait for
    /// it (a stalled worker): it scores the row itself (`true`: done).
    /// Otherwise it waits for its oldest request to make room (`false`:
    /// retry).
    #[cold]
    #[inline(never)]
    fn on_busy(
        &mut self,
        row: &[f32],
        t0: Stopwatch,
        due_ns: u64,
        hist: &mut Histogram<u64>,
    ) -> bool {
        self.busy += 1;
        if let (true, Some(p)) = (self.reclaiming, &mut self.producer) {
            let result = match p.score_inline(row, &mut self.out) {
                Some(Ok(version)) => Ok(StageTimes {
                    model_version: version,
                    reclaimed: true,
                    ..StageTimes::default()
                }),
                Some(Err(e)) => Err(RequestError::Score(e)),
                // Unreachable: `reclaiming` means the producer has a scorer.
                None => Err(RequestError::Score(crate::error::ScoreError::Engine)),
            };
            self.record(result, due_ns, t0, hist);
            return true;
        }
        self.settle_oldest(t0, hist);
        false
    }

    /// Wait for everything in flight.
    fn drain(&mut self, t0: Stopwatch, hist: &mut Histogram<u64>) {
        while !self.pending.is_empty() {
            self.settle_oldest(t0, hist);
        }
    }
}

/// How [`compare`] runs.
#[derive(Debug, Clone, Copy)]
pub struct CompareOptions {
    /// Requests per second (both paths, one schedule).
    pub rate: f64,
    /// Requests per path.
    pub requests: usize,
    /// Requests before the schedule switches path.
    pub block: usize,
    /// The ring's caller reclaims requests no worker finished this long
    /// after submission ([`Producer::with_reclaim`]).
    pub reclaim_after: Option<Duration>,
}

/// Inline and ring side by side in one open-loop run (see
/// [`CompareOptions`]): the schedule alternates between the two paths every
/// `block` requests, so both meet the same machine (the worker keeps
/// spinning during inline blocks, stalls fall on both alike). Latency is
/// from each request's due time to the caller holding its scores. With
/// `control`, the second arm scores inline too, on that scorer: an A/A run
/// whose "added" latency is the comparison's own noise floor. Returns
/// (inline, ring).
pub fn compare(
    scorer: &mut Scorer,
    engine: &Engine,
    rows: &[f32],
    width: usize,
    options: &CompareOptions,
    mut control: Option<&mut Scorer>,
) -> (Run, Run) {
    let CompareOptions {
        rate,
        requests,
        block,
        reclaim_after,
    } = *options;
    let n_rows = (rows.len() / width).max(1);
    let row = |i: usize| &rows[(i % n_rows) * width..(i % n_rows + 1) * width];
    let interval_ns = 1e9 / rate.max(1.0);
    let block = block.max(1);
    let (mut inline_hist, mut ring_hist) = (histogram(), histogram());
    let mut inline_errors = 0u64;
    let mut out = vec![0f32; scorer.model().info().score_width];
    let mut ring = RingClient::new(engine, 256, false, reclaim_after);
    let t0 = Stopwatch::start();
    let due = |i: usize| Duration::from_nanos((i as f64 * interval_ns) as u64);
    for i in 0..requests * 2 {
        let on_ring = (i / block) % 2 == 1;
        if i % block == 0 && i > 0 {
            // Block boundary: finish the ring's requests before switching.
            ring.drain(t0, &mut ring_hist);
        }
        let due_ns = due(i).as_nanos() as u64;
        if let (true, Some(second)) = (on_ring, control.as_deref_mut()) {
            // A/A control: the second arm is inline too (the noise floor).
            while t0.elapsed() < due(i) {
                std::hint::spin_loop();
            }
            if second.score(row(i), &mut out).is_err() {
                ring.errors += 1;
            }
            ring_hist.saturating_record(
                ((t0.elapsed().as_nanos() as u64).saturating_sub(due_ns)).max(1),
            );
        } else if on_ring {
            ring.collect_until(t0, due(i), &mut ring_hist);
            ring.send(row(i), t0, due_ns, &mut ring_hist);
        } else {
            while t0.elapsed() < due(i) {
                std::hint::spin_loop();
            }
            if scorer.score(row(i), &mut out).is_err() {
                inline_errors += 1;
            }
            inline_hist.saturating_record(
                ((t0.elapsed().as_nanos() as u64).saturating_sub(due_ns)).max(1),
            );
        }
    }
    ring.drain(t0, &mut ring_hist);
    let half = t0.elapsed() / 2;
    (
        Run {
            requests: inline_hist.len(),
            histogram: inline_hist,
            errors: inline_errors,
            busy: 0,
            reclaimed: 0,
            elapsed: half,
        },
        Run {
            requests: ring_hist.len(),
            histogram: ring_hist,
            errors: ring.errors,
            busy: ring.busy,
            reclaimed: ring.reclaimed,
            elapsed: half,
        },
    )
}

/// The HdrHistogram percentile-distribution text format (`.hgrm`), values
/// in microseconds, as HdrHistogram's `outputPercentileDistribution` writes
/// it (and as its plotters read it).
pub fn hgrm(h: &Histogram<u64>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    for v in h.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        let q = v.quantile_iterated_to();
        let value = v.value_iterated_to() as f64 / 1000.0;
        if q < 1.0 {
            let _ = writeln!(
                s,
                "{value:>12.3} {q:>14.12} {total:>10} {:>14.2}",
                1.0 / (1.0 - q)
            );
        } else {
            let _ = writeln!(s, "{value:>12.3} {q:>14.12} {total:>10}");
        }
    }
    let _ = writeln!(
        s,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        h.mean() / 1000.0,
        h.stdev() / 1000.0
    );
    let _ = writeln!(
        s,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        h.max() as f64 / 1000.0,
        h.len()
    );
    let _ = writeln!(
        s,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        h.distinct_values()
    );
    s
}

/// An SVG plot of latency by percentile, log-scaled percentile axis (as
/// HdrHistogram plots are drawn), one line per named histogram.
pub fn svg(title: &str, series: &[(&str, &Histogram<u64>)]) -> String {
    let (w, h, left, bottom, top, right) = (820.0, 480.0, 70.0, 50.0, 40.0, 20.0);
    let max_nines = 5.0_f64; // up to 99.999%
    let x = |q: f64| left + (-(1.0 - q).max(1e-5).log10() / max_nines) * (w - left - right);
    let y_max = series
        .iter()
        .map(|(_, hist)| hist.value_at_quantile(0.99999) as f64 / 1000.0)
        .fold(1e-3, f64::max)
        * 1.1;
    let y = |us: f64| h - bottom - (us / y_max) * (h - top - bottom);
    let colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{left}" y="22" font-size="15">{title}</text>"#
    );
    for (i, label) in ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
        .iter()
        .enumerate()
    {
        let q = 1.0 - 10f64.powi(-(i as i32));
        let xi = x(if i == 0 { 0.0 } else { q });
        let _ = writeln!(
            s,
            r##"<line x1="{xi:.1}" y1="{top}" x2="{xi:.1}" y2="{:.1}" stroke="#ddd"/><text x="{xi:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
            h - bottom,
            h - bottom + 18.0
        );
    }
    for k in 0..=4 {
        let us = y_max * k as f64 / 4.0;
        let yk = y(us);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{yk:.1}" x2="{:.1}" y2="{yk:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end">{us:.1}</text>"##,
            w - right,
            left - 6.0,
            yk + 4.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="16" y="{:.1}" transform="rotate(-90 16 {:.1})" text-anchor="middle">latency (µs)</text>"#,
        h / 2.0,
        h / 2.0
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text>"#,
        (w + left) / 2.0,
        h - 8.0
    );
    for (k, (name, hist)) in series.iter().enumerate() {
        let mut points = String::new();
        for v in hist.iter_quantiles(5) {
            let q = v.quantile_iterated_to();
            if q > 0.99999 {
                break;
            }
            let _ = write!(
                points,
                "{:.1},{:.1} ",
                x(q),
                y(v.value_iterated_to() as f64 / 1000.0)
            );
        }
        let c = colours[k % colours.len()];
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{points}"/>"#
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" fill="{c}">{name}</text>"#,
            left + 10.0,
            top + 16.0 * (k as f64 + 1.0)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hgrm_lists_percentiles_in_microseconds() {
        let mut h = histogram();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let text = hgrm(&h);
        assert!(
            text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)"),
            "{text}"
        );
        assert!(
            text.contains("#[Max     =     1000.447, Total count    =         1000]"),
            "{text}"
        );
        // The last data line reaches percentile 1 at the max.
        let last = text
            .lines()
            .rfind(|l| !l.starts_with('#') && !l.is_empty())
            .unwrap();
        assert!(last.contains("1.000000000000"), "{last}");
        let svg = svg("t", &[("a", &h)]);
        assert!(
            svg.starts_with("<svg")
                && svg.contains("<polyline")
                && svg.trim_end().ends_with("</svg>")
        );
    }
}
