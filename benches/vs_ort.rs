//! tickscore vs ONNX Runtime, side by side in one process, same models, same
//! rows, single thread, per-call latency percentiles (HdrHistogram).
//!
//! ```sh
//! ./scripts/bench-vs-ort            # installs the onnxruntime wheel in a venv, then runs this
//! ORT_DYLIB_PATH=/path/libonnxruntime.so.1.32.0 cargo bench --features ort-bench --bench vs_ort
//! ```
//!
//! ONNX Runtime is given its best case: one intra-op and one inter-op
//! thread, full graph optimisation, input and output tensors bound once
//! (`IoBinding`) and rewritten in place, and each call is the C API's
//! `RunWithBinding` alone (no wrapper allocation). tickscore runs
//! `Scorer::score` / `Scorer::score_batch` inline. The two engines alternate
//! in blocks of `BLOCK` calls so that both see the same machine conditions,
//! on one thread pinned to core 0 once both engines are built.
//! Before timing, both engines' outputs are checked against each other on
//! every test row. Each call is timed with two `Instant` reads (~50 ns on
//! this VM, included in both engines' figures alike).
//!
//! Arguments (after `--`): model names (default: every bundled model),
//! `--calls N` per engine and batch size (default 200,000 single rows),
//! `--block N` calls per block (default 1,000). The first call of each
//! block finds the caches full of the other engine's data: with blocks of
//! 1,000 that cold call is 0.1% of the calls, i.e. exactly p99.9; with
//! `--block 10000` p99.9 shows the steady state instead.

use std::path::{Path, PathBuf};
use std::time::Instant;

use hdrhistogram::Histogram;
use ort::session::Session;
use ort::value::Tensor;
use ort::AsPointer;
use tickscore::input::read_features_by_name_from_any;
use tickscore::{InputPolicy, LoadOptions, Model, NonFinitePolicy};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Default calls per block (`--block N` changes it).
const BLOCK: usize = 1000;

type Error = Box<dyn std::error::Error>;

/// One ONNX Runtime session with its input and output bound to fixed buffers.
struct OrtRunner {
    session: Session,
    binding: ort::session::IoBinding,
    input: Tensor<f32>,
    output: Tensor<f32>,
    /// Column of the bound output that holds the score.
    column: usize,
    output_width: usize,
}

impl OrtRunner {
    fn new(
        env: &ort::environment::Environment,
        path: &Path,
        batch: usize,
        width: usize,
    ) -> Result<Self, Error> {
        let session = Session::builder(env)?
            .with_intra_threads(1)?
            .with_inter_threads(1)?
            .commit_from_file(path)?;
        let score = session
            .outputs()
            .iter()
            .map(|o| o.name().to_string())
            .find(|n| n.contains("prob"))
            .or_else(|| session.outputs().first().map(|o| o.name().to_string()))
            .ok_or("model has no outputs")?;
        let is_prob = score.contains("prob");
        let input_name = session.inputs()[0].name().to_string();
        let input = Tensor::<f32>::from_array(([batch, width], vec![0f32; batch * width]))?;
        let output_width = if is_prob { 2 } else { 1 };
        // ORT binds outputs only to tensors from one of its allocators.
        let output = Tensor::<f32>::new(&ort::memory::Allocator::default(), [batch, output_width])?;
        let mut runner = OrtRunner {
            binding: session.create_binding()?,
            session,
            input,
            output,
            column: if is_prob { 1 } else { 0 },
            output_width,
        };
        runner.binding.bind_input(input_name, &runner.input)?;
        runner.binding.bind_output(score, &mut runner.output)?;
        Ok(runner)
    }

    /// Copy `rows` into the bound input (done outside the timed call only for
    /// the correctness check; timed calls include it too).
    #[inline]
    fn run(&mut self, rows: &[f32]) -> Result<(), Error> {
        self.input.extract_tensor_mut().1.copy_from_slice(rows);
        let api = ort::api();
        // SAFETY: the session and binding pointers come from live `ort`
        // objects owned by `self`; the bound input and output tensors are
        // owned by `self` too and outlive the call; a single thread uses them.
        let status = unsafe {
            (api.RunWithBinding)(
                self.session.ptr().cast_mut(),
                std::ptr::null(),
                self.binding.ptr(),
            )
        };
        if status.0.is_null() {
            Ok(())
        } else {
            // SAFETY: a non-null status is a valid OrtStatus we now own.
            let msg = unsafe {
                let text = std::ffi::CStr::from_ptr((api.GetErrorMessage)(status.0))
                    .to_string_lossy()
                    .into_owned();
                (api.ReleaseStatus)(status.0);
                text
            };
            Err(msg.into())
        }
    }

    fn scores(&self) -> impl Iterator<Item = f32> + '_ {
        self.output
            .extract_tensor()
            .1
            .chunks_exact(self.output_width)
            .map(|c| c[self.column])
    }
}

