//! Candidate transports for the runtime's submission path, measured alone:
//! a ping-pong of an 8-byte message between two threads pinned to
//! different cores, round trip per iteration (`iter_custom`). crossbeam's
//! `ArrayQueue` (MPMC, what `Engine` uses) against an `rtrb` SPSC ring (what
//! per-producer lanes would use).
//!
//! Run: `cargo bench --bench transport`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use crossbeam_queue::ArrayQueue;

/// The machine's cores, read once before anything is pinned:
/// `core_affinity::get_core_ids` lists only the calling thread's allowed
/// cores, and a thread spawned by a pinned thread inherits its one core.
fn cores() -> &'static [core_affinity::CoreId] {
    static CORES: std::sync::OnceLock<Vec<core_affinity::CoreId>> = std::sync::OnceLock::new();
    CORES.get_or_init(|| core_affinity::get_core_ids().unwrap_or_default())
}

fn pin(core: usize) {
    let cores = cores();
    if let Some(&id) = cores.get(core % cores.len().max(1)) {
        core_affinity::set_for_current(id);
    }
}

fn array_queue(c: &mut Criterion) {
    assert!(cores().len() >= 2, "needs two cores");
    c.bench_function("transport/crossbeam_array_queue_round_trip", |b| {
        b.iter_custom(|iters| {
            let (ping, pong) = (
                Arc::new(ArrayQueue::<u64>::new(64)),
                Arc::new(ArrayQueue::<u64>::new(64)),
            );
            let stop = Arc::new(AtomicBool::new(false));
            let (p2, q2, s2) = (ping.clone(), pong.clone(), stop.clone());
            let echo = std::thread::spawn(move || {
                pin(1);
                while !s2.load(Ordering::Relaxed) {
                    if let Some(v) = p2.pop() {
                        while q2.push(v).is_err() {}
                    }
                }
            });
            pin(0);
            let t = Instant::now();
            for i in 0..iters {
                while ping.push(i).is_err() {}
                while pong.pop().is_none() {
                    std::hint::spin_loop();
                }
            }
            let elapsed = t.elapsed();
            stop.store(true, Ordering::Relaxed);
            let _ = echo.join();
            elapsed
        })
    });
}

fn rtrb_spsc(c: &mut Criterion) {
    c.bench_function("transport/rtrb_spsc_round_trip", |b| {
        b.iter_custom(|iters| {
            let (mut ping_tx, mut ping_rx) = rtrb::RingBuffer::<u64>::new(64);
            let (mut pong_tx, mut pong_rx) = rtrb::RingBuffer::<u64>::new(64);
            let stop = Arc::new(AtomicBool::new(false));
            let s2 = stop.clone();
            let echo = std::thread::spawn(move || {
                pin(1);
                while !s2.load(Ordering::Relaxed) {
                    if let Ok(v) = ping_rx.pop() {
                        while pong_tx.push(v).is_err() {}
                    }
                }
            });
            pin(0);
            let t = Instant::now();
            for i in 0..iters {
                while ping_tx.push(i).is_err() {}
                while pong_rx.pop().is_err() {
                    std::hint::spin_loop();
                }
            }
            let elapsed = t.elapsed();
            stop.store(true, Ordering::Relaxed);
            let _ = echo.join();
            elapsed
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(30);
    targets = array_queue, rtrb_spsc
}
criterion_main!(benches);
