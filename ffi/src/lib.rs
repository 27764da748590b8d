//! # libtickscore: the C ABI of tickscore
//!
//! Conventions (the same on every function, and in the README):
//!
//! * **Handles** are opaque: `ts_model` (an immutable loaded model) and
//!   `ts_scorer` (a per-thread scoring context). Each is created by one
//!   function and freed exactly once by its `_free`; `_free(NULL)` is a
//!   no-op. A scorer keeps its model alive: the model may be freed first.
//! * **Status**: every fallible function returns a `ts_status`; `TS_STATUS_OK`
//!   is 0. On failure, `ts_last_error_message` gives this thread's detailed
//!   message. Codes are never reused.
//! * **Outputs** are written only on success.
//! * **Pointers**: NULL is checked on every pointer argument; float buffers
//!   must be 4-byte aligned and hold the stated number of floats.
//! * **Panics** never cross the ABI: they become `TS_STATUS_PANIC`.
//! * **Threads**: functions taking a `const ts_model *` are thread-safe. A
//!   `ts_scorer` must be used by one thread at a time (it may move between
//!   threads). `ts_score` allocates nothing and takes no lock.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

mod boundary;
mod pool;
mod registry;
mod status;
mod strings;

use std::ffi::{c_char, CStr};

use boundary::{ffi_boundary, floats, floats_mut, non_null};
use engine::{
    InputPolicy, LoadOptions, Model, NonFinitePolicy, ScoreError, Scorer, Tier, TierChoice,
    VersionedScorer,
};
pub use pool::{TsEngine, TsEngineOptions, TsEngineSnapshot, TsLatency, TsStageTimes};
pub use registry::{TsRegistry, TsRegistryOptions};
pub use status::TsStatus;
use status::{copy_last_error, FfiError};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A loaded, validated, immutable model. Thread-safe.
pub struct TsModel {
    model: Model,
}

impl TsModel {
    pub(crate) fn model(&self) -> &Model {
        &self.model
    }
}

/// A scoring context owning its scratch memory. One thread at a time.
pub struct TsScorer {
    scorer: ScorerKind,
}

/// A scorer of one model, or one that follows a registry deployment.
pub(crate) enum ScorerKind {
    Plain(Scorer),
    Versioned(VersionedScorer),
}

impl ScorerKind {
    /// Score one row; returns the version that scored it.
    #[inline]
    fn score(&mut self, row: &[f32], out: &mut [f32]) -> Result<u64, ScoreError> {
        match self {
            ScorerKind::Plain(s) => {
                s.score(row, out)?;
                Ok(u64::try_from(s.model().info().model_version).unwrap_or(0))
            }
            ScorerKind::Versioned(s) => s.score(row, out),
        }
    }

    fn score_batch(&mut self, rows: &[f32], out: &mut [f32]) -> Result<u64, ScoreError> {
        match self {
            ScorerKind::Plain(s) => {
                s.score_batch(rows, out)?;
                Ok(u64::try_from(s.model().info().model_version).unwrap_or(0))
            }
            ScorerKind::Versioned(s) => s.score_batch(rows, out),
        }
    }
}

impl TsScorer {
    pub(crate) fn versioned(scorer: VersionedScorer) -> TsScorer {
        TsScorer {
            scorer: ScorerKind::Versioned(scorer),
        }
    }
}

/// Options for `ts_model_open`. Initialise with `ts_model_options_default`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct TsModelOptions {
    /// Refuse model files larger than this many bytes (default 256 MiB).
    pub max_model_bytes: u64,
    /// Refuse a model whose input width differs; 0 accepts any (default 0).
    pub expect_width: usize,
    /// NaN features: 0 = reject the row (default), 1 = pass to the model.
    pub nan_policy: u32,
    /// ±inf features: 0 = reject the row (default), 1 = pass to the model.
    pub infinite_policy: u32,
    /// Engine: 0 = lowered plan when possible (default), 1 = always tract.
    pub tier: u32,
}

/// The library version ("MAJOR.MINOR.PATCH"), a static NUL-terminated
/// string (never free it). Equals the header's `TICKSCORE_VERSION`.
#[no_mangle]
pub extern "C" fn ts_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// A static NUL-terminated description of a `ts_status` code (never free
/// it); "unknown status" for a code this library does not define. Takes
/// the code as an integer so that any value a C caller passes is valid.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn ts_status_str(status: u32) -> *const c_char {
    TsStatus::from_code(status)
        .map_or("unknown status\0", TsStatus::text)
        .as_ptr()
        .cast()
}

