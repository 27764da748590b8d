//! Latency while the serving version is swapped continuously, against the
//! steady state, in one run (HdrHistogram, ns).
//!
//! ```sh
//! cargo bench --bench hot_swap                 # 400,000 calls per phase and path
//! cargo bench --bench hot_swap -- --calls 100000
//! cargo bench --bench hot_swap -- --interval-us 1000   # pause between swaps
//! cargo bench --bench hot_swap -- --audit /dev/shm/a.jsonl   # audit log off the disk
//! ```
//!
//! The registry holds the same MLP twice (v1 and v2: same bytes, loaded
//! separately, so each has its own plan and each scorer its own arena):
//! any difference between the phases is the cost of swapping, not of a
//! different model. One thread scores on the bench thread; a second
//! thread either sleeps (steady) or publishes v1 ⇄ v2 continuously, one
//! swap per `--interval-us` (default 1000: a thousand versions a second;
//! 0 = back to back). Each publish writes and fsyncs its audit record, then
//! swaps the pointer. The scoring thread is pinned to core 0, the swapper
//! (and the ring's worker) to core 1. The two phases alternate in blocks of `BLOCK` calls so
//! both see the same machine. Paths: inline (`VersionedScorer`) and the
//! ring (`Engine::start_deployment`, one busy-spinning worker, submit then
//! wait). Under `cargo test` (no `--bench`) it runs a short smoke version.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tickscore::input::read_features_by_name;
use tickscore::registry::{write_manifest, PublishOptions, SigningKey};
use tickscore::{Engine, EngineConfig, IdleStrategy, Registry, RegistryOptions};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BLOCK: usize = 10_000;
const NAME: &str = "mlp";

type Error = Box<dyn std::error::Error>;

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

