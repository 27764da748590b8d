//! Model check (loom) of a registered producer's lane and the completion
//! slots: every interleaving of the producer/caller thread and the worker
//! thread (no preemption bound: 30,748 and 35,208 executions, ~4 s), and
//! every value the C11 memory model lets a load return, through the functions the engine
//! itself calls (`Lane::try_submit`, `ready`, `read`; `Slot::complete`,
//! `is_done`, `result`, `set_free`, `abandon`). Loom models the C11 memory
//! model, so a release/acquire edge missing in the lane shows up here as a
//! stale or torn row.
//!
//! Run: `cargo test --release --features loom --test loom_lane`
//! (the `loom` feature swaps the runtime's atomics for loom's; nothing else
//! may run with it). Not modelled: the futex sleep of parked callers and
//! idle workers, and the `membarrier` fence pair of the sleep protocol
//! (loom has neither); those are exercised by the stress tests.
#![cfg(feature = "loom")]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};

use loom::sync::Arc;
use loom::thread;
use tickscore::runtime::model_check::{AfterPublish, Lane, Slot};

/// Interleavings explored, per test (printed: evidence the check ran).
static EXPLORED: [AtomicUsize; 3] = [
    AtomicUsize::new(0),
    AtomicUsize::new(0),
    AtomicUsize::new(0),
];

/// Row `seq` of the model: two values unique to it.
fn row(seq: u64) -> [f32; 2] {
    [seq as f32, seq as f32 + 0.25]
}

fn slots(n: usize) -> Arc<Vec<Slot>> {
    Arc::new((0..n).map(|_| Slot::new(1)).collect())
}

/// The worker's loop for `n` requests: wait for each, read it whole,
/// "score" it (the sum), publish; recycle what was abandoned.
fn worker(lane: Arc<Lane>, slots: Arc<Vec<Slot>>, n: u64) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut r = [0f32; 2];
        for seq in 0..n {
            while !lane.ready(seq) {
                thread::yield_now();
            }
            let t = lane.read(seq, &mut r);
            assert_eq!(r, row(seq), "request {seq} arrived whole and current");
            assert_eq!(t.submitted, 1000 + seq);
            assert_eq!(t.deadline, 7);
            let slot = &slots[t.slot as usize];
            let after = slot.complete(Ok(()), &[r[0] + r[1]], [t.submitted, 1, 2], 42);
            if after == AfterPublish::Recycle {
                slot.set_free();
            }
        }
    })
}

/// Three requests through a lane of two places (the third reuses the
/// first's place, so the producer must wait for that result to be taken):
/// every result is the sum of its own row, taken exactly once.
#[test]
fn requests_arrive_whole_and_each_result_comes_back_once() {
    let model = loom::model::Builder::new();
    model.check(|| {
        EXPLORED[0].fetch_add(1, Ordering::Relaxed);
        let lane = Arc::new(Lane::new(2, 2, 0, 0));
        let slots = slots(2);
        let w = worker(lane.clone(), slots.clone(), 3);
        let mut pending: VecDeque<(u32, u64)> = VecDeque::new();
        let (mut next, mut taken) = (0u64, 0u64);
        while taken < 3 {
            if next < 3 {
                let ix = lane.completion_slot(next);
                if lane.try_submit(&slots[ix as usize], next, &row(next), 1000 + next, 7) {
                    pending.push_back((ix, next));
                    next += 1;
                    continue;
                }
            }
            if let Some(&(ix, seq)) = pending.front() {
                let slot = &slots[ix as usize];
                if slot.is_done() {
                    let mut out = [0f32];
                    let times = slot.result(&mut out).expect("scored");
                    let [a, b] = row(seq);
                    assert_eq!(out[0], a + b, "request {seq}'s own score");
                    assert_eq!(times.model_version, 42);
                    assert_eq!(times.end_to_end_ns, 2u64.saturating_sub(1000 + seq));
                    slot.set_free();
                    pending.pop_front();
                    taken += 1;
                    continue;
                }
            }
            thread::yield_now();
        }
        w.join().unwrap();
    });
    report(0);
}