struct Engines {
    name: String,
    batch: usize,
    ts: Histogram<u64>,
    ort: Histogram<u64>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

fn compare(
    env: &ort::environment::Environment,
    dir: &Path,
    name: &str,
    batch: usize,
    calls: usize,
    block_len: usize,
) -> Result<Engines, Error> {
    let path = dir.join(name).join("model.onnx");
    // Trees take NaN as "missing"; the other models never see NaN here.
    let options = LoadOptions {
        input_policy: InputPolicy {
            nan: NonFinitePolicy::Pass,
            infinite: NonFinitePolicy::Reject,
        },
        ..LoadOptions::default()
    };
    let model = Model::load(&path, &options)?;
    let w = model.info().input_width;
    let names = model
        .info()
        .feature_names
        .as_ref()
        .ok_or("model has no feature names")?;
    let data = dir.join("data");
    let rows = read_features_by_name_from_any(
        &[
            &data.join("german_test.csv"),
            &data.join("german_wide_test.csv"),
        ],
        names,
    )?;
    let n_rows = rows.rows();
    let mut ort = OrtRunner::new(env, &path, batch, w)?;
    let mut scorer = model.scorer()?;

    // Same numbers first: every test row through both engines.
    let mut worst = 0f32;
    for start in (0..n_rows - batch + 1).step_by(batch) {
        let chunk = &rows.values[start * w..(start + batch) * w];
        let mut ts_out = vec![0f32; batch * model.info().score_width];
        scorer.score_batch(chunk, &mut ts_out)?;
        ort.run(chunk)?;
        for (a, b) in ts_out.iter().zip(ort.scores()) {
            worst = worst.max((a - b).abs());
        }
    }
    if worst > 1e-5 {
        return Err(format!("{name}: tickscore and onnxruntime disagree by {worst}").into());
    }

    let mut out = vec![0f32; batch * model.info().score_width];
    let mut ts_hist = histogram();
    let mut ort_hist = histogram();
    let mut i = 0usize;
    let mut next_rows = || {
        let start = i % (n_rows - batch + 1);
        i += batch;
        start
    };
    // The timing thread runs both engines on core 0 (on this VM the disk's
    // interrupts go to core 1). Pinned only now, after both engines are
    // built, so that no thread onnxruntime starts inherits the pin.
    let _ = core_affinity::set_for_current(core_affinity::CoreId { id: 0 });
    // Warm both engines, then alternate blocks.
    for _ in 0..block_len {
        let s = next_rows();
        scorer.score_batch(&rows.values[s * w..(s + batch) * w], &mut out)?;
        ort.run(&rows.values[s * w..(s + batch) * w])?;
    }
    let mut done = 0;
    while done < calls {
        let block = block_len.min(calls - done);
        for _ in 0..block {
            let s = next_rows();
            let chunk = &rows.values[s * w..(s + batch) * w];
            let t0 = Instant::now();
            scorer.score_batch(chunk, &mut out)?;
            ts_hist.saturating_record(t0.elapsed().as_nanos() as u64);
        }
        for _ in 0..block {
            let s = next_rows();
            let chunk = &rows.values[s * w..(s + batch) * w];
            let t0 = Instant::now();
            ort.run(chunk)?;
            ort_hist.saturating_record(t0.elapsed().as_nanos() as u64);
        }
        done += block;
    }
    std::hint::black_box(&out);
    Ok(Engines {
        name: name.to_string(),
        batch,
        ts: ts_hist,
        ort: ort_hist,
    })
}

fn fmt_ns(ns: u64) -> String {
    tickscore::telemetry::human_ns(ns as f64)
}

fn main() -> Result<(), Error> {
    let mut names = Vec::new();
    let mut calls = 200_000usize;
    let mut block_len = BLOCK;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--calls" => calls = args.next().ok_or("--calls needs a number")?.parse()?,
            "--block" => block_len = args.next().ok_or("--block needs a number")?.parse()?,
            "--bench" => {}
            other if other.starts_with("--") => {}
            other => names.push(other.to_string()),
        }
    }
    let dylib = std::env::var_os("ORT_DYLIB_PATH")
        .map(PathBuf::from)
        .ok_or(
            "set ORT_DYLIB_PATH to onnxruntime's shared library (scripts/bench-vs-ort does it)",
        )?;
    let env = ort::init_from(&dylib)?
        .with_name("tickscore-vs-ort")
        .build()?;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    if names.is_empty() {
        let mut all: Vec<String> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("model.onnx").is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        all.sort();
        names = all;
    }
    println!("onnxruntime: {}", dylib.display());
    println!("{calls} timed calls per engine and batch size, alternating blocks of {block_len}; latency per call");
    println!(
        "{:<18} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} | tickscore/ORT at p50 p90 p99 p99.9",
        "model", "batch", "ts p50", "ort p50", "ts p90", "ort p90", "ts p99", "ort p99", "ts p99.9", "ort p99.9"
    );
    for name in &names {
        for batch in [1usize, 64] {
            let calls = if batch == 1 {
                calls
            } else {
                (calls / 16).max(block_len)
            };
            match compare(&env, &dir, name, batch, calls, block_len) {
                Ok(e) => {
                    let q = |h: &Histogram<u64>, p: f64| h.value_at_quantile(p);
                    let cell = |h: &Histogram<u64>, p: f64| fmt_ns(q(h, p));
                    let ratio = |p: f64| q(&e.ts, p) as f64 / q(&e.ort, p) as f64;
                    println!(
                        "{:<18} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} | {:.3} {:.3} {:.3} {:.3}",
                        e.name,
                        e.batch,
                        cell(&e.ts, 0.5),
                        cell(&e.ort, 0.5),
                        cell(&e.ts, 0.9),
                        cell(&e.ort, 0.9),
                        cell(&e.ts, 0.99),
                        cell(&e.ort, 0.99),
                        cell(&e.ts, 0.999),
                        cell(&e.ort, 0.999),
                        ratio(0.5),
                        ratio(0.9),
                        ratio(0.99),
                        ratio(0.999),
                    );
                }
                Err(err) => println!("{name:<16} {batch:>5} FAILED: {err}"),
            }
        }
    }
    Ok(())
}