fn row(h: &Histogram<u64>) -> String {
    let q = |p: f64| h.value_at_quantile(p) as f64 / 1000.0;
    format!(
        "{:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>10.1}",
        q(0.5),
        q(0.99),
        q(0.999),
        q(0.9999),
        h.max() as f64 / 1000.0
    )
}

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let (mut calls, mut benching) = (400_000usize, false);
    let mut interval_us = 1000u64;
    let mut audit: Option<std::path::PathBuf> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bench" => benching = true,
            "--interval-us" => interval_us = args.next().ok_or("--interval-us N")?.parse()?,
            "--audit" => audit = Some(args.next().ok_or("--audit PATH")?.into()),
            "--calls" => calls = args.next().ok_or("--calls N")?.parse()?,
            _ => {}
        }
    }
    if !benching {
        calls = 2 * BLOCK; // smoke run under `cargo test --benches`
    }
    let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let root = std::env::temp_dir().join(format!("tickscore-bench-swap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let key = SigningKey::from_seed([1; 32]);
    for v in [1u64, 2] {
        let dir = root.join(NAME).join(v.to_string());
        std::fs::create_dir_all(&dir)?;
        std::fs::copy(models.join("german_mlp/model.onnx"), dir.join("model.onnx"))?;
        write_manifest(&dir, NAME, v, None, Some(&key))?;
    }
    let registry = Arc::new(Registry::open(
        &root,
        RegistryOptions {
            trusted_keys: vec![key.public()],
            persist: false,
            audit_log: audit,
            ..Default::default()
        },
    )?);
    for v in [1, 2] {
        registry.publish(NAME, v, "bench", PublishOptions::default())?;
    }
    let deployment = registry.deployment(NAME).ok_or("not served")?;
    let features = deployment.current().manifest().input.features.clone();
    let rows = read_features_by_name(&models.join("data/german_test.csv"), &features)?;

    // The swapper: publishes back to back while `swapping` is set.
    let swapping = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicU64::new(0));
    let swapper = {
        let (registry, swapping, stop, swaps) = (
            registry.clone(),
            swapping.clone(),
            stop.clone(),
            swaps.clone(),
        );
        std::thread::spawn(move || -> Result<(), tickscore::RegistryError> {
            // The control plane lives on core 1 (with the disk's interrupts
            // on this VM), away from the scoring thread on core 0.
            let _ = core_affinity::set_for_current(core_affinity::CoreId { id: 1 });
            let mut v = 1;
            while !stop.load(Ordering::Relaxed) {
                if swapping.load(Ordering::Relaxed) {
                    registry.publish(NAME, v, "bench", PublishOptions::default())?;
                    swaps.fetch_add(1, Ordering::Relaxed);
                    v = 3 - v;
                    if interval_us > 0 {
                        std::thread::sleep(Duration::from_micros(interval_us));
                    }
                } else {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            Ok(())
        })
    };

    // The scoring thread owns core 0, as a trading thread would.
    let _ = core_affinity::set_for_current(core_affinity::CoreId { id: 0 });
    let mut scorer = deployment.scorer()?;
    let mut out = [0f32];
    // Warm the scorer on both versions.
    for i in 0..2000 {
        if i == 1000 {
            registry.publish(NAME, 1, "bench", PublishOptions::default())?;
        }
        scorer.score(rows.row(i % rows.rows()), &mut out)?;
    }

    println!(
        "hot swap bench: {calls} calls per phase and path, blocks of {BLOCK}; MLP v1 == v2 bytes"
    );
    println!(
        "{:<7} {:<9} {:>9} {:>9} {:>9} {:>9} {:>10}  (µs)",
        "path", "phase", "p50", "p99", "p99.9", "p99.99", "max"
    );
    for path in ["inline", "ring"] {
        // The busy-spinning worker runs only for the ring path.
        let engine = (path == "ring")
            .then(|| {
                Engine::start_deployment(
                    &deployment,
                    &EngineConfig {
                        workers: 1,
                        cores: Some(vec![1]),
                        idle: IdleStrategy::BusySpin,
                        ..Default::default()
                    },
                )
            })
            .transpose()?;
        let (mut steady, mut swap) = (hist(), hist());
        let (mut versions_seen, swaps_before) = ([0u64; 3], swaps.load(Ordering::Relaxed));
        let mut swap_time = Duration::ZERO;
        let mut done = [0usize; 2];
        let mut i = 0usize;
        while done[0] < calls || done[1] < calls {
            let phase = usize::from(done[0] >= done[1] && done[1] < calls);
            swapping.store(phase == 1, Ordering::Relaxed);
            let started = Instant::now();
            let h = if phase == 1 { &mut swap } else { &mut steady };
            for _ in 0..BLOCK {
                let r = rows.row(i % rows.rows());
                i += 1;
                let t0 = Instant::now();
                let v = match &engine {
                    None => scorer.score(r, &mut out)?,
                    Some(e) => {
                        let t = e.submit(r)?;
                        e.wait(t, &mut out)?.model_version
                    }
                };
                let ns = t0.elapsed().as_nanos() as u64;
                h.record(ns.max(1))?;
                if phase == 1 {
                    versions_seen[v as usize] += 1;
                }
            }
            if phase == 1 {
                swap_time += started.elapsed();
            }
            done[phase] += BLOCK;
        }
        swapping.store(false, Ordering::Relaxed);
        let n_swaps = swaps.load(Ordering::Relaxed) - swaps_before;
        println!("{path:<7} {:<9} {}", "steady", row(&steady));
        println!("{path:<7} {:<9} {}", "swapping", row(&swap));
        let ratio = |p: f64| swap.value_at_quantile(p) as f64 / steady.value_at_quantile(p) as f64;
        println!(
            "{path:<7} swapping/steady: p50 {:.2}x, p99 {:.2}x, p99.9 {:.2}x; {n_swaps} swaps \
             ({:.0}/s while swapping); calls on v1 {}, v2 {}",
            ratio(0.5),
            ratio(0.99),
            ratio(0.999),
            n_swaps as f64 / swap_time.as_secs_f64().max(1e-9),
            versions_seen[1],
            versions_seen[2]
        );
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().map_err(|_| "swapper panicked")??;
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}
