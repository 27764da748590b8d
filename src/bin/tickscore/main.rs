//! The `tickscore` command line: a client of the library like any other.
//!
//! * `tickscore` / `tickscore run`: the main job. Loads every bundled model,
//!   scores the German credit test split inline, prints AUC, KS, parity with
//!   the onnxruntime reference and a latency summary per model.
//! * `tickscore score --model M --input IN.csv --output OUT.csv`
//! * `tickscore inspect --model M`: input/output layout, tier, kernels.
//! * `tickscore keygen | sign | verify | registry list|publish|rollback`:
//!   the model registry (see `registry.rs`).

mod registry;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use tickscore::input::{
    read_features_by_name, read_features_by_name_from_any, read_features_file, read_labels_file,
    FeatureRows,
};
use tickscore::telemetry::human_ns;
use tickscore::{eval, loadgen, InputPolicy, LoadOptions, Model, NonFinitePolicy, TierChoice};

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
        /// Time spent timing each model and path, in seconds.
        #[arg(long, default_value_t = 1.5)]
        seconds: f64,
        /// Directory for the report (.hgrm, .svg, .json per model).
        #[arg(long, default_value = "report")]
        out: PathBuf,
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
    /// Latency benchmark with HdrHistogram output: open loop at a fixed
    /// rate (latency from each request's due time), or closed loop.
    Bench(BenchArgs),
    /// Evaluate a model on labelled data: AUC, KS, Gini, precision/recall/F1
    /// and confusion at a threshold, Brier, log loss, calibration by
    /// deciles (classifiers); R², MAE, MSE (regressors); PSI against a
    /// baseline. Writes ROC and KS curves as SVG.
    Eval {
        /// The ONNX model, or the name of a bundled model.
        #[arg(long)]
        model: String,
        /// CSV with the model's features (by name, any order, other columns
        /// allowed) and the label column.
        #[arg(long)]
        data: PathBuf,
        /// The label column: 0/1 for classifiers, the target for regressors.
        #[arg(long)]
        label: String,
        /// Decision threshold for precision/recall/F1 (positive: score >= it).
        #[arg(long, default_value_t = 0.5)]
        threshold: f64,
        /// Features CSV to score as the baseline population for PSI.
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// Pass NaN and infinite features to the model instead of refusing.
        #[arg(long)]
        allow_non_finite: bool,
        /// Directory for the ROC and KS SVGs.
        #[arg(long, default_value = "report")]
        out: PathBuf,
    },
    /// Describe a model: layout, tier and lowered kernels.
    Inspect {
        /// The ONNX model.
        #[arg(long)]
        model: PathBuf,
    },
    /// Make an ed25519 key pair for signing manifests: PREFIX.key (secret,
    /// mode 0600) and PREFIX.pub.
    Keygen {
        /// Path prefix of the two key files.
        #[arg(long)]
        out: PathBuf,
    },
    /// Write and sign the manifest of a registry version directory
    /// (`<root>/<model>/<version>/` holding model.onnx): size, sha256,
    /// features and score output from the model; policies, bounds and label
    /// kept from an existing manifest unless given.
    Sign(registry::SignArgs),
    /// Run every load step on a registry version (manifest, size, sha256,
    /// signature, import, probe, schema) without publishing it.
    Verify {
        #[command(flatten)]
        reg: registry::RegistryArgs,
        /// Model name.
        #[arg(long)]
        model: String,
        /// Version number.
        #[arg(long)]
        version: u64,
    },
    /// The model registry: list, publish, rollback (each audited).
    Registry {
        #[command(subcommand)]
        action: registry::RegistryCommand,
    },
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum IdleArg {
    Busy,
    Spin50us,
    Park,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum PathArg {
    Inline,
    Ring,
    /// Inline and ring alternating in blocks of one open-loop run, at 50%
    /// of the ring's capacity (or `--rate`): the ring's added latency.
    Compare,
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
        seconds: 1.5,
        out: PathBuf::from("report"),
    }) {
        Command::Run {
            models,
            seconds,
            out,
        } => run(models, seconds, &out),
        Command::Score {
            model,
            input,
            output,
            tier,
            allow_non_finite,
        } => score(&model, &input, &output, tier, allow_non_finite),
        Command::Inspect { model } => inspect(&model),
        Command::Eval {
            model,
            data,
            label,
            threshold,
            baseline,
            allow_non_finite,
            out,
        } => evaluate(
            &model,
            &data,
            &label,
            threshold,
            baseline.as_deref(),
            allow_non_finite,
            &out,
        ),
        Command::Bench(args) => bench(args),
        Command::Keygen { out } => registry::keygen(&out),
        Command::Sign(args) => registry::sign(args),
        Command::Verify {
            reg,
            model,
            version,
        } => registry::verify(reg, &model, version),
        Command::Registry { action } => registry::registry(action),
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

#[derive(clap::Args)]
struct BenchArgs {
    /// The ONNX model, or the name of a bundled model.
    #[arg(long)]
    model: String,
    /// Rows to cycle through (default: the bundled German test split,
    /// read by the model's feature names).
    #[arg(long)]
    rows: Option<PathBuf>,
    /// Inline on this thread, or through the worker runtime.
    #[arg(long, value_enum, default_value_t = PathArg::Inline)]
    path: PathArg,
    /// Requests per second (default: half the capacity measured by a
    /// short closed-loop calibration).
    #[arg(long, conflicts_with = "closed")]
    rate: Option<f64>,
    /// Closed loop: maximum throughput (hides stalls in the latencies).
    #[arg(long)]
    closed: bool,
    /// Run length in seconds (default 5).
    #[arg(long, conflicts_with = "requests")]
    duration: Option<f64>,
    /// Run length in requests.
    #[arg(long)]
    requests: Option<usize>,
    /// Worker threads (ring path).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Idle workers: spin, spin 50 µs then sleep, or sleep at once (ring path).
    #[arg(long, value_enum, default_value_t = IdleArg::Spin50us)]
    idle: IdleArg,
    /// Submit through the shared MPMC queue instead of a registered
    /// producer's own SPSC lane (ring path; for comparison).
    #[arg(long)]
    shared_queue: bool,
    /// Pin the load-generating thread to this core (default: the first
    /// core this process may use; the ring's workers take cores from the
    /// last). `none` leaves it unpinned. An unpinned producer can land on
    /// a busy-spinning worker's core and time-share it in milliseconds.
    #[arg(long, default_value = "auto")]
    producer_core: String,
    /// Ring and compare paths: the caller takes back and scores on its own
    /// thread any request no worker has finished this many microseconds
    /// after its submission (`Producer::with_reclaim`; off by default).
    #[arg(long, value_name = "MICROSECONDS")]
    reclaim_after: Option<f64>,
    /// `--path compare`: replace the ring arm by a second inline arm (an
    /// A/A run: its "added" latency is the comparison's noise floor).
    #[arg(long)]
    aa_control: bool,
    /// `--path compare`: requests per block before switching paths.
    #[arg(long, default_value_t = 10_000)]
    block: usize,
    /// Directory for the .hgrm, .svg and .json files.
    #[arg(long, default_value = "report")]
    out: PathBuf,
    /// Also write the JSON summary here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Pin this (the load-generating) thread as `--producer-core` says: after
/// the engine's workers have taken their cores.
fn pin_producer(arg: &str) -> CliResult {
    let core = match arg {
        "none" => return Ok(()),
        "auto" => match core_affinity::get_core_ids().unwrap_or_default().first() {
            Some(c) => c.id,
            None => return Ok(()),
        },
        n => n.parse::<usize>().map_err(|_| {
            format!("--producer-core: expected a core number, auto or none, got {n:?}")
        })?,
    };
    if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        return Err(format!("--producer-core: cannot pin this thread to core {core}").into());
    }
    Ok(())
}

fn bench(a: BenchArgs) -> CliResult {
    let dir = models_dir(None);
    let model_path = resolve_model(&a.model);
    let name = model_path
        .parent()
        .and_then(|p| p.file_name())
        .map_or_else(|| "model".to_string(), |n| n.to_string_lossy().into_owned());
    let model = Model::load(&model_path, &options(TierArg::Auto, true))
        .map_err(|e| format!("{}: {e}", model_path.display()))?;
    let info = model.info();
    let rows = match &a.rows {
        Some(path) => match &info.feature_names {
            Some(names) => read_features_by_name(path, names),
            None => read_features_file(path, info.input_width, None),
        }
        .map_err(|e| format!("{}: {e}", path.display()))?,
        None => read_test_split(&dir.join("data"), info)?,
    };
    let w = info.input_width;
    let mut scorer = model.scorer()?;
    let engine = match a.path {
        PathArg::Ring | PathArg::Compare => Some(tickscore::Engine::start(
            &model,
            &tickscore::EngineConfig {
                workers: a.workers,
                idle: match a.idle {
                    IdleArg::Busy => tickscore::IdleStrategy::BusySpin,
                    IdleArg::Spin50us => {
                        tickscore::IdleStrategy::SpinThenPark(Duration::from_micros(50))
                    }
                    IdleArg::Park => tickscore::IdleStrategy::Park,
                },
                ..tickscore::EngineConfig::default()
            },
        )?),
        PathArg::Inline => None,
    };
    let shared_queue = a.shared_queue;
    let reclaim = reclaim_after(&a)?;
    pin_producer(&a.producer_core)?;
    if let (PathArg::Compare, Some(engine)) = (a.path, &engine) {
        return bench_compare(&a, &name, &model, engine, &mut scorer, &rows.values, w);
    }
    fn target<'a>(
        engine: &'a Option<tickscore::Engine>,
        scorer: &'a mut tickscore::Scorer,
        shared_queue: bool,
        reclaim_after: Option<Duration>,
    ) -> loadgen::Target<'a> {
        match engine {
            Some(e) => loadgen::Target::Ring {
                engine: e,
                in_flight: 256,
                shared_queue,
                reclaim_after,
            },
            None => loadgen::Target::Inline(scorer),
        }
    }
    let pacing = if a.closed {
        loadgen::Pacing::Closed
    } else if let Some(r) = a.rate {
        loadgen::Pacing::Rate(r)
    } else {
        let cal = loadgen::run(
            target(&engine, &mut scorer, shared_queue, None),
            &rows.values,
            w,
            loadgen::Pacing::Closed,
            20_000,
            |_| {},
            |_| {},
        );
        let rate = (cal.throughput() * 0.5).max(1.0);
        eprintln!(
            "calibration: {:.0} req/s closed loop; open loop at 50%: {rate:.0} req/s",
            cal.throughput()
        );
        loadgen::Pacing::Rate(rate)
    };
    let requests = match (a.requests, pacing) {
        (Some(n), _) => n,
        (None, loadgen::Pacing::Rate(r)) => (r * a.duration.unwrap_or(5.0)).ceil() as usize,
        (None, loadgen::Pacing::Closed) => 1_000_000,
    };
    let show_progress = matches!(pacing, loadgen::Pacing::Rate(r) if requests as f64 / r > 2.0);
    let run = loadgen::run(
        target(&engine, &mut scorer, shared_queue, reclaim),
        &rows.values,
        w,
        pacing,
        requests,
        |_| {},
        |done| {
            if show_progress {
                let frac = done as f64 / requests as f64;
                let bar = (frac * 40.0) as usize;
                eprint!(
                    "\r[{}{}] {:>3.0}%",
                    "#".repeat(bar),
                    " ".repeat(40 - bar),
                    frac * 100.0
                );
            }
        },
    );
    if show_progress {
        eprintln!("\r[{}] 100%", "#".repeat(40));
    }
    let h = &run.histogram;
    let q = |p: f64| h.value_at_quantile(p);
    let path_name = if a.path == PathArg::Ring {
        "ring"
    } else {
        "inline"
    };
    let (pacing_name, rate) = match pacing {
        loadgen::Pacing::Rate(r) => ("open", r),
        loadgen::Pacing::Closed => ("closed", 0.0),
    };
    println!(
        "{name} {path_name} {pacing_name} loop: {} requests in {:.2} s",
        run.requests,
        run.elapsed.as_secs_f64()
    );
    println!(
        "{:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>12}",
        "p50", "p90", "p99", "p99.9", "p99.99", "max", "mean", "throughput"
    );
    println!(
        "{:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10.0}/s",
        human_ns(q(0.5) as f64),
        human_ns(q(0.9) as f64),
        human_ns(q(0.99) as f64),
        human_ns(q(0.999) as f64),
        human_ns(q(0.9999) as f64),
        human_ns(h.max() as f64),
        human_ns(h.mean()),
        run.throughput()
    );
    if run.errors > 0 || run.busy > 0 || run.reclaimed > 0 {
        println!(
            "errors {}  busy (retried) {}  reclaimed by the caller {}",
            run.errors, run.busy, run.reclaimed
        );
    }
    let json = format!(
        "{{\"model\":\"{name}\",\"path\":\"{path_name}\",\"pacing\":\"{pacing_name}\",\"rate_per_s\":{rate},\"workers\":{},{},\"errors\":{},\"busy\":{}}}\n",
        if a.path == PathArg::Ring { a.workers } else { 0 },
        run.json_fields(),
        run.errors,
        run.busy
    );
    let title = format!("{name}, {path_name} path, {pacing_name} loop");
    write_report(
        &a,
        &format!("{name}-{path_name}-{pacing_name}"),
        &[
            ("hgrm", loadgen::hgrm(h)),
            ("svg", loadgen::svg(&title, &[(path_name, h)])),
            ("json", json),
        ],
    )
}

