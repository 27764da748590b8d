//! The `tickscore` command line: a client of the library like any other.
//!
//! * `tickscore` / `tickscore run`: the main job. Loads every bundled model,
//!   scores the German credit test split inline, prints AUC, KS, parity with
//!   the onnxruntime reference and a latency summary per model.
//! * `tickscore score --model M --input IN.csv --output OUT.csv`
//! * `tickscore inspect --model M`: input/output layout, tier, kernels.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use tickscore::input::{read_features_by_name, read_features_file, read_labels_file};
use tickscore::telemetry::{human_ns, LatencyRecorder};
use tickscore::{eval, InputPolicy, LoadOptions, Model, NonFinitePolicy, TierChoice};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tickscore",
    version,
    about = "Low-latency scoring of ONNX financial models"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Score the bundled German credit test split with every bundled model:
    /// metrics, parity with onnxruntime, latency (the default command).
    Run {
        /// Directory holding `<name>/model.onnx` and `data/`.
        #[arg(long)]
        models: Option<PathBuf>,
        /// Time spent timing each model, in seconds.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
    },
    /// Score a CSV of feature rows; one score per row (full precision).
    Score {
        /// The ONNX model.
        #[arg(long)]
        model: PathBuf,
        /// Input CSV: rows of features in model order, optional header.
        #[arg(long)]
        input: PathBuf,
        /// Output CSV (`-` for standard output).
        #[arg(long, default_value = "-")]
        output: PathBuf,
        /// Execution tier.
        #[arg(long, value_enum, default_value_t = TierArg::Auto)]
        tier: TierArg,
        /// Pass NaN and infinite features to the model instead of refusing the row.
        #[arg(long)]
        allow_non_finite: bool,
    },
    /// Describe a model: layout, tier and lowered kernels.
    Inspect {
        /// The ONNX model.
        #[arg(long)]
        model: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum TierArg {
    Auto,
    Tract,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Run {
        models: None,
        seconds: 2.0,
    }) {
        Command::Run { models, seconds } => run(models, seconds),
        Command::Score {
            model,
            input,
            output,
            tier,
            allow_non_finite,
        } => score(&model, &input, &output, tier, allow_non_finite),
        Command::Inspect { model } => inspect(&model),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tickscore: {e}");
            ExitCode::FAILURE
        }
    }
}

type CliResult = Result<(), Box<dyn std::error::Error>>;

fn options(tier: TierArg, allow_non_finite: bool) -> LoadOptions {
    let pass = if allow_non_finite {
        NonFinitePolicy::Pass
    } else {
        NonFinitePolicy::Reject
    };
    LoadOptions {
        tier: match tier {
            TierArg::Auto => TierChoice::Auto,
            TierArg::Tract => TierChoice::Tract,
        },
        input_policy: InputPolicy {
            nan: pass,
            infinite: pass,
        },
        ..LoadOptions::default()
    }
}

fn score(
    model_path: &Path,
    input: &Path,
    output: &Path,
    tier: TierArg,
    allow_non_finite: bool,
) -> CliResult {
    let model = Model::load(model_path, &options(tier, allow_non_finite))
        .map_err(|e| format!("{}: {e}", model_path.display()))?;
    let info = model.info();
    let rows = read_features_file(input, info.input_width, info.feature_names.as_deref())
        .map_err(|e| format!("{}: {e}", input.display()))?;
    let mut scores = vec![0f32; rows.rows() * info.score_width];
    let mut scorer = model.scorer()?;
    for (i, out) in scores.chunks_exact_mut(info.score_width).enumerate() {
        scorer.score(rows.row(i), out).map_err(|e| match e {
            tickscore::ScoreError::NonFinite { column, kind, .. } => format!(
                "{}: line {}, column {} ({}): {kind} rejected (use --allow-non-finite to pass it to the model)",
                input.display(),
                rows.lines[i],
                column + 1,
                info.feature_names
                    .as_ref()
                    .and_then(|n| n.get(column))
                    .map_or("?", String::as_str),
            ),
            other => format!("{}: line {}: {other}", input.display(), rows.lines[i]),
        })?;
    }
    let mut text = String::with_capacity(scores.len() * 16);
    let header: Vec<String> = if info.score_width == 1 {
        vec!["score".into()]
    } else {
        (0..info.score_width)
            .map(|i| format!("score_{i}"))
            .collect()
    };
    text.push_str(&header.join(","));
    text.push('\n');
    for row in scores.chunks_exact(info.score_width) {
        // `{}` prints the shortest text that reads back as the same f32.
        let fields: Vec<String> = row.iter().map(|v| format!("{v}")).collect();
        text.push_str(&fields.join(","));
        text.push('\n');
    }
    if output == Path::new("-") {
        std::io::stdout().lock().write_all(text.as_bytes())?;
    } else {
        std::fs::write(output, text).map_err(|e| format!("{}: {e}", output.display()))?;
    }
    Ok(())
}

