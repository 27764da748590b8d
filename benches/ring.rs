//! The worker runtime against the inline path on the same model and rows:
//! one producer, one worker pinned and busy-spinning, a full round trip
//! (submit, worker scores, caller waits) per iteration, timed with
//! `iter_custom`, through the shared MPMC queue and through a registered
//! producer's lane; and closed-loop throughput with 1 and 2 workers (256
//! requests in flight). Models: logistic (61 features), XGBoost (61) and
//! XGBoost on 119 features. The open-loop comparison at 50% load (added
//! latency at p50/p99/p99.9) is `tickscore bench --path compare`.
//!
//! Run: `cargo bench --bench ring`.

use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tickscore::input::read_features_by_name_from_any;
use tickscore::{Engine, EngineConfig, IdleStrategy, LoadOptions, Model};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn ring(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    for name in ["german_logreg", "german_xgboost", "german_wide_xgboost"] {
        let model =
            Model::load(dir.join(name).join("model.onnx"), &LoadOptions::default()).expect("model");
        let names = model.info().feature_names.clone().expect("named features");
        // The 119-feature model reads the wide encoding of the same rows.
        let data = dir.join("data");
        let rows = read_features_by_name_from_any(
            &[
                &data.join("german_test.csv"),
                &data.join("german_wide_test.csv"),
            ],
            &names,
        )
        .expect("rows");
        let n = rows.rows();
        let mut out = [0f32];

        let mut group = c.benchmark_group(format!("ring/{name}"));
        let mut scorer = model.scorer().expect("scorer");
        group.bench_function("inline", |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for i in 0..iters as usize {
                    scorer.score(rows.row(i % n), &mut out).expect("scores");
                }
                t.elapsed()
            })
        });
        let config = EngineConfig {
            workers: 1,
            idle: IdleStrategy::BusySpin,
            ..EngineConfig::default()
        };
        let engine = Engine::start(&model, &config).expect("engine");
        group.bench_function("ring_round_trip_1_worker_busy_spin", |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for i in 0..iters as usize {
                    let ticket = engine.submit(rows.row(i % n)).expect("accepted");
                    engine.wait(ticket, &mut out).expect("scored");
                }
                t.elapsed()
            })
        });
        let mut producer = engine.register_producer().expect("registered");
        group.bench_function("lane_round_trip_1_worker_busy_spin", |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for i in 0..iters as usize {
                    let ticket = producer.submit(rows.row(i % n)).expect("accepted");
                    engine.wait(ticket, &mut out).expect("scored");
                }
                t.elapsed()
            })
        });
        drop(producer);
        drop(engine);
        group.finish();

        let mut group = c.benchmark_group(format!("ring_throughput/{name}"));
        group.throughput(Throughput::Elements(1));
        for workers in [1usize, 2] {
            let config = EngineConfig {
                workers,
                idle: IdleStrategy::SpinThenPark(Duration::from_micros(50)),
                ..EngineConfig::default()
            };
            let engine = Engine::start(&model, &config).expect("engine");
            group.bench_function(
                BenchmarkId::new("closed_loop_256_in_flight_workers", workers),
                |b| {
                    b.iter_custom(|iters| {
                        let mut pending = VecDeque::with_capacity(256);
                        let t = Instant::now();
                        for i in 0..iters as usize {
                            if pending.len() == 256 {
                                let ticket = pending.pop_front().expect("pending");
                                engine.wait(ticket, &mut out).expect("scored");
                            }
                            pending.push_back(engine.submit(rows.row(i % n)).expect("accepted"));
                        }
                        while let Some(ticket) = pending.pop_front() {
                            engine.wait(ticket, &mut out).expect("scored");
                        }
                        t.elapsed()
                    })
                },
            );
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = ring
}
criterion_main!(benches);