/// Write a bench's files as `<--out>/<stem>.<ext>` (and the JSON also to
/// `--json`), and say where.
fn write_report(a: &BenchArgs, stem: &str, files: &[(&str, String)]) -> CliResult {
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let mut written = Vec::with_capacity(files.len());
    for (ext, text) in files {
        let p = a.out.join(format!("{stem}.{ext}"));
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
        written.push(p.display().to_string());
        if let (&"json", Some(j)) = (ext, &a.json) {
            std::fs::write(j, text).map_err(|e| format!("{}: {e}", j.display()))?;
        }
    }
    println!("wrote {}", written.join(", "));
    Ok(())
}

/// `--reclaim-after` as a duration.
fn reclaim_after(a: &BenchArgs) -> Result<Option<Duration>, String> {
    match a.reclaim_after {
        None => Ok(None),
        Some(us) if us.is_finite() && us >= 0.0 => {
            Ok(Some(Duration::from_nanos((us * 1000.0) as u64)))
        }
        Some(us) => Err(format!(
            "--reclaim-after: expected microseconds >= 0, got {us}"
        )),
    }
}

/// `tickscore bench --path compare`: the ring's added latency over inline,
/// both paths in one open-loop run (alternating blocks) at one rate.
#[allow(clippy::too_many_arguments)]
fn bench_compare(
    a: &BenchArgs,
    name: &str,
    model: &Model,
    engine: &tickscore::Engine,
    scorer: &mut tickscore::Scorer,
    rows: &[f32],
    w: usize,
) -> CliResult {
    let rate = match a.rate {
        Some(r) => r,
        None => {
            let cal = loadgen::run(
                loadgen::Target::Ring {
                    engine,
                    in_flight: 256,
                    shared_queue: false,
                    reclaim_after: None,
                },
                rows,
                w,
                loadgen::Pacing::Closed,
                50_000,
                |_| {},
                |_| {},
            );
            let rate = (cal.throughput() * 0.5).max(1.0);
            eprintln!(
                "calibration: ring {:.0} req/s closed loop; open loop at 50%: {rate:.0} req/s",
                cal.throughput()
            );
            rate
        }
    };
    // A/A control: a second inline scorer in place of the ring.
    let mut control = if a.aa_control {
        Some(model.scorer()?)
    } else {
        None
    };
    let per_path = a
        .requests
        .unwrap_or_else(|| (rate * a.duration.unwrap_or(10.0) / 2.0).ceil() as usize);
    let options = loadgen::CompareOptions {
        rate,
        requests: per_path,
        block: a.block,
        reclaim_after: reclaim_after(a)?,
    };
    let (inline, ring) = loadgen::compare(scorer, engine, rows, w, &options, control.as_mut());
    println!(
        "{name}: inline and {} alternating every {} requests, open loop at {rate:.0} req/s, {} + {} requests",
        if a.aa_control { "inline again (A/A control)" } else { "ring" },
        a.block,
        inline.requests,
        ring.requests
    );
    println!(
        "{:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "", "p50", "p90", "p99", "p99.9", "p99.99", "max"
    );
    let quantiles = [0.5, 0.9, 0.99, 0.999, 0.9999];
    let line = |label: &str, r: &loadgen::Run| {
        let h = &r.histogram;
        let mut cells: Vec<String> = quantiles
            .iter()
            .map(|&p| human_ns(h.value_at_quantile(p) as f64))
            .collect();
        cells.push(human_ns(h.max() as f64));
        println!(
            "{label:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            cells[0], cells[1], cells[2], cells[3], cells[4], cells[5]
        );
    };
    line("inline", &inline);
    line("ring", &ring);
    let added: Vec<f64> = quantiles
        .iter()
        .map(|&p| {
            ring.histogram.value_at_quantile(p) as f64
                - inline.histogram.value_at_quantile(p) as f64
        })
        .collect();
    let signed = |ns: f64| {
        if ns < 0.0 {
            format!("-{}", human_ns(-ns))
        } else {
            format!("+{}", human_ns(ns))
        }
    };
    println!(
        "{:>8} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "added",
        signed(added[0]),
        signed(added[1]),
        signed(added[2]),
        signed(added[3]),
        signed(added[4])
    );
    if let Some(after) = reclaim_after(a)? {
        println!(
            "reclaim after {:.1} µs: {} of {} ring requests scored by the caller ({:.3}%)",
            after.as_nanos() as f64 / 1000.0,
            ring.reclaimed,
            ring.requests,
            100.0 * ring.reclaimed as f64 / ring.requests.max(1) as f64
        );
    }
    if inline.errors + ring.errors > 0 || ring.busy > 0 {
        println!(
            "errors {} inline, {} ring; busy (retried) {}",
            inline.errors, ring.errors, ring.busy
        );
    }
    let json = format!(
        "{{\"model\":\"{name}\",\"path\":\"compare\",\"pacing\":\"open\",\"rate_per_s\":{rate},\"block\":{},\"inline\":{{{}}},\"ring\":{{{}}},\"added_p50_ns\":{},\"added_p99_ns\":{},\"added_p999_ns\":{},\"reclaimed\":{}}}\n",
        a.block,
        inline.json_fields(),
        ring.json_fields(),
        added[0],
        added[2],
        added[3],
        ring.reclaimed
    );
    let title = format!("{name}, inline vs ring, open loop at {rate:.0}/s");
    let svg = loadgen::svg(
        &title,
        &[("inline", &inline.histogram), ("ring", &ring.histogram)],
    );
    write_report(
        a,
        &format!("{name}-compare-open"),
        &[("svg", svg), ("json", json)],
    )
}

