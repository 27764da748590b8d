//! Inline scoring, tickscore vs tract, per bundled model: same model file,
//! same rows (the German test split, cycled), same thread.
//!
//! `tract_simple_state` is tract's optimised plan run through a reused
//! `SimpleState` (tickscore's tract tier: build the input tensor, `run`, copy
//! the score out: what any tract caller must do per call).
//!
//! Run: `cargo bench --bench inline`.

use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use tickscore::input::read_features_by_name_from_any;
use tickscore::{LoadOptions, Model, TierChoice};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn inline(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("models/")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("model.onnx").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    for name in names {
        let path = dir.join(&name).join("model.onnx");
        let mut group = c.benchmark_group(format!("inline/{name}"));
        for (label, tier) in [
            ("tickscore", TierChoice::Auto),
            ("tract_simple_state", TierChoice::Tract),
        ] {
            let options = LoadOptions {
                tier,
                ..LoadOptions::default()
            };
            let model = match Model::load(&path, &options) {
                Ok(m) => m,
                Err(e) => {
                    eprintln!("skipping {name} ({label}): {e}");
                    continue;
                }
            };
            let names = model.info().feature_names.as_ref().expect("named features");
            let data = dir.join("data");
            let rows = read_features_by_name_from_any(
                &[
                    &data.join("german_test.csv"),
                    &data.join("german_wide_test.csv"),
                ],
                names,
            )
            .expect("test rows");
            let mut scorer = model.scorer().expect("scorer");
            let mut out = vec![0f32; model.info().score_width];
            let mut i = 0;
            group.bench_function(BenchmarkId::new(label, model.tier().to_string()), |b| {
                b.iter(|| {
                    i = (i + 1) % rows.rows();
                    scorer
                        .score(std::hint::black_box(rows.row(i)), &mut out)
                        .expect("scores");
                    std::hint::black_box(&out);
                })
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = inline
}
criterion_main!(benches);
