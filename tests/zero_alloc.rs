//! The hot path allocates nothing: a counting global allocator watches
//! ≥ 10,000 inline scores (single rows and batches) on every lowered model.
//!
//! Counting is per thread, so the test harness's other threads do not
//! disturb the count.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use tickscore::{LoadOptions, Model, Tier};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the thread-local counter has a const initialiser
// and no destructor, so touching it never allocates or re-enters.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

const CALLS: usize = 12_000;

#[test]
fn lowered_inline_scoring_allocates_nothing_after_warm_up() {
    let mut lowered = 0;
    for name in common::bundled_models() {
        let Ok(model) = Model::load(common::model_path(&name), &LoadOptions::default()) else {
            continue; // load failures are parity.rs's to report
        };
        if !matches!(model.tier(), Tier::Lowered { .. }) {
            continue;
        }
        lowered += 1;
        let rows = common::test_rows(&model);
        let mut scorer = model.scorer().unwrap();
        let mut out = [0f32];
        let mut batch_out = vec![0f32; 64];
        let batch = &rows.values[..64 * rows.width];
        // Warm-up: the first call of each form.
        scorer.score(rows.row(0), &mut out).unwrap();
        scorer.score_batch(batch, &mut batch_out).unwrap();

        let before = allocations();
        let mut checksum = 0f32;
        for i in 0..CALLS {
            scorer.score(rows.row(i % rows.rows()), &mut out).unwrap();
            checksum += out[0];
        }
        for _ in 0..100 {
            scorer.score_batch(batch, &mut batch_out).unwrap();
        }
        // Errors are Copy values: rejecting a row allocates nothing either.
        let bad = scorer.score(&rows.values[..3], &mut out);
        assert!(bad.is_err());
        let after = allocations();
        assert_eq!(
            after - before,
            0,
            "{name}: {} allocations in {CALLS} calls",
            after - before
        );
        assert!(
            checksum.is_finite() && checksum > 0.0,
            "{name}: scores were computed"
        );
    }
    assert!(
        lowered >= 2,
        "expected the logistic and MLP models to be lowered"
    );
}

#[test]
fn the_counter_sees_allocations() {
    // Guard against a counter that never counts (the test above would then
    // prove nothing).
    let before = allocations();
    let v: Vec<u64> = std::hint::black_box(Vec::with_capacity(16));
    drop(v);
    assert!(allocations() > before);
}

/// The registry's versioned scorer (serving-pointer check per call, bounds
/// check, version report) allocates nothing either, also across swaps
/// between two warm versions once each has been seen on this thread.
#[test]
fn versioned_scoring_allocates_nothing_across_swaps() {
    use tickscore::registry::PublishOptions;
    let dir = common::TempDir::new("zero-alloc-registry");
    common::add_version(&dir.0, "m", 1, "german_logreg", Some(&common::test_key()));
    common::add_version(&dir.0, "m", 2, "german_mlp", Some(&common::test_key()));
    let reg = tickscore::Registry::open(&dir.0, common::registry_options()).unwrap();
    reg.publish("m", 1, "t", PublishOptions::default()).unwrap();
    reg.publish("m", 2, "t", PublishOptions::default()).unwrap();
    let deployment = reg.deployment("m").unwrap();
    let mut scorer = deployment.scorer().unwrap();
    let model = deployment.current().model().clone();
    let rows = common::test_rows(&model);
    let mut out = [0f32];
    // Warm-up: see both versions once.
    for v in [1, 2] {
        reg.publish("m", v, "t", PublishOptions::default()).unwrap();
        assert_eq!(scorer.score(rows.row(0), &mut out), Ok(v));
    }
    let mut allocated = 0;
    let mut versions = [0u64; 3];
    for swap in 0..200 {
        // The swap itself is control-plane work (audit record, files).
        reg.publish("m", 1 + swap % 2, "t", PublishOptions::default())
            .unwrap();
        let before = allocations();
        for i in 0..100 {
            let v = scorer.score(rows.row(i % rows.rows()), &mut out).unwrap();
            versions[v as usize] += 1;
        }
        allocated += allocations() - before;
    }
    assert_eq!(
        allocated, 0,
        "{allocated} allocations in 20,000 versioned calls"
    );
    assert_eq!(versions, [0, 10_000, 10_000]);
}
