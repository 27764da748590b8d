//! How often does this machine take a core away from a busy thread, and
//! for how long? One thread per core, each pinned, spins reading the clock
//! and records every gap between two consecutive reads longer than 2 µs
//! (an interrupt, a hypervisor exit, a preemption). No tickscore code runs:
//! this measures the floor under every tail latency in the benchmarks.
//!
//! ```sh
//! cargo run --release --example stall_probe            # 5 s on every core
//! cargo run --release --example stall_probe -- 20      # 20 s
//! cargo run --release --example stall_probe -- 20 shared
//! ```
//!
//! `shared`: the threads also write one shared cache line on every
//! iteration, so it bounces between the cores as a ring's lines do (to see
//! whether cross-core traffic changes how often the machine stalls them).

use std::time::{Duration, Instant};

fn main() {
    let seconds: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let shared = std::env::args().nth(2).as_deref() == Some("shared");
    static LINE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let handles: Vec<_> = cores
        .into_iter()
        .map(|core| {
            std::thread::spawn(move || {
                let pinned = core_affinity::set_for_current(core);
                let mut gaps: Vec<u64> = Vec::with_capacity(1 << 20);
                let end = Instant::now() + Duration::from_secs_f64(seconds);
                let mut last = Instant::now();
                while last < end {
                    let now = Instant::now();
                    let gap = now.duration_since(last).as_nanos() as u64;
                    if gap > 2_000 {
                        gaps.push(gap);
                    }
                    if shared {
                        LINE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    last = now;
                }
                (core.id, pinned, gaps)
            })
        })
        .collect();
    println!(
        "stall probe: {seconds} s, one spinning thread per core{}; gaps between clock reads > 2 µs",
        if shared {
            ", writing one shared cache line"
        } else {
            ""
        }
    );
    println!(
        "{:>4} {:>7} {:>9} {:>9} {:>9} {:>9} {:>10} {:>12}",
        "core", "pinned", "stalls/s", ">10 µs/s", ">100 µs/s", ">1 ms/s", "max", "time lost"
    );
    for h in handles {
        let Ok((id, pinned, mut gaps)) = h.join() else {
            eprintln!("a probe thread panicked");
            continue;
        };
        gaps.sort_unstable();
        let per_s = |min: u64| gaps.iter().filter(|&&g| g > min).count() as f64 / seconds;
        let lost: u64 = gaps.iter().sum();
        println!(
            "{:>4} {:>7} {:>9.0} {:>9.0} {:>9.1} {:>9.2} {:>8.2} ms {:>10.3} %",
            id,
            pinned,
            per_s(2_000),
            per_s(10_000),
            per_s(100_000),
            per_s(1_000_000),
            gaps.last().copied().unwrap_or(0) as f64 / 1e6,
            lost as f64 / (seconds * 1e9) * 100.0
        );
    }
}
