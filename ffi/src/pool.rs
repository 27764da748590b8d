//! The worker runtime through the C ABI: `ts_engine_*`.

use std::time::Duration;

use engine::runtime::{Counters, Snapshot};
use engine::telemetry::LatencySummary;
use engine::{Engine, EngineConfig, IdleStrategy, StageTimes, TicketId};

use crate::boundary::{ffi_boundary, floats, floats_mut, non_null};
use crate::status::{FfiError, TsStatus};
use crate::TsModel;

/// A pool of worker threads pinned to cores, scoring one model. Thread-safe:
/// any number of threads may submit, poll and wait concurrently.
pub struct TsEngine {
    pub(crate) engine: Engine,
}

/// Options for `ts_engine_open`. Initialise with `ts_engine_options_default`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct TsEngineOptions {
    /// Worker threads (default 1).
    pub workers: u32,
    /// Cores to pin workers to, in order (`cores_len` entries); NULL for the
    /// default (the cores the system reports, from the last).
    pub cores: *const usize,
    /// Entries in `cores`.
    pub cores_len: usize,
    /// Queue depth = most requests in flight (default 1024).
    pub queue_depth: usize,
    /// Idle workers: 0 = spin `idle_spin_ns` then sleep (default),
    /// 1 = busy-spin, 2 = sleep at once.
    pub idle: u32,
    /// Spin time before sleeping for idle = 0 (default 50,000 ns).
    pub idle_spin_ns: u64,
    /// Default queue-wait deadline in ns; 0 = none (default).
    pub deadline_ns: u64,
}

/// Stage timestamps of one request, in nanoseconds.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct TsStageTimes {
    /// From submit to a worker taking the request.
    pub queue_wait_ns: u64,
    /// Scoring on the worker.
    pub compute_ns: u64,
    /// From submit to the result being published.
    pub end_to_end_ns: u64,
    /// The model version that scored the request (registry version, or the
    /// ONNX `model_version` of a model opened from a file).
    pub model_version: u64,
}

/// Latency percentiles of one stage, in nanoseconds.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct TsLatency {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean_ns: f64,
    /// Median.
    pub p50_ns: u64,
    /// 90th percentile.
    pub p90_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// 99.99th percentile.
    pub p9999_ns: u64,
    /// Largest.
    pub max_ns: u64,
}

/// Counters and per-stage latency of an engine since it started.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct TsEngineSnapshot {
    /// Requests accepted.
    pub accepted: u64,
    /// Requests refused with TS_STATUS_BUSY.
    pub busy: u64,
    /// Requests completed (scored or failed).
    pub completed: u64,
    /// Completed with scores.
    pub scored: u64,
    /// Failed with TS_STATUS_DEADLINE_EXCEEDED.
    pub deadline_exceeded: u64,
    /// Failed with a scoring error.
    pub errors: u64,
    /// Failed with a contained panic.
    pub panics: u64,
    /// Submit to a worker taking the request.
    pub queue_wait: TsLatency,
    /// Scoring on the worker.
    pub compute: TsLatency,
    /// Submit to the result being published.
    pub end_to_end: TsLatency,
}

fn latency(s: &LatencySummary) -> TsLatency {
    TsLatency {
        count: s.count,
        mean_ns: s.mean_ns,
        p50_ns: s.p50_ns,
        p90_ns: s.p90_ns,
        p99_ns: s.p99_ns,
        p999_ns: s.p999_ns,
        p9999_ns: s.p9999_ns,
        max_ns: s.max_ns,
    }
}

fn times(t: StageTimes) -> TsStageTimes {
    TsStageTimes {
        queue_wait_ns: t.queue_wait_ns,
        compute_ns: t.compute_ns,
        end_to_end_ns: t.end_to_end_ns,
        model_version: t.model_version,
    }
}

/// Fill `*out_options` with the defaults. Thread-safe.
///
/// # Safety
/// `out_options` must be NULL (refused) or writable.
#[no_mangle]
pub unsafe extern "C" fn ts_engine_options_default(out_options: *mut TsEngineOptions) -> TsStatus {
    ffi_boundary(|| {
        non_null(out_options, "out_options")?;
        let d = EngineConfig::default();
        let options = TsEngineOptions {
            workers: d.workers as u32,
            cores: std::ptr::null(),
            cores_len: 0,
            queue_depth: d.queue_depth,
            idle: 0,
            idle_spin_ns: 50_000,
            deadline_ns: 0,
        };
        // SAFETY: non-NULL (checked); writable by contract.
        unsafe { out_options.write(options) };
        Ok(())
    })
}

