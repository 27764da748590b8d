//! One pinned worker: pops slot indices, scores with its own scorer,
//! publishes results, records telemetry, sleeps per the idle strategy.
//! Allocates nothing per request (its row and score buffers are made once).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Instant;

use super::lane::Lane;
use super::slot::{RequestError, StageTimes};
use super::sync;
use super::{after_publish, bump, Completion, IdleStrategy, Shared, StageHistograms};
use crate::registry::VersionedScorer;

/// A request that waited longer than this in its lane is checked for having
/// been reclaimed by its producer before it is scored.
const RECLAIM_CHECK_NS: u64 = 2_000;

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
    // Registered producers' lanes, each with the sequence number of its
    // next request (adopting one allocates only past `max_producers`).
    let mut lanes: Vec<(Arc<Lane>, u64)> = Vec::with_capacity(shared.regions.len().max(1));
    // Warm the scorer on this thread before taking traffic.
    let _ = scorer.score(&row, &mut out);
    // Everything this worker allocates is allocated by now: `start` returns
    // once every worker has said so (an allocation after this line raced
    // with the callers' first requests; the zero-allocation test caught it).
    let _ = ready.send(());
    drop(ready);
    let stats = &shared.stats[index];
    let mut idle_since: Option<Instant> = None;
    let mut next = 0usize;
    let mut closed_seen = 0u64;
    loop {
        if !shared.new_lanes[index].is_empty() {
            while let Some(lane) = shared.new_lanes[index].pop() {
                lanes.push((lane, 0));
            }
        }
        let Some(request) = next_request(&shared, &mut lanes, &mut next, &mut closed_seen) else {
            if shared.draining.load(Ordering::SeqCst)
                && shared.queue.is_empty()
                && lanes.iter().all(|(l, seq)| !l.ready(*seq))
                && shared.new_lanes[index].is_empty()
            {
                return;
            }
            idle(&shared, index, &lanes, &mut idle_since);
            continue;
        };
        idle_since = None;
        let started = shared.now_ns();
        let (ix, submitted, deadline, tag) = match request {
            Request::Queued(ix) => {
                let slot = &shared.slots[ix as usize];
                let deadline = slot.deadline_ns.load(Ordering::Relaxed);
                let tag = slot.callback_tag.load(Ordering::Relaxed);
                let submitted = slot.time(0);
                shared.rows.read(ix, &mut row);
                (ix, submitted, deadline, tag)
            }
            Request::Lane(lane, seq) => {
                let taken = lanes[lane].0.read(seq, &mut row);
                (taken.slot, taken.submitted, taken.deadline, 0)
            }
        };
        let slot = &shared.slots[ix as usize];
        // Nothing is written to the slot until the result is complete: the
        // caller may be spinning on that cache line, and every early store
        // would have to take the line back from it.
        let waited = started.saturating_sub(submitted);
        let mut skipped = false;
        let outcome = if deadline != 0 && waited > deadline {
            bump(&stats.deadline);
            Err(RequestError::DeadlineExceeded)
        } else if waited > RECLAIM_CHECK_NS && slot.is_reclaimed() {
            // Late (a backlog): its producer may have scored it already. Only
            // then is the completion line read here (a miss while the caller
            // spins on it), and the worker catches up instead of scoring
            // twice. The result is dropped at publication either way.
            bump(&stats.reclaimed_skipped);
            skipped = true;
            Ok(())
        } else {
            let result = catch_unwind(AssertUnwindSafe(|| {
                if let Some(hook) = shared.fault.get() {
                    hook(&row);
                }
                scorer.score(&row, &mut out)
            }));
            match result {
                Ok(Ok(_version)) => Ok(()),
                Ok(Err(e)) => Err(RequestError::Score(e)),
                Err(_) => {
                    bump(&stats.panics);
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
            reclaimed: false,
        };
        // Counted before the hand-off, so a caller holding its result sees
        // it counted (plain stores: this worker is their only writer).
        bump(&stats.completed);
        match outcome {
            Ok(()) if skipped => {}
            Ok(()) => bump(&stats.scored),
            Err(RequestError::Score(_)) => bump(&stats.errors),
            Err(_) => {}
        }
        match (tag, &shared.on_complete) {
            (1.., Some(callback)) => {
                // The callback gets the result; the slot recycles itself.
                let completion = Completion {
                    tag: tag - 1,
                    result: outcome.map(|()| times),
                    scores: &out,
                };
                if catch_unwind(AssertUnwindSafe(|| callback(completion))).is_err() {
                    bump(&stats.panics);
                }
                shared.release(ix);
            }
            _ => {
                let after = slot.complete(
                    outcome,
                    &out,
                    [submitted, started, completed],
                    model_version,
                );
                after_publish(&shared, ix, after);
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

/// Where the next request comes from.
enum Request {
    /// A shared-queue slot.
    Queued(u32),
    /// Lane `.0` (index into the worker's lanes), request `.1`; the lane's
    /// cursor has already moved past it.
    Lane(usize, u64),
}

/// The next request: lanes and the shared queue in turn (round-robin, so
/// none starves). Lanes whose producer is gone are let go once drained.
#[inline]
fn next_request(
    shared: &Shared,
    lanes: &mut Vec<(Arc<Lane>, u64)>,
    next: &mut usize,
    closed_seen: &mut u64,
) -> Option<Request> {
    let sources = lanes.len() + 1;
    for k in 0..sources {
        let i = (*next + k) % sources;
        let got = if i == lanes.len() {
            shared.queue.pop().map(Request::Queued)
        } else {
            let (lane, seq) = &mut lanes[i];
            lane.ready(*seq).then(|| {
                *seq += 1;
                Request::Lane(i, *seq - 1)
            })
        };
        if got.is_some() {
            *next = (i + 1) % sources;
            return got;
        }
    }
    // Nothing anywhere: a good moment to let closed, drained lanes go (only
    // looked at when a producer has been dropped since). The close is
    // checked before the last look, so a request written before it is never
    // left behind.
    let closed = shared.lanes_closed.load(Ordering::Acquire);
    if closed == *closed_seen {
        return None;
    }
    *closed_seen = closed;
    lanes.retain(|(lane, seq)| {
        let gone = lane.is_closed() && !lane.ready(*seq);
        if gone {
            shared.regions[lane.region].store(false, Ordering::Release);
        }
        if lane.is_closed() && !gone {
            // Closed with requests left: look again next time.
            *closed_seen = closed_seen.wrapping_sub(1);
        }
        !gone
    });
    None
}

fn idle(
    shared: &Shared,
    index: usize,
    lanes: &[(Arc<Lane>, u64)],
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
fn sleep(shared: &Shared, index: usize, lanes: &[(Arc<Lane>, u64)]) {
    let seen = shared.wake_epoch.load(Ordering::Acquire);
    shared.sleepers.fetch_add(1, Ordering::SeqCst);
    // Pairs with the light fence in `Shared::wake`: either we see its
    // request here, or it sees us in `sleepers` and wakes us.
    sync::heavy_fence();
    if shared.queue.is_empty()
        && lanes
            .iter()
            .all(|(l, seq)| !l.ready(*seq) && !l.is_closed())
        && shared.new_lanes[index].is_empty()
        && !shared.draining.load(Ordering::SeqCst)
    {
        atomic_wait::wait(&shared.wake_epoch, seen);
    }
    shared.sleepers.fetch_sub(1, Ordering::SeqCst);
}