/// A model path, or the name of a bundled model.
fn resolve_model(model: &str) -> PathBuf {
    if Path::new(model).is_file() {
        PathBuf::from(model)
    } else {
        models_dir(None).join(model).join("model.onnx")
    }
}

/// Score every row of a features CSV (read by the model's feature names).
fn score_file(model: &Model, path: &Path) -> Result<Vec<f64>, Box<dyn std::error::Error>> {
    let info = model.info();
    let rows = match &info.feature_names {
        Some(names) => read_features_by_name(path, names),
        None => read_features_file(path, info.input_width, None),
    }
    .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut scorer = model.scorer()?;
    let mut out = vec![0f32; info.score_width];
    let mut scores = Vec::with_capacity(rows.rows());
    for i in 0..rows.rows() {
        scorer
            .score(rows.row(i), &mut out)
            .map_err(|e| format!("{}: line {}: {e}", path.display(), rows.lines[i]))?;
        scores.push(f64::from(out[0]));
    }
    Ok(scores)
}

fn evaluate(
    model_arg: &str,
    data: &Path,
    label: &str,
    threshold: f64,
    baseline: Option<&Path>,
    allow_non_finite: bool,
    out: &Path,
) -> CliResult {
    let path = resolve_model(model_arg);
    let model = Model::load(&path, &options(TierArg::Auto, allow_non_finite))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let scores = score_file(&model, data)?;
    let stem = path
        .parent()
        .and_then(|p| p.file_name())
        .map_or_else(|| "model".to_string(), |n| n.to_string_lossy().into_owned());
    println!("{stem} on {} ({} rows)", data.display(), scores.len());
    if model.info().positive_class_column {
        let labels =
            read_labels_file(data, label).map_err(|e| format!("{}: {e}", data.display()))?;
        let auc = eval::auc(&scores, &labels)?;
        let ks = eval::ks(&scores, &labels)?;
        let c = eval::confusion(&scores, &labels, threshold)?;
        println!("AUC        {auc:.6}");
        println!("Gini       {:.6}", 2.0 * auc - 1.0);
        println!(
            "KS         {:.6} at score {:.6}",
            ks.statistic, ks.threshold
        );
        println!("threshold  {threshold} (positive: score >= threshold)");
        println!(
            "precision  {:.6}   recall {:.6}   F1 {:.6}",
            c.precision(),
            c.recall(),
            c.f1()
        );
        println!(
            "confusion  TP {}  FP {}  TN {}  FN {}",
            c.tp, c.fp, c.tn, c.fn_
        );
        println!("Brier      {:.6}", eval::brier(&scores, &labels)?);
        println!("log loss   {:.6}", eval::log_loss(&scores, &labels)?);
        println!("calibration by score decile (rows, mean score, observed rate):");
        for (i, b) in eval::calibration_deciles(&scores, &labels)?
            .iter()
            .enumerate()
        {
            println!(
                "  {:>2}  {:>5}  {:.4}  {:.4}",
                i + 1,
                b.count,
                b.mean_score,
                b.observed_rate
            );
        }
        // Curves: ROC, and the KS curve (the two classes' cumulative shares by score).
        let roc = eval::roc_curve(&scores, &labels)?;
        let roc_points: Vec<(f64, f64)> = roc.iter().map(|p| (p.0, p.1)).collect();
        let ks_pos: Vec<(f64, f64)> = roc.iter().skip(1).map(|p| (p.2, p.1)).collect();
        let ks_neg: Vec<(f64, f64)> = roc.iter().skip(1).map(|p| (p.2, p.0)).collect();
        std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
        let roc_path = out.join(format!("{stem}-roc.svg"));
        let ks_path = out.join(format!("{stem}-ks.svg"));
        let diagonal = [(0.0, 0.0), (1.0, 1.0)];
        std::fs::write(
            &roc_path,
            tickscore::plot::line_plot(
                &format!("{stem}: ROC (AUC {auc:.4})"),
                "false positive rate",
                "true positive rate",
                &[("ROC", &roc_points), ("chance", &diagonal)],
            ),
        )?;
        std::fs::write(
            &ks_path,
            tickscore::plot::line_plot(
                &format!(
                    "{stem}: KS {:.4} at score {:.4}",
                    ks.statistic, ks.threshold
                ),
                "score threshold",
                "share of class with score >= threshold",
                &[("positives", &ks_pos), ("negatives", &ks_neg)],
            ),
        )?;
        println!("wrote {}, {}", roc_path.display(), ks_path.display());
    } else {
        let truth = tickscore::input::read_column(data, label)
            .map_err(|e| format!("{}: {e}", data.display()))?;
        let r = eval::regression(&scores, &truth)?;
        println!("R²   {:.6}\nMAE  {:.6}\nMSE  {:.6}", r.r2, r.mae, r.mse);
    }
    if let Some(b) = baseline {
        let base = score_file(&model, b)?;
        println!("PSI vs {}: {:.6}", b.display(), eval::psi(&base, &scores)?);
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
    println!("version      {} (ONNX model_version)", info.model_version);
    println!("tier         {}", model.tier());
    Ok(())
}

/// A model's rows from the bundled test split: `german_test.csv` (61
/// features), or for a model whose features are not all there the same rows
/// in the 119-feature encoding, `german_wide_test.csv` (see
/// `models/make_models.py`). Each file is read once at most.
fn read_test_split(data: &Path, info: &tickscore::ModelInfo) -> Result<FeatureRows, String> {
    let narrow = data.join("german_test.csv");
    let wide = data.join("german_wide_test.csv");
    match &info.feature_names {
        Some(names) => read_features_by_name_from_any(&[&narrow, &wide], names)
            .map_err(|e| format!("{} / {}: {e}", narrow.display(), wide.display())),
        None => read_features_file(&narrow, info.input_width, None)
            .map_err(|e| format!("{}: {e}", narrow.display())),
    }
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

fn run(models: Option<PathBuf>, seconds: f64, out: &Path) -> CliResult {
    let dir = models_dir(models);
    // This thread on the first core, the workers on the others (named
    // explicitly: once this thread is pinned, the engine's default, the
    // cores this thread may use, would be only its own).
    let cores: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .iter()
        .map(|c| c.id)
        .collect();
    let worker_cores = match cores.as_slice() {
        [first, rest @ ..] if !rest.is_empty() => {
            let _ = pin_producer(&first.to_string());
            rest.iter().rev().copied().collect()
        }
        _ => cores.clone(),
    };
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
        "tickscore {}: German credit test split ({} rows), inline and through a pinned worker",
        env!("CARGO_PKG_VERSION"),
        labels.len()
    );
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    println!(
        "{:<20} {:<8} {:<24} {:>9} | {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9}",
        "model",
        "tier",
        "quality",
        "max|Δ|ORT",
        "inline50",
        "p99",
        "p99.9",
        "ring p50",
        "p99",
        "p99.9"
    );
    let mut failures = Vec::new();
    for name in &names {
        match run_model(&dir, &data, name, &labels, seconds, out, &worker_cores) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                println!("{name:<20} FAILED: {e}");
                failures.push(name.clone());
            }
        }
    }
    println!("quality: AUC and KS against the default labels (classifiers), R² and MAE against target.csv (regressors)");
    println!("max|Δ|ORT: largest difference from the scores recorded from onnxruntime");
    println!("latency: closed loop, one request at a time, this thread pinned to the first core. inline: Scorer::score");
    println!("on this thread. ring: through this thread's lane to one pinned busy-spinning worker, until this thread");
    println!("holds the scores. Two clock reads (the time-stamp counter, ~7 ns each here) are included in both.");
    println!(
        "report: {} (per model: <name>-inline.hgrm, <name>-ring.hgrm, <name>.svg, <name>.json)",
        out.display()
    );
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
    out_dir: &Path,
    worker_cores: &[usize],
) -> Result<String, Box<dyn std::error::Error>> {
    let model = Model::load(dir.join(name).join("model.onnx"), &LoadOptions::default())?;
    let info = model.info();
    // Each model reads its own features (by name) from the test split.
    let rows = read_test_split(data, info)?;
    let reference = read_reference(&dir.join(name).join("reference.csv"))?;
    let mut scorer = model.scorer()?;
    let mut scores = vec![0f32; rows.rows()];
    let pass = Instant::now();
    for (i, s) in scores.iter_mut().enumerate() {
        scorer.score(rows.row(i), std::slice::from_mut(s))?;
    }
    let per_call = pass.elapsed().as_secs_f64() / rows.rows() as f64;
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

    let w = info.input_width;
    let inline_n = ((seconds / per_call.max(1e-8)) as usize).clamp(1_000, 20_000_000);
    let inline = loadgen::run(
        loadgen::Target::Inline(&mut scorer),
        &rows.values,
        w,
        loadgen::Pacing::Closed,
        inline_n,
        |_| {},
        |_| {},
    );
    let engine = tickscore::Engine::start(
        &model,
        &tickscore::EngineConfig {
            workers: 1,
            cores: Some(worker_cores.to_vec()),
            idle: tickscore::IdleStrategy::BusySpin,
            ..Default::default()
        },
    )?;
    // A round trip costs a few µs more than an inline call.
    let ring_n = ((seconds / (per_call + 3e-6)) as usize).clamp(1_000, 5_000_000);
    let ring = loadgen::run(
        loadgen::Target::Ring {
            engine: &engine,
            in_flight: 1,
            shared_queue: false,
            reclaim_after: None,
        },
        &rows.values,
        w,
        loadgen::Pacing::Closed,
        ring_n,
        |_| {},
        |_| {},
    );
    drop(engine);
    let tier = match model.tier() {
        tickscore::Tier::Lowered { .. } => "lowered",
        tickscore::Tier::Tract { .. } => "tract",
    };
    let (hi, hr) = (&inline.histogram, &ring.histogram);
    let write = |file: String, text: &str| -> Result<(), String> {
        let p = out_dir.join(file);
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))
    };
    write(format!("{name}-inline.hgrm"), &loadgen::hgrm(hi))?;
    write(format!("{name}-ring.hgrm"), &loadgen::hgrm(hr))?;
    write(
        format!("{name}.svg"),
        &loadgen::svg(
            &format!("{name}: latency by percentile"),
            &[("inline", hi), ("ring (1 pinned worker)", hr)],
        ),
    )?;
    write(
        format!("{name}.json"),
        &format!(
            "{{\"model\":\"{name}\",\"tier\":\"{tier}\",\"quality\":\"{quality}\",\"max_abs_diff_vs_onnxruntime\":{max_diff},\"inline\":{{{}}},\"ring\":{{{}}}}}\n",
            inline.json_fields(),
            ring.json_fields()
        ),
    )?;
    let q = |h: &hdrhistogram::Histogram<u64>, p: f64| human_ns(h.value_at_quantile(p) as f64);
    Ok(format!(
        "{:<20} {:<8} {:<24} {:>9.2e} | {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9}",
        name,
        tier,
        quality,
        max_diff,
        q(hi, 0.5),
        q(hi, 0.99),
        q(hi, 0.999),
        q(hr, 0.5),
        q(hr, 0.99),
        q(hr, 0.999),
    ))
}

/// The single column of scores recorded from onnxruntime (header `p_bad`
/// for classifiers, `score` for regressors).
fn read_reference(path: &Path) -> Result<Vec<f32>, Box<dyn std::error::Error>> {
    Ok(read_features_file(path, 1, None)?.values)
}
