//! The open-loop harness reports a stall that closed-loop timing hides:
//! one 5 ms pause injected into a 10,000-request run at 1,000 requests/s.
//!
//! In open loop each latency counts from the request's due time, so the
//! requests due during the pause wait behind it (5, 4, 3, 2, 1 ms); in
//! closed loop only the paused request itself is slow. (With 10,000
//! requests, p99.9 is the 10th-largest latency: one 5 ms pause at 1 ms
//! spacing delays only 5 requests (0.05%), so it shows from p99.96 up, not
//! at p99.9; the test asserts on the delayed requests themselves.)

mod common;

use std::time::Duration;

use tickscore::loadgen::{run, Pacing, Run, Target};
use tickscore::{LoadOptions, Model};

const REQUESTS: usize = 10_000;
const STALL_AT: usize = 5_000;

fn stalled_run(pacing: Pacing) -> Run {
    let model = Model::load(common::model_path("german_logreg"), &LoadOptions::default()).unwrap();
    let rows = common::test_rows(&model);
    let mut scorer = model.scorer().unwrap();
    let stall = |i: usize| {
        if i == STALL_AT {
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    run(
        Target::Inline(&mut scorer),
        &rows.values,
        rows.width,
        pacing,
        REQUESTS,
        stall,
        |_| {},
    )
}

fn at_least(run: &Run, ns: u64) -> u64 {
    run.histogram
        .iter_recorded()
        .filter(|v| v.value_iterated_to() >= ns)
        .map(|v| v.count_at_value())
        .sum()
}

#[test]
fn open_loop_shows_the_stall_that_closed_loop_hides() {
    let open = stalled_run(Pacing::Rate(1000.0));
    let closed = stalled_run(Pacing::Closed);
    let ms = 1_000_000;
    let (open_slow, closed_slow) = (at_least(&open, ms), at_least(&closed, ms));
    println!(
        "open loop: max {:.2} ms, p99.96 {:.3} ms, {open_slow} requests >= 1 ms; closed loop: max {:.2} ms, {closed_slow} >= 1 ms",
        open.histogram.max() as f64 / 1e6,
        open.histogram.value_at_quantile(0.9996) as f64 / 1e6,
        closed.histogram.max() as f64 / 1e6,
    );
    assert_eq!(open.requests, REQUESTS as u64);
    assert!(
        open.histogram.max() >= 5 * ms,
        "the paused request took 5 ms"
    );
    assert!(
        open_slow >= 4,
        "requests due during the pause are late: {open_slow}"
    );
    assert!(
        at_least(&open, 4 * ms) >= 2,
        "the next request waited ~4 ms"
    );
    // Closed loop sees only the paused request (others may catch a VM hiccup).
    assert!(closed.histogram.max() >= 5 * ms);
    assert!(
        closed_slow < open_slow,
        "closed loop hides the queueing: {closed_slow} vs {open_slow}"
    );
    assert!(
        open.elapsed >= Duration::from_millis(9_900),
        "paced at 1,000/s: {:?}",
        open.elapsed
    );
}