fn inspect(path: &Path) -> CliResult {
    let model = Model::load(path, &LoadOptions::default())?;
    let info = model.info();
    println!("model        {}", path.display());
    println!("input width  {}", info.input_width);
    println!(
        "score        {} value(s) from output {:?}{}",
        info.score_width,
        info.score_output,
        if info.positive_class_column {
            ", column 1 (P(class 1))"
        } else {
            ""
        }
    );
    println!(
        "features     {}",
        if info.feature_names.is_some() {
            "named in metadata"
        } else {
            "unnamed"
        }
    );
    println!("tier         {}", model.tier());
    Ok(())
}

/// Locate the bundled models: `./models`, else the source tree's.
fn models_dir(arg: Option<PathBuf>) -> PathBuf {
    arg.unwrap_or_else(|| {
        let here = PathBuf::from("models");
        if here.join("data").is_dir() {
            here
        } else {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
        }
    })
}

fn run(models: Option<PathBuf>, seconds: f64) -> CliResult {
    let dir = models_dir(models);
    let data = dir.join("data");
    let labels = read_labels_file(&data.join("german_test_labels.csv"), "bad")?;
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("model.onnx").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    println!(
        "tickscore {}: German credit test split ({} rows), inline scoring on one thread",
        env!("CARGO_PKG_VERSION"),
        labels.len()
    );
    println!(
        "{:<20} {:<8} {:<24} {:>10} {:>10} {:>10} {:>10} {:>9}",
        "model", "tier", "quality", "max|Δ|ORT", "p50", "p99", "p99.9", "calls"
    );
    let mut failures = Vec::new();
    for name in &names {
        match run_model(&dir, &data, name, &labels, seconds) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                println!("{name:<20} FAILED: {e}");
                failures.push(name.clone());
            }
        }
    }
    println!("quality: AUC and KS against the default labels (classifiers), R² and MAE against target.csv (regressors)");
    println!("max|Δ|ORT: largest difference from the scores recorded from onnxruntime");
    println!("latency: per inline call, measured around Scorer::score (includes ~50 ns for the two clock reads on this VM)");
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} model(s) failed: {}",
            failures.len(),
            failures.join(", ")
        )
        .into())
    }
}

fn run_model(
    dir: &Path,
    data: &Path,
    name: &str,
    labels: &[bool],
    seconds: f64,
) -> Result<String, Box<dyn std::error::Error>> {
    let model = Model::load(dir.join(name).join("model.onnx"), &LoadOptions::default())?;
    let info = model.info();
    let test = data.join("german_test.csv");
    // Each model reads its own features (by name) from the test split.
    let rows = match &info.feature_names {
        Some(names) => read_features_by_name(&test, names)?,
        None => read_features_file(&test, info.input_width, None)?,
    };
    let reference = read_reference(&dir.join(name).join("reference.csv"))?;
    let mut scorer = model.scorer()?;
    let mut scores = vec![0f32; rows.rows()];
    for (i, s) in scores.iter_mut().enumerate() {
        scorer.score(rows.row(i), std::slice::from_mut(s))?;
    }
    let max_diff = scores
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let s64: Vec<f64> = scores.iter().map(|&s| f64::from(s)).collect();
    let target = dir.join(name).join("target.csv");
    let quality = if target.is_file() {
        let truth = read_features_file(&target, 1, None)?.values;
        let truth: Vec<f64> = truth.iter().map(|&t| f64::from(t)).collect();
        let r = eval::regression(&s64, &truth)?;
        format!("R² {:.4} MAE {:.4}", r.r2, r.mae)
    } else {
        let auc = eval::auc(&s64, labels)?;
        let ks = eval::ks(&s64, labels)?;
        format!("AUC {auc:.4} KS {:.4}", ks.statistic)
    };

    let mut rec = LatencyRecorder::new();
    let budget = Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut out = [0f32];
    'timing: loop {
        for i in 0..rows.rows() {
            let t0 = Instant::now();
            let r = scorer.score(rows.row(i), &mut out);
            rec.record_ns(t0.elapsed().as_nanos() as u64);
            r?;
            if i % 64 == 0 && started.elapsed() > budget {
                break 'timing;
            }
        }
    }
    let s = rec.summary();
    let tier = match model.tier() {
        tickscore::Tier::Lowered { .. } => "lowered",
        tickscore::Tier::Tract { .. } => "tract",
    };
    Ok(format!(
        "{:<20} {:<8} {:<24} {:>10.2e} {:>10} {:>10} {:>10} {:>9}",
        name,
        tier,
        quality,
        max_diff,
        human_ns(s.p50_ns as f64),
        human_ns(s.p99_ns as f64),
        human_ns(s.p999_ns as f64),
        s.count
    ))
}

/// The single column of scores recorded from onnxruntime (header `p_bad`
/// for classifiers, `score` for regressors).
fn read_reference(path: &Path) -> Result<Vec<f32>, Box<dyn std::error::Error>> {
    Ok(read_features_file(path, 1, None)?.values)
}
