//! Per-call latency of `Scorer::score` in Rust, measured exactly as
//! tests/cpp/bench_abi.cpp measures `ts_score` through the C ABI (a
//! clock-free block for the mean, then one timed call at a time, sorted),
//! so the difference between the two is the ABI's cost.
//!
//! `cargo run --release --example inline_latency -- MODEL ROWS.csv CALLS`
//! (scripts/bench-abi runs both).
use std::time::Instant;

use tickscore::{input::read_features_file, LoadOptions, Model};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, rows, calls] = args.as_slice() else {
        return Err("usage: inline_latency MODEL ROWS.csv CALLS".into());
    };
    let calls: usize = calls.parse()?;
    let model = Model::load(model, &LoadOptions::default())?;
    let w = model.info().input_width;
    let rows = read_features_file(std::path::Path::new(rows), w, None)?;
    let n = rows.rows();
    let mut scorer = model.scorer()?;
    let (mut out, mut sum) = ([0f32], 0f32);
    for i in 0..calls / 10 {
        scorer.score(rows.row(i % n), &mut out)?;
    }
    let b0 = Instant::now();
    for i in 0..calls {
        scorer.score(rows.row(i % n), &mut out)?;
        sum += out[0];
    }
    let mean = b0.elapsed().as_nanos() as f64 / calls as f64;
    let mut ns = Vec::with_capacity(calls);
    for i in 0..calls {
        let t0 = Instant::now();
        let r = scorer.score(rows.row(i % n), &mut out);
        ns.push(t0.elapsed().as_nanos() as u64);
        r?;
        sum += out[0];
    }
    ns.sort_unstable();
    let q = |p: f64| ns[((p * calls as f64) as usize).min(calls - 1)];
    println!(
        "rust  mean {mean:.1} ns  p50 {} ns  p99 {} ns  p99.9 {} ns  (checksum {sum:.3})",
        q(0.5),
        q(0.99),
        q(0.999)
    );
    Ok(())
}