/// Copy the calling thread's last error message into `buf` (capacity
/// `buf_len` bytes, NUL-terminated, truncated to fit) and return the full
/// message length in bytes (excluding the NUL); 0 if no call on this thread
/// has failed. `buf` may be NULL to query the length. Thread-safe.
///
/// # Safety
/// `buf` must be NULL or writable for `buf_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn ts_last_error_message(buf: *mut c_char, buf_len: usize) -> usize {
    // SAFETY: `buf` is NULL or writable for `buf_len` bytes, by contract.
    std::panic::catch_unwind(|| unsafe { copy_last_error(buf, buf_len) }).unwrap_or(0)
}

/// Fill `*out_options` with the defaults. Thread-safe.
///
/// # Safety
/// `out_options` must be NULL (refused) or writable.
#[no_mangle]
pub unsafe extern "C" fn ts_model_options_default(out_options: *mut TsModelOptions) -> TsStatus {
    ffi_boundary(|| {
        non_null(out_options, "out_options")?;
        let d = LoadOptions::default();
        let options = TsModelOptions {
            max_model_bytes: d.max_model_bytes,
            expect_width: 0,
            nan_policy: 0,
            infinite_policy: 0,
            tier: 0,
        };
        // SAFETY: non-NULL (checked); the caller provides a writable struct.
        unsafe { out_options.write(options) };
        Ok(())
    })
}

fn policy(v: u32, what: &str) -> Result<NonFinitePolicy, FfiError> {
    match v {
        0 => Ok(NonFinitePolicy::Reject),
        1 => Ok(NonFinitePolicy::Pass),
        _ => Err(FfiError::new(
            TsStatus::InvalidArgument,
            format!("{what} must be 0 or 1, got {v}"),
        )),
    }
}

fn load_options(o: &TsModelOptions) -> Result<LoadOptions, FfiError> {
    Ok(LoadOptions {
        max_model_bytes: o.max_model_bytes,
        expect_width: (o.expect_width != 0).then_some(o.expect_width),
        input_policy: InputPolicy {
            nan: policy(o.nan_policy, "nan_policy")?,
            infinite: policy(o.infinite_policy, "infinite_policy")?,
        },
        tier: match o.tier {
            0 => TierChoice::Auto,
            1 => TierChoice::Tract,
            t => {
                return Err(FfiError::new(
                    TsStatus::InvalidArgument,
                    format!("tier must be 0 or 1, got {t}"),
                ))
            }
        },
    })
}

/// Load the ONNX model at `path` (NUL-terminated UTF-8). `options` may be
/// NULL for the defaults. On success `*out_model` owns a new model: free it
/// with `ts_model_free`. Loading reads, verifies, imports, lowers and warms
/// the model; it allocates and may take milliseconds, so keep it off the
/// trading path. Thread-safe.
///
/// # Safety
/// `path` must be a valid NUL-terminated string; `options`, if not NULL, a
/// valid `ts_model_options`; `out_model` a writable pointer.
#[no_mangle]
pub unsafe extern "C" fn ts_model_open(
    path: *const c_char,
    options: *const TsModelOptions,
    out_model: *mut *mut TsModel,
) -> TsStatus {
    ffi_boundary(|| {
        non_null(path, "path")?;
        non_null(out_model, "out_model")?;
        // SAFETY: non-NULL (checked); NUL-terminated by contract.
        let path = unsafe { CStr::from_ptr(path) }
            .to_str()
            .map_err(|_| FfiError::new(TsStatus::InvalidArgument, "path is not valid UTF-8"))?;
        let options = if options.is_null() {
            LoadOptions::default()
        } else {
            // SAFETY: non-NULL (checked); points to a valid struct by contract.
            load_options(unsafe { &*options })?
        };
        let model = Model::load(path, &options)?;
        let handle = Box::into_raw(Box::new(TsModel { model }));
        // SAFETY: non-NULL (checked); writable by contract.
        unsafe { out_model.write(handle) };
        Ok(())
    })
}

/// Free a model from `ts_model_open`. NULL is a no-op. Scorers made from
/// it stay valid. Do not use `model` afterwards, and free it only once.
///
/// # Safety
/// `model` must be NULL or a pointer from `ts_model_open` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn ts_model_free(model: *mut TsModel) {
    if !model.is_null() {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: from `Box::into_raw` in its constructor, freed once by contract.
            drop(unsafe { Box::from_raw(model) })
        }));
    }
}

/// Borrow the model behind a handle.
///
/// # Safety
/// `model` must be NULL or a live handle from `ts_model_open`.
unsafe fn model_ref<'a>(model: *const TsModel) -> Result<&'a TsModel, FfiError> {
    non_null(model, "model")?;
    // SAFETY: non-NULL (checked) and live by contract.
    Ok(unsafe { &*model })
}