/// Start an engine for `model` (`options` may be NULL for the defaults):
/// workers are pinned, warmed up and ready when this returns. Free it with
/// `ts_engine_free`. Control plane: allocates and starts threads.
/// Thread-safe with respect to `model`.
///
/// # Safety
/// `model` must be a live model handle; `options`, if not NULL, a valid
/// `ts_engine_options` whose `cores` holds `cores_len` entries;
/// `out_engine` writable.
#[no_mangle]
pub unsafe extern "C" fn ts_engine_open(
    model: *const TsModel,
    options: *const TsEngineOptions,
    out_engine: *mut *mut TsEngine,
) -> TsStatus {
    ffi_boundary(|| {
        non_null(model, "model")?;
        non_null(out_engine, "out_engine")?;
        // SAFETY: forwarded contract: NULL or a valid options struct.
        let config = unsafe { engine_config(options) }?;
        // SAFETY: non-NULL (checked) and live by contract.
        let m = unsafe { &*model };
        let engine = Engine::start(m.model(), &config)?;
        let handle = Box::into_raw(Box::new(TsEngine { engine }));
        // SAFETY: non-NULL (checked); writable by contract.
        unsafe { out_engine.write(handle) };
        Ok(())
    })
}

/// Shut the engine down: stop accepting, complete every accepted request,
/// join the workers, free it. NULL is a no-op. Tickets not yet taken are
/// lost. No other thread may use the engine during or after this call.
///
/// # Safety
/// `engine` must be NULL or a pointer from `ts_engine_open` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn ts_engine_free(engine: *mut TsEngine) {
    if !engine.is_null() {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: from `Box::into_raw` in `ts_engine_open`, freed once by contract.
            drop(unsafe { Box::from_raw(engine) })
        }));
    }
}

/// Borrow the engine behind a handle.
///
/// # Safety
/// `engine` must be NULL or a live handle.
unsafe fn engine_ref<'a>(engine: *const TsEngine) -> Result<&'a Engine, FfiError> {
    non_null(engine, "engine")?;
    // SAFETY: non-NULL (checked) and live by contract.
    Ok(unsafe { &(*engine).engine })
}

/// Queue one row (`row_len` floats, copied before return) for a worker;
/// `deadline_ns` (0 = the engine's default) bounds its queue wait. On
/// success `*out_ticket` identifies the request: pass it once to
/// `ts_engine_wait`, or to `ts_engine_poll` until it stops returning
/// TS_STATUS_PENDING. Never blocks: a full queue returns TS_STATUS_BUSY at
/// once. Allocates nothing. Thread-safe.
///
/// # Safety
/// `engine` must be a live engine; `row` readable for `row_len` aligned
/// floats; `out_ticket` writable.
#[no_mangle]
pub unsafe extern "C" fn ts_engine_submit(
    engine: *const TsEngine,
    row: *const f32,
    row_len: usize,
    deadline_ns: u64,
    out_ticket: *mut u64,
) -> TsStatus {
    ffi_boundary(|| {
        // SAFETY: the caller's contract (stated above).
        let (e, row) = unsafe { (engine_ref(engine)?, floats(row, row_len, "row")?) };
        non_null(out_ticket, "out_ticket")?;
        let deadline = (deadline_ns != 0).then(|| Duration::from_nanos(deadline_ns));
        let id = e.submit_detached(row, deadline)?;
        // SAFETY: non-NULL (checked); writable by contract.
        unsafe { out_ticket.write(id.to_u64()) };
        Ok(())
    })
}

fn finish(
    r: Result<StageTimes, engine::RequestError>,
    out_times: *mut TsStageTimes,
) -> Result<(), FfiError> {
    let t = r?;
    if !out_times.is_null() {
        // SAFETY: non-NULL (checked); writable by the caller's contract.
        unsafe { out_times.write(times(t)) };
    }
    Ok(())
}

/// If request `ticket` is finished, write its scores to `out` (`out_len`
/// floats, the score width) and, if `out_times` is not NULL, its stage
/// times, and return its outcome; return TS_STATUS_PENDING (nothing
/// written) if not yet. Does not block. Thread-safe.
///
/// # Safety
/// `engine` must be a live engine; `out` writable for `out_len` aligned
/// floats; `out_times` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ts_engine_poll(
    engine: *const TsEngine,
    ticket: u64,
    out: *mut f32,
    out_len: usize,
    out_times: *mut TsStageTimes,
) -> TsStatus {
    ffi_boundary(|| {
        // SAFETY: the caller's contract (stated above).
        let (e, out) = unsafe { (engine_ref(engine)?, floats_mut(out, out_len, "out")?) };
        check_out(e, out.len())?;
        match e.poll_detached(TicketId::from_u64(ticket), out)? {
            None => Err(FfiError::new(
                TsStatus::Pending,
                "the request is not finished",
            )),
            Some(r) => finish(r, out_times),
        }
    })
}