/// A caller drops its ticket while the worker may be scoring it: the place
/// is recycled exactly once (by the caller if the result was in, else by
/// the worker), and the lane takes the next request in it.
#[test]
fn an_abandoned_request_frees_its_place_exactly_once() {
    let model = loom::model::Builder::new();
    model.check(|| {
        EXPLORED[1].fetch_add(1, Ordering::Relaxed);
        let lane = Arc::new(Lane::new(1, 2, 0, 0));
        let slots = slots(1);
        let w = worker(lane.clone(), slots.clone(), 2);
        let ix = lane.completion_slot(0);
        assert!(
            lane.try_submit(&slots[ix as usize], 0, &row(0), 1000, 7),
            "an empty lane has room"
        );
        if slots[ix as usize].abandon() {
            slots[ix as usize].set_free();
        }
        // The only place comes back (from whichever side recycles it).
        second_request_goes_through(&lane, &slots);
        w.join().unwrap();
    });
    report(1);
}

/// A producer takes its request back (reclaim) while the worker may be
/// reading or scoring it: the caller gets exactly one result (its own, or
/// the worker's if that was published first), the row it reads back is its
/// own, and the place is recycled exactly once, by the worker.
#[test]
fn a_reclaimed_request_yields_one_result_and_its_place_comes_back() {
    loom::model::Builder::new().check(|| {
        EXPLORED[2].fetch_add(1, Ordering::Relaxed);
        let lane = Arc::new(Lane::new(1, 2, 0, 0));
        let slots = slots(1);
        let w = {
            let (lane, slots) = (lane.clone(), slots.clone());
            thread::spawn(move || {
                let mut r = [0f32; 2];
                for seq in 0..2u64 {
                    while !lane.ready(seq) {
                        thread::yield_now();
                    }
                    let t = lane.read(seq, &mut r);
                    assert_eq!(r, row(seq));
                    let slot = &slots[t.slot as usize];
                    // The engine looks only for a late request; the model
                    // looks every time (both branches are explored).
                    let score = if slot.is_reclaimed() {
                        f32::NAN
                    } else {
                        r[0] + r[1]
                    };
                    if slot.complete(Ok(()), &[score], [t.submitted, 1, 2], 42)
                        == AfterPublish::Recycle
                    {
                        slot.set_free();
                    }
                }
            })
        };
        let ix = lane.completion_slot(0);
        assert!(lane.try_submit(&slots[ix as usize], 0, &row(0), 1000, 0));
        let [a, b] = row(0);
        let mine = if slots[ix as usize].reclaim() {
            // Ours: score it here, from the row as the lane holds it.
            let mut r = [0f32; 2];
            lane.read(0, &mut r);
            assert_eq!(r, row(0));
            r[0] + r[1]
        } else {
            while !slots[ix as usize].is_done() {
                thread::yield_now();
            }
            let mut out = [0f32];
            slots[ix as usize].result(&mut out).expect("scored");
            slots[ix as usize].set_free();
            out[0]
        };
        assert_eq!(mine, a + b, "exactly one, correct, result");
        // The place comes back (the worker recycles a reclaimed one).
        second_request_goes_through(&lane, &slots);
        w.join().unwrap();
    });
    report(2);
}

/// In a one-place lane: request 1 is accepted once its place is free
/// again, and its own result comes back.
fn second_request_goes_through(lane: &Lane, slots: &[Slot]) {
    let ix = lane.completion_slot(1) as usize;
    while !lane.try_submit(&slots[ix], 1, &row(1), 1001, 7) {
        thread::yield_now();
    }
    while !slots[ix].is_done() {
        thread::yield_now();
    }
    let mut out = [0f32];
    slots[ix].result(&mut out).expect("scored");
    let [a, b] = row(1);
    assert_eq!(out[0], a + b);
    slots[ix].set_free();
}

/// Print (and check) how many executions model `i` explored.
fn report(i: usize) {
    let n = EXPLORED[i].load(Ordering::Relaxed);
    println!("{n} interleavings explored");
    assert!(n > 100, "loom explored only {n} executions");
}