/// Answer a read-only query about a model into `*out`.
///
/// # Safety
/// `model` must be NULL (refused) or a live model handle; `out` NULL
/// (refused) or writable.
unsafe fn answer<T>(
    model: *const TsModel,
    out: *mut T,
    name: &str,
    query: impl FnOnce(&Model) -> T,
) -> TsStatus {
    ffi_boundary(|| {
        // SAFETY: forwarded contract.
        let m = unsafe { model_ref(model) }?;
        non_null(out, name)?;
        let value = query(&m.model);
        // SAFETY: non-NULL (checked); writable by contract.
        unsafe { out.write(value) };
        Ok(())
    })
}

/// Write the number of features a row must have to `*out_width`.
/// Thread-safe.
///
/// # Safety
/// `model` must be a live model handle; `out_width` writable.
#[no_mangle]
pub unsafe extern "C" fn ts_model_input_width(
    model: *const TsModel,
    out_width: *mut usize,
) -> TsStatus {
    // SAFETY: forwarded from this function's contract.
    unsafe { answer(model, out_width, "out_width", |m| m.info().input_width) }
}

/// Write the number of scores per row to `*out_width` (1 for a binary
/// classifier: P(class 1)). Thread-safe.
///
/// # Safety
/// `model` must be a live model handle; `out_width` writable.
#[no_mangle]
pub unsafe extern "C" fn ts_model_score_width(
    model: *const TsModel,
    out_width: *mut usize,
) -> TsStatus {
    // SAFETY: forwarded from this function's contract.
    unsafe { answer(model, out_width, "out_width", |m| m.info().score_width) }
}

/// Write the model file's ONNX `model_version` field (0 if unset) to
/// `*out_version`. Thread-safe.
///
/// # Safety
/// `model` must be a live model handle; `out_version` writable.
#[no_mangle]
pub unsafe extern "C" fn ts_model_version(
    model: *const TsModel,
    out_version: *mut i64,
) -> TsStatus {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        answer(model, out_version, "out_version", |m| {
            m.info().model_version
        })
    }
}

/// Write 1 to `*out_lowered` if the model runs on tickscore's lowered
/// (allocation-free) engine, 0 if on tract's. Thread-safe.
///
/// # Safety
/// `model` must be a live model handle; `out_lowered` writable.
#[no_mangle]
pub unsafe extern "C" fn ts_model_is_lowered(
    model: *const TsModel,
    out_lowered: *mut u32,
) -> TsStatus {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        answer(model, out_lowered, "out_lowered", |m| {
            u32::from(matches!(m.tier(), Tier::Lowered { .. }))
        })
    }
}

/// Copy the name of feature `index` into `buf` (NUL-terminated) and its
/// length (without NUL) into `*out_len`. Returns `TS_STATUS_BUFFER_TOO_SMALL`
/// (with `*out_len` set, `buf` untouched) if `buf_len <= *out_len`,
/// `TS_STATUS_INDEX_OUT_OF_RANGE` past the last feature or if the model
/// names no features. Thread-safe.
///
/// # Safety
/// `model` must be a live model handle; `buf` writable for `buf_len` bytes
/// (or NULL with `buf_len` 0 to query the length); `out_len` writable.
#[no_mangle]
pub unsafe extern "C" fn ts_model_feature_name(
    model: *const TsModel,
    index: usize,
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> TsStatus {
    ffi_boundary(|| {
        // SAFETY: the caller's contract.
        let m = unsafe { model_ref(model) }?;
        non_null(out_len, "out_len")?;
        let names = m.model.info().feature_names.as_deref().unwrap_or(&[]);
        let name = names.get(index).ok_or_else(|| {
            FfiError::new(
                TsStatus::IndexOutOfRange,
                format!("feature {index} of {} named", names.len()),
            )
        })?;
        // SAFETY: non-NULL (checked); writable by contract.
        unsafe { out_len.write(name.len()) };
        if buf.is_null() || buf_len <= name.len() {
            return Err(FfiError::new(
                TsStatus::BufferTooSmall,
                format!("feature name needs {} bytes with its NUL", name.len() + 1),
            ));
        }
        // SAFETY: `buf` is non-NULL (checked) and writable for `buf_len`
        // bytes by contract.
        unsafe { strings::copy_to_c(name, buf, buf_len) };
        Ok(())
    })
}

/// Create a scorer for `model` on success in `*out_scorer` (free it with
/// `ts_scorer_free`). It allocates its scratch memory and warms up now, so
/// that `ts_score` does neither. Create one per scoring thread.
/// Thread-safe with respect to `model`.
///
/// # Safety
/// `model` must be a live model handle; `out_scorer` writable.
#[no_mangle]
pub unsafe extern "C" fn ts_scorer_new(
    model: *const TsModel,
    out_scorer: *mut *mut TsScorer,
) -> TsStatus {
    ffi_boundary(|| {
        // SAFETY: the caller's contract.
        let m = unsafe { model_ref(model) }?;
        non_null(out_scorer, "out_scorer")?;
        let scorer = m.model.scorer()?;
        let handle = Box::into_raw(Box::new(TsScorer {
            scorer: ScorerKind::Plain(scorer),
        }));
        // SAFETY: non-NULL (checked); writable by contract.
        unsafe { out_scorer.write(handle) };
        Ok(())
    })
}

/// Free a scorer from `ts_scorer_new`. NULL is a no-op. Free it only once.
///
/// # Safety
/// `scorer` must be NULL or a pointer from `ts_scorer_new` not yet freed,
/// and not in use by another thread.
#[no_mangle]
pub unsafe extern "C" fn ts_scorer_free(scorer: *mut TsScorer) {
    if !scorer.is_null() {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: from `Box::into_raw` in its constructor, freed once by contract.
            drop(unsafe { Box::from_raw(scorer) })
        }));
    }
}

