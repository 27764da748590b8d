//! Submit → worker → complete allocates nothing once the engine is warm, on
//! any thread: a global counting allocator (this binary holds one test, so
//! nothing else runs) sees 0 allocations over 20,000 requests through the
//! shared queue, 20,000 through a registered producer's lane, and 20,000
//! through a producer that reclaims (scores on its own thread) whatever is
//! not done at its first look.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use tickscore::{Engine, EngineConfig, IdleStrategy, LoadOptions, Model};

struct Counting;
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call unchanged to `System`; the counter is a
// static atomic, so counting never allocates or re-enters.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Submit, retrying while the lane is full (Busy allocates nothing).
fn submit_retrying<'e>(p: &mut tickscore::Producer<'e>, row: &[f32]) -> tickscore::Ticket<'e> {
    loop {
        match p.submit(row) {
            Ok(t) => return t,
            Err(tickscore::SubmitError::Busy) => std::hint::spin_loop(),
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn submit_to_completion_allocates_nothing_after_warm_up() {
    for (name, idle) in [
        ("german_logreg", IdleStrategy::BusySpin),
        (
            "german_xgboost",
            IdleStrategy::SpinThenPark(std::time::Duration::from_micros(20)),
        ),
        ("german_mlp", IdleStrategy::Park),
    ] {
        let model = Model::load(common::model_path(name), &LoadOptions::default()).unwrap();
        let rows = common::test_rows(&model);
        let engine = Engine::start(
            &model,
            &EngineConfig {
                workers: 2,
                queue_depth: 64,
                idle,
                ..EngineConfig::default()
            },
        )
        .unwrap();
        let mut out = [0f32];
        for i in 0..1000 {
            engine
                .wait(engine.submit(rows.row(i % rows.rows())).unwrap(), &mut out)
                .unwrap();
        }
        // A registered producer's lane, warmed too (registering allocates).
        let mut producer = engine.register_producer().unwrap();
        for i in 0..1000 {
            let t = producer.submit(rows.row(i % rows.rows())).unwrap();
            engine.wait(t, &mut out).unwrap();
        }
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        let mut sum = 0f32;
        for i in 0..20_000 {
            let t = engine.submit(rows.row(i % rows.rows())).unwrap();
            engine.wait(t, &mut out).unwrap();
            sum += out[0];
            let t = producer.submit(rows.row(i % rows.rows())).unwrap();
            engine.wait(t, &mut out).unwrap();
            sum += out[0];
        }
        let after = ALLOCATIONS.load(Ordering::SeqCst);
        assert_eq!(
            after - before,
            0,
            "{name} ({idle:?}): {} allocations in 40,000 requests (shared queue and lane)",
            after - before
        );
        assert!(sum > 0.0);
        // A producer that takes back everything not done at its first look
        // (reclaim after 0): the caller's own scoring path, warmed, then
        // counted.
        drop(producer);
        let mut reclaiming = engine
            .register_producer()
            .unwrap()
            .with_reclaim(std::time::Duration::ZERO)
            .unwrap();
        // (This producer outruns the worker, which still passes every
        // place: a full lane answers Busy, without allocating; retry.)
        for i in 0..1000 {
            let t = submit_retrying(&mut reclaiming, rows.row(i % rows.rows()));
            reclaiming.wait(t, &mut out).unwrap();
        }
        let reclaimed_before = engine.snapshot().counters.reclaimed;
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        for i in 0..20_000 {
            let t = submit_retrying(&mut reclaiming, rows.row(i % rows.rows()));
            reclaiming.wait(t, &mut out).unwrap();
            sum += out[0];
        }
        let after = ALLOCATIONS.load(Ordering::SeqCst);
        assert_eq!(
            after - before,
            0,
            "{name} ({idle:?}): {} allocations in 20,000 requests with reclaim",
            after - before
        );
        assert!(sum > 0.0);
        let reclaimed = engine.snapshot().counters.reclaimed - reclaimed_before;
        assert!(
            reclaimed > 1000,
            "{name}: only {reclaimed} reclaimed: the path was not exercised"
        );
        let after = ALLOCATIONS.load(Ordering::SeqCst);
        // The counter counts: a snapshot (control plane) allocates.
        let _ = engine.snapshot();
        assert!(
            ALLOCATIONS.load(Ordering::SeqCst) > after,
            "the counting allocator is live"
        );
    }
}
