//! One pinned worker: pops slot indices, scores with its own scorer,
//! publishes results, records telemetry, sleeps per the idle strategy.
//! Allocates nothing per request (its row and score buffers are made once).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{fence, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Instant;

use super::slot::{RequestError, StageTimes};
use super::{publish, Completion, IdleStrategy, Shared, StageHistograms};
use crate::registry::VersionedScorer;

pub(crate) fn run(
    shared: Arc<Shared>,
    index: usize,
    core: Option<usize>,
    mut scorer: VersionedScorer,
    ready: Sender<()>,
) {
    if let Some(id) = core {
        // Best effort: an unpinnable worker still works, just unpinned.
        let _ = core_affinity::set_for_current(core_affinity::CoreId { id });
    }
    let mut row = vec![0f32; shared.width];
    let mut out = vec![0f32; shared.score_width];
    let mut spill = StageHistograms::new();
    let mut spilled = false;
    // Warm the scorer on this thread before taking traffic.
    let _ = scorer.score(&row, &mut out);
    let _ = ready.send(());
    drop(ready);
    let stats = &shared.stats[index];
    let mut idle_since: Option<Instant> = None;
    // Registered producers' lanes (adopting one allocates only if more than
    // this many are registered to this worker).
    let mut lanes: Vec<rtrb::Consumer<u32>> = Vec::with_capacity(64);
    let mut next = 0usize;
    loop {
        if !shared.new_lanes[index].is_empty() {
            while let Some(lane) = shared.new_lanes[index].pop() {
                lanes.push(lane);
            }
        }
        let Some(ix) = next_request(&shared, &mut lanes, &mut next) else {
            if shared.draining.load(Ordering::SeqCst)
                && shared.queue.is_empty()
                && lanes.iter().all(|l| l.is_empty())
                && shared.new_lanes[index].is_empty()
            {
                return;
            }
            idle(&shared, index, &lanes, &mut idle_since);
            continue;
        };
        idle_since = None;
        let slot = &shared.slots[ix as usize];
        let started = shared.now_ns();
        slot.set_time(1, started);
        let submitted = slot.time(0);
        let deadline = slot.deadline_ns.load(Ordering::Relaxed);
        let outcome = if deadline != 0 && started.saturating_sub(submitted) > deadline {
            stats.deadline.fetch_add(1, Ordering::Relaxed);
            Err(RequestError::DeadlineExceeded)
        } else {
            shared.rows.read(ix, &mut row);
            let result = catch_unwind(AssertUnwindSafe(|| {
                if let Some(hook) = shared.fault.get() {
                    hook(&row);
                }
                scorer.score(&row, &mut out)
            }));
            match result {
                Ok(Ok(_version)) => {
                    slot.write_output(&out);
                    stats.scored.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
                Ok(Err(e)) => {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    Err(RequestError::Score(e))
                }
                Err(_) => {
                    stats.panics.fetch_add(1, Ordering::Relaxed);
                    // The scorer may be inconsistent after a panic: replace it.
                    if let Ok(fresh) = shared.deployment.scorer() {
                        scorer = fresh;
                    }
                    Err(RequestError::Panicked)
                }
            }
        };
        let model_version = scorer.version().version();
        let completed = shared.now_ns();
        let times = StageTimes {
            queue_wait_ns: started.saturating_sub(submitted),
            compute_ns: completed.saturating_sub(started),
            end_to_end_ns: completed.saturating_sub(submitted),
            model_version,
        };
        stats.completed.fetch_add(1, Ordering::Relaxed);
        let tag = slot.callback_tag.load(Ordering::Relaxed);
        match (tag, &shared.on_complete) {
            (1.., Some(callback)) => {
                // The callback gets the result; the slot recycles itself.
                let completion = Completion {
                    tag: tag - 1,
                    result: outcome.map(|()| times),
                    scores: &out,
                };
                if catch_unwind(AssertUnwindSafe(|| callback(completion))).is_err() {
                    stats.panics.fetch_add(1, Ordering::Relaxed);
                }
                shared.release(ix);
            }
            _ => {
                slot.set_outcome(outcome);
                slot.model_version.store(model_version, Ordering::Relaxed);
                slot.set_time(2, completed);
                publish(&shared, ix);
            }
        }
        // Record without ever waiting: a snapshot holding the lock sends
        // this sample to the spill histograms, merged at the next chance.
        match stats.hist.try_lock() {
            Some(mut h) => {
                if spilled {
                    for (dst, src) in h.hist.iter_mut().zip(spill.hist.iter_mut()) {
                        let _ = dst.add(&*src);
                        src.reset();
                    }
                    spilled = false;
                }
                h.record(&times);
            }
            None => {
                spill.record(&times);
                spilled = true;
            }
        }
    }
}

/// The next request: lanes and the shared queue in turn (round-robin, so
/// none starves). Closed, drained lanes are dropped.
#[inline]
fn next_request(
    shared: &Shared,
    lanes: &mut Vec<rtrb::Consumer<u32>>,
    next: &mut usize,
) -> Option<u32> {
    let sources = lanes.len() + 1;
    for k in 0..sources {
        let i = (*next + k) % sources;
        let got = if i == lanes.len() {
            shared.queue.pop()
        } else {
            lanes[i].pop().ok()
        };
        if got.is_some() {
            *next = (i + 1) % sources;
            return got;
        }
    }
    // Nothing anywhere: a good moment to drop lanes whose producer is gone.
    lanes.retain(|l| !(l.is_abandoned() && l.is_empty()));
    None
}

fn idle(
    shared: &Shared,
    index: usize,
    lanes: &[rtrb::Consumer<u32>],
    idle_since: &mut Option<Instant>,
) {
    let spin_for = match shared.idle {
        IdleStrategy::BusySpin => {
            std::hint::spin_loop();
            return;
        }
        IdleStrategy::SpinThenPark(d) => d,
        IdleStrategy::Park => std::time::Duration::ZERO,
    };
    let since = *idle_since.get_or_insert_with(Instant::now);
    if since.elapsed() < spin_for {
        std::hint::spin_loop();
        return;
    }
    sleep(shared, index, lanes);
    *idle_since = None;
}

/// Sleep until a submitter (or shutdown) bumps `wake_epoch`.
fn sleep(shared: &Shared, index: usize, lanes: &[rtrb::Consumer<u32>]) {
    let seen = shared.wake_epoch.load(Ordering::Acquire);
    shared.sleepers.fetch_add(1, Ordering::SeqCst);
    // Pairs with the fence in `Engine::push`: either we see its request
    // here, or it sees us in `sleepers` and wakes us.
    fence(Ordering::SeqCst);
    if shared.queue.is_empty()
        && lanes.iter().all(|l| l.is_empty())
        && shared.new_lanes[index].is_empty()
        && !shared.draining.load(Ordering::SeqCst)
    {
        atomic_wait::wait(&shared.wake_epoch, seen);
    }
    shared.sleepers.fetch_sub(1, Ordering::SeqCst);
}