/// Score one row of `row_len` features into `out` (`out_len` floats, the
/// model's score width), on the calling thread. Validates width and
/// NaN/inf first; on failure `out` is untouched. Allocates nothing and
/// takes no lock (on the lowered engine). One thread at a time per scorer.
///
/// # Safety
/// `scorer` must be a live scorer not used concurrently; `row` readable for
/// `row_len` floats; `out` writable for `out_len` floats; both 4-byte
/// aligned and not overlapping.
#[no_mangle]
pub unsafe extern "C" fn ts_score(
    scorer: *mut TsScorer,
    row: *const f32,
    row_len: usize,
    out: *mut f32,
    out_len: usize,
) -> TsStatus {
    ffi_boundary(|| {
        non_null(scorer, "scorer")?;
        // SAFETY: the caller's contract (stated above).
        let (row, out) = unsafe {
            (
                floats(row, row_len, "row")?,
                floats_mut(out, out_len, "out")?,
            )
        };
        // SAFETY: non-NULL (checked), live and not shared by contract.
        let s = unsafe { &mut *scorer };
        s.scorer.score(row, out)?;
        Ok(())
    })
}

/// As `ts_score`, and on success writes to `*out_version` the version of
/// the model that scored the row: the registry version for a scorer from
/// `ts_registry_scorer_new` (which follows publish and rollback), the ONNX
/// `model_version` for a scorer of a model opened from a file. Same
/// allocation, lock and threading rules as `ts_score`.
///
/// # Safety
/// As for `ts_score`; `out_version` writable.
#[no_mangle]
pub unsafe extern "C" fn ts_score_versioned(
    scorer: *mut TsScorer,
    row: *const f32,
    row_len: usize,
    out: *mut f32,
    out_len: usize,
    out_version: *mut u64,
) -> TsStatus {
    ffi_boundary(|| {
        non_null(scorer, "scorer")?;
        non_null(out_version, "out_version")?;
        // SAFETY: the caller's contract (stated above).
        let (row, out) = unsafe {
            (
                floats(row, row_len, "row")?,
                floats_mut(out, out_len, "out")?,
            )
        };
        // SAFETY: non-NULL (checked), live and not shared by contract.
        let s = unsafe { &mut *scorer };
        let version = s.scorer.score(row, out)?;
        // SAFETY: non-NULL (checked); writable by contract.
        unsafe { out_version.write(version) };
        Ok(())
    })
}

/// Score `rows_len / input_width` rows stored back to back into `out`
/// (`score_width` floats per row). Every row is validated before any is
/// scored; on failure `out` is untouched and the message names the row.
/// Same allocation, lock and threading rules as `ts_score`.
///
/// # Safety
/// As for `ts_score`, with `rows_len` and `out_len` floats.
#[no_mangle]
pub unsafe extern "C" fn ts_score_batch(
    scorer: *mut TsScorer,
    rows: *const f32,
    rows_len: usize,
    out: *mut f32,
    out_len: usize,
) -> TsStatus {
    ffi_boundary(|| {
        non_null(scorer, "scorer")?;
        // SAFETY: the caller's contract (stated above).
        let (rows, out) = unsafe {
            (
                floats(rows, rows_len, "rows")?,
                floats_mut(out, out_len, "out")?,
            )
        };
        // SAFETY: non-NULL (checked), live and not shared by contract.
        let s = unsafe { &mut *scorer };
        s.scorer.score_batch(rows, out)?;
        Ok(())
    })
}
