//! Where a lane round trip's time goes: one pinned producer, one pinned
//! busy-spinning worker, one request at a time; prints the round trip the
//! caller sees and the engine's own stage times (queue wait = submit to
//! the worker taking it; compute; end to end = submit to publish).
//!
//! `cargo run --release --example lane_probe -- [model] [requests]`

use std::path::Path;
use std::time::Instant;

use tickscore::input::read_features_by_name_from_any;
use tickscore::{Engine, EngineConfig, IdleStrategy, LoadOptions, Model};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "german_logreg".into());
    let n: usize = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let model = Model::load(dir.join(&name).join("model.onnx"), &LoadOptions::default())?;
    let names = model
        .info()
        .feature_names
        .clone()
        .ok_or("model without feature names")?;
    // The 119-feature model reads the wide encoding of the same rows.
    let data = dir.join("data");
    let rows = read_features_by_name_from_any(
        &[
            &data.join("german_test.csv"),
            &data.join("german_wide_test.csv"),
        ],
        &names,
    )?;
    let engine = Engine::start(
        &model,
        &EngineConfig {
            cores: Some(vec![1]),
            idle: IdleStrategy::BusySpin,
            ..EngineConfig::default()
        },
    )?;
    core_affinity::set_for_current(core_affinity::CoreId { id: 0 });
    let mut producer = engine.register_producer()?;
    let mut out = vec![0f32; engine.score_width()];
    let mut rt = hdrhistogram::Histogram::<u64>::new(3)?;
    for i in 0..n {
        let t = Instant::now();
        let ticket = producer.submit(rows.row(i % rows.rows()))?;
        engine.wait(ticket, &mut out)?;
        rt.record(t.elapsed().as_nanos() as u64)?;
    }
    let s = engine.snapshot();
    println!("{name}: {n} round trips, one at a time");
    println!(
        "round trip (caller)   p50 {:>6} ns  p99 {:>6} ns",
        rt.value_at_quantile(0.5),
        rt.value_at_quantile(0.99)
    );
    for (label, l) in [
        ("queue wait", &s.queue_wait),
        ("compute", &s.compute),
        ("end to end", &s.end_to_end),
    ] {
        println!("{label:<21} p50 {:>6} ns  p99 {:>6} ns", l.p50_ns, l.p99_ns);
    }
    Ok(())
}