/// Wait for request `ticket` (spin briefly, then sleep until a worker
/// finishes it), write its scores and optional stage times, and return its
/// outcome. Thread-safe.
///
/// # Safety
/// As for `ts_engine_poll`.
#[no_mangle]
pub unsafe extern "C" fn ts_engine_wait(
    engine: *const TsEngine,
    ticket: u64,
    out: *mut f32,
    out_len: usize,
    out_times: *mut TsStageTimes,
) -> TsStatus {
    ffi_boundary(|| {
        // SAFETY: the caller's contract (stated above).
        let (e, out) = unsafe { (engine_ref(engine)?, floats_mut(out, out_len, "out")?) };
        check_out(e, out.len())?;
        let r = e.wait_detached(TicketId::from_u64(ticket), out)?;
        finish(r, out_times)
    })
}

fn check_out(e: &Engine, len: usize) -> Result<(), FfiError> {
    if len != e.score_width() {
        return Err(FfiError::new(
            TsStatus::OutputMismatch,
            format!(
                "output buffer holds {len} floats, the model writes {}",
                e.score_width()
            ),
        ));
    }
    Ok(())
}

/// Write the engine's counters and per-stage latency percentiles (merged
/// over workers) to `*out_snapshot`. Allocates; call it off the trading
/// path. Thread-safe.
///
/// # Safety
/// `engine` must be a live engine; `out_snapshot` writable.
#[no_mangle]
pub unsafe extern "C" fn ts_engine_snapshot(
    engine: *const TsEngine,
    out_snapshot: *mut TsEngineSnapshot,
) -> TsStatus {
    ffi_boundary(|| {
        // SAFETY: the caller's contract (stated above).
        let e = unsafe { engine_ref(engine)? };
        non_null(out_snapshot, "out_snapshot")?;
        let Snapshot {
            counters,
            queue_wait,
            compute,
            end_to_end,
        } = e.snapshot();
        let Counters {
            accepted,
            busy,
            completed,
            scored,
            deadline_exceeded,
            errors,
            panics,
            // Registered producers' lanes, and so reclaim, are not in the C
            // ABI (yet): always 0 for a C caller's engine.
            reclaimed: _,
            reclaimed_unscored: _,
        } = counters;
        let snap = TsEngineSnapshot {
            accepted,
            busy,
            completed,
            scored,
            deadline_exceeded,
            errors,
            panics,
            queue_wait: latency(&queue_wait),
            compute: latency(&compute),
            end_to_end: latency(&end_to_end),
        };
        // SAFETY: non-NULL (checked); writable by contract.
        unsafe { out_snapshot.write(snap) };
        Ok(())
    })
}

/// The engine configuration from C options (NULL: the defaults).
///
/// # Safety
/// `options` must be NULL or a valid `ts_engine_options` whose `cores`
/// holds `cores_len` entries.
pub(crate) unsafe fn engine_config(
    options: *const TsEngineOptions,
) -> Result<EngineConfig, FfiError> {
    let mut config = EngineConfig::default();
    if !options.is_null() {
        // SAFETY: non-NULL (checked), valid by contract.
        let o = unsafe { &*options };
        config.workers = o.workers as usize;
        config.queue_depth = o.queue_depth;
        config.idle = match o.idle {
            0 => IdleStrategy::SpinThenPark(Duration::from_nanos(o.idle_spin_ns)),
            1 => IdleStrategy::BusySpin,
            2 => IdleStrategy::Park,
            v => {
                return Err(FfiError::new(
                    TsStatus::InvalidArgument,
                    format!("idle must be 0, 1 or 2, got {v}"),
                ))
            }
        };
        config.default_deadline = (o.deadline_ns != 0).then(|| Duration::from_nanos(o.deadline_ns));
        if !o.cores.is_null() {
            // SAFETY: non-NULL (checked); `cores_len` entries by contract.
            config.cores =
                Some(unsafe { std::slice::from_raw_parts(o.cores, o.cores_len) }.to_vec());
        }
    }
    Ok(config)
}
