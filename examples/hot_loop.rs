//! Scores one bundled model in a tight loop, for profilers
//! (`perf record ./target/release/examples/hot_loop german_mlp 2000000`).
use tickscore::{input::read_features_by_name_from_any, LoadOptions, Model};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "german_mlp".into());
    let calls: usize = args.next().map_or(Ok(1_000_000), |s| s.parse())?;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let model = Model::load(dir.join(&name).join("model.onnx"), &LoadOptions::default())?;
    let names = model
        .info()
        .feature_names
        .clone()
        .ok_or("model has no feature names")?;
    let data = dir.join("data");
    let rows = read_features_by_name_from_any(
        &[
            &data.join("german_test.csv"),
            &data.join("german_wide_test.csv"),
        ],
        &names,
    )?;
    let mut scorer = model.scorer()?;
    let mut out = vec![0f32; model.info().score_width];
    let mut sum = 0.0;
    let t = std::time::Instant::now();
    for i in 0..calls {
        scorer.score(rows.row(i % rows.rows()), &mut out)?;
        sum += out[0];
    }
    println!(
        "{name}: {:.1} ns/call (checksum {sum})",
        t.elapsed().as_nanos() as f64 / calls as f64
    );
    Ok(())
}
