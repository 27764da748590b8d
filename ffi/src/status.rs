//! The one status enum of the C ABI, and the thread's last error message.

use std::cell::RefCell;
use std::ffi::c_char;

use engine::registry::RegistryError;
use engine::runtime::{EngineError, UnknownTicket};
use engine::{LoadError, RequestError, ScoreError, SubmitError};

/// Outcome of a C ABI call. Codes are stable and never reused; new codes
/// are only ever added. `ts_status_str` names a code, and
/// `ts_last_error_message` gives the calling thread's detailed message for
/// the last call that failed.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsStatus {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullArgument = 1,
    /// An argument is invalid: non-UTF-8 path, misaligned float pointer,
    /// unknown option value.
    InvalidArgument = 2,
    /// tickscore panicked inside the call; the panic was contained. Report it.
    Panic = 3,
    /// The model file could not be read.
    Io = 100,
    /// The model file is over the size limit.
    TooLarge = 101,
    /// The bytes are not a valid ONNX model.
    Malformed = 102,
    /// The graph needs an operator tickscore does not implement.
    UnsupportedOperator = 103,
    /// The model's input is not one f32 `[batch, features]` tensor.
    UnsupportedInput = 104,
    /// The model's width differs from `ts_model_options.expect_width`.
    InputWidthMismatch = 105,
    /// No model output can serve as a score.
    NoScoreOutput = 106,
    /// A tree ensemble in the model is malformed.
    InvalidTreeEnsemble = 107,
    /// The importer rejected the graph.
    Import = 108,
    /// The importer panicked on the file (contained).
    ImporterPanicked = 109,
    /// A row has the wrong number of features.
    WidthMismatch = 200,
    /// The output buffer has the wrong length.
    OutputMismatch = 201,
    /// A feature is NaN or infinite and the model's policy rejects it.
    NonFinite = 202,
    /// The execution engine failed on the row.
    Engine = 203,
    /// A feature lies outside the bounds of the registry manifest.
    OutOfBounds = 204,
    /// The caller's buffer is too small (the needed size was reported).
    BufferTooSmall = 300,
    /// An index is out of range.
    IndexOutOfRange = 301,
    /// The engine's queue is full: nothing was queued. Retry, shed, or score inline.
    Busy = 400,
    /// The request is not finished yet (from `ts_engine_poll`).
    Pending = 401,
    /// The engine is shutting down and accepts nothing new.
    ShutDown = 402,
    /// The request waited past its deadline and was not scored.
    DeadlineExceeded = 403,
    /// The ticket is unknown, stale, or its result was already taken.
    UnknownTicket = 404,
    /// The model panicked on this request (contained; the worker carries on).
    RequestPanicked = 405,
    /// The engine could not start (configuration or threads).
    EngineStart = 406,
    /// A registry file or directory could not be read or written.
    RegistryIo = 500,
    /// No such model in the registry (or an invalid model name).
    UnknownModel = 501,
    /// No such version of the model.
    UnknownVersion = 502,
    /// The manifest is malformed, breaks a rule, or sits in the wrong directory.
    Manifest = 503,
    /// The model file's size differs from the manifest (truncated or replaced).
    SizeMismatch = 504,
    /// The model file's sha256 differs from the manifest (altered).
    DigestMismatch = 505,
    /// The manifest is unsigned and the registry requires signatures.
    Unsigned = 506,
    /// The manifest is signed by a key that is not trusted.
    UntrustedKey = 507,
    /// The manifest's signature does not verify.
    BadSignature = 508,
    /// The lowered plan failed the parity probe (registry requires it).
    Probe = 509,
    /// The manifest does not describe the model file (features, output).
    ManifestModelMismatch = 510,
    /// The version's input schema differs from the serving one (not forced).
    SchemaChanged = 511,
    /// No earlier published version to roll back to.
    NothingToRollBack = 512,
    /// The model is not being served by this registry.
    NotServing = 513,
    /// The audit record could not be written, so the action was not taken.
    Audit = 514,
}

impl TsStatus {
    const ALL: [TsStatus; 43] = [
        TsStatus::Ok,
        TsStatus::NullArgument,
        TsStatus::InvalidArgument,
        TsStatus::Panic,
        TsStatus::Io,
        TsStatus::TooLarge,
        TsStatus::Malformed,
        TsStatus::UnsupportedOperator,
        TsStatus::UnsupportedInput,
        TsStatus::InputWidthMismatch,
        TsStatus::NoScoreOutput,
        TsStatus::InvalidTreeEnsemble,
        TsStatus::Import,
        TsStatus::ImporterPanicked,
        TsStatus::WidthMismatch,
        TsStatus::OutputMismatch,
        TsStatus::NonFinite,
        TsStatus::Engine,
        TsStatus::BufferTooSmall,
        TsStatus::IndexOutOfRange,
        TsStatus::Busy,
        TsStatus::Pending,
        TsStatus::ShutDown,
        TsStatus::DeadlineExceeded,
        TsStatus::UnknownTicket,
        TsStatus::RequestPanicked,
        TsStatus::EngineStart,
        TsStatus::OutOfBounds,
        TsStatus::RegistryIo,
        TsStatus::UnknownModel,
        TsStatus::UnknownVersion,
        TsStatus::Manifest,
        TsStatus::SizeMismatch,
        TsStatus::DigestMismatch,
        TsStatus::Unsigned,
        TsStatus::UntrustedKey,
        TsStatus::BadSignature,
        TsStatus::Probe,
        TsStatus::ManifestModelMismatch,
        TsStatus::SchemaChanged,
        TsStatus::NothingToRollBack,
        TsStatus::NotServing,
        TsStatus::Audit,
    ];

    /// The status with this code, if any.
    pub(crate) fn from_code(code: u32) -> Option<TsStatus> {
        Self::ALL.iter().copied().find(|s| *s as u32 == code)
    }

    pub(crate) fn text(self) -> &'static str {
        match self {
            TsStatus::Ok => "ok\0",
            TsStatus::NullArgument => "null argument\0",
            TsStatus::InvalidArgument => "invalid argument\0",
            TsStatus::Panic => "internal panic (contained)\0",
            TsStatus::Io => "cannot read model file\0",
            TsStatus::TooLarge => "model file too large\0",
            TsStatus::Malformed => "not a valid ONNX model\0",
            TsStatus::UnsupportedOperator => "unsupported operator\0",
            TsStatus::UnsupportedInput => "unsupported model input\0",
            TsStatus::InputWidthMismatch => "model input width differs from the expected width\0",
            TsStatus::NoScoreOutput => "no usable score output\0",
            TsStatus::InvalidTreeEnsemble => "invalid tree ensemble\0",
            TsStatus::Import => "model rejected by the importer\0",
            TsStatus::ImporterPanicked => "the importer panicked on this model\0",
            TsStatus::WidthMismatch => "row width mismatch\0",
            TsStatus::OutputMismatch => "output buffer length mismatch\0",
            TsStatus::NonFinite => "NaN or infinite feature rejected by the input policy\0",
            TsStatus::Engine => "execution engine failure\0",
            TsStatus::BufferTooSmall => "buffer too small\0",
            TsStatus::IndexOutOfRange => "index out of range\0",
            TsStatus::Busy => "busy: the queue is full\0",
            TsStatus::Pending => "pending\0",
            TsStatus::ShutDown => "the engine is shutting down\0",
            TsStatus::DeadlineExceeded => "deadline exceeded in the queue\0",
            TsStatus::UnknownTicket => "unknown, stale or already-taken ticket\0",
            TsStatus::RequestPanicked => "the model panicked on this request (contained)\0",
            TsStatus::EngineStart => "the engine could not start\0",
            TsStatus::OutOfBounds => "feature outside the manifest's bounds\0",
            TsStatus::RegistryIo => "registry file could not be read or written\0",
            TsStatus::UnknownModel => "no such model in the registry\0",
            TsStatus::UnknownVersion => "no such model version\0",
            TsStatus::Manifest => "invalid manifest\0",
            TsStatus::SizeMismatch => "model file size differs from the manifest\0",
            TsStatus::DigestMismatch => "model file sha256 differs from the manifest\0",
            TsStatus::Unsigned => "manifest not signed\0",
            TsStatus::UntrustedKey => "manifest signed by an untrusted key\0",
            TsStatus::BadSignature => "manifest signature does not verify\0",
            TsStatus::Probe => "parity probe failed\0",
            TsStatus::ManifestModelMismatch => "manifest does not describe the model\0",
            TsStatus::SchemaChanged => "input schema differs from the serving version\0",
            TsStatus::NothingToRollBack => "nothing to roll back to\0",
            TsStatus::NotServing => "model not served by this registry\0",
            TsStatus::Audit => "audit log write failed; action not taken\0",
        }
    }
}

/// An error on its way to C: a status and a message.
pub(crate) struct FfiError {
    pub status: TsStatus,
    pub message: String,
}

impl FfiError {
    pub(crate) fn new(status: TsStatus, message: impl Into<String>) -> FfiError {
        FfiError {
            status,
            message: message.into(),
        }
    }
}

fn load_status(e: &LoadError) -> TsStatus {
    match e {
        LoadError::Io { .. } => TsStatus::Io,
        LoadError::TooLarge { .. } => TsStatus::TooLarge,
        LoadError::Malformed(_) => TsStatus::Malformed,
        LoadError::UnsupportedOperator { .. } => TsStatus::UnsupportedOperator,
        LoadError::UnsupportedInput(_) => TsStatus::UnsupportedInput,
        LoadError::InputWidthMismatch { .. } => TsStatus::InputWidthMismatch,
        LoadError::NoScoreOutput(_) => TsStatus::NoScoreOutput,
        LoadError::InvalidTreeEnsemble(_) => TsStatus::InvalidTreeEnsemble,
        LoadError::ImporterPanicked(_) => TsStatus::ImporterPanicked,
        _ => TsStatus::Import,
    }
}

impl From<LoadError> for FfiError {
    fn from(e: LoadError) -> FfiError {
        FfiError::new(load_status(&e), e.to_string())
    }
}

impl From<RegistryError> for FfiError {
    fn from(e: RegistryError) -> FfiError {
        let status = match &e {
            RegistryError::Model(inner) => {
                return FfiError::new(
                    load_status(inner),
                    format!("refused at step {}: {e}", e.step()),
                );
            }
            RegistryError::Io { .. } => TsStatus::RegistryIo,
            RegistryError::InvalidName(_) | RegistryError::UnknownModel(_) => {
                TsStatus::UnknownModel
            }
            RegistryError::UnknownVersion { .. } => TsStatus::UnknownVersion,
            RegistryError::Manifest { .. } | RegistryError::ManifestLocation { .. } => {
                TsStatus::Manifest
            }
            RegistryError::TooLarge { .. } => TsStatus::TooLarge,
            RegistryError::SizeMismatch { .. } => TsStatus::SizeMismatch,
            RegistryError::DigestMismatch { .. } => TsStatus::DigestMismatch,
            RegistryError::Unsigned => TsStatus::Unsigned,
            RegistryError::UntrustedKey { .. } => TsStatus::UntrustedKey,
            RegistryError::BadSignature { .. } => TsStatus::BadSignature,
            RegistryError::Probe(_) => TsStatus::Probe,
            RegistryError::ManifestModelMismatch(_) => TsStatus::ManifestModelMismatch,
            RegistryError::SchemaChanged { .. } => TsStatus::SchemaChanged,
            RegistryError::NothingToRollBack(_) => TsStatus::NothingToRollBack,
            RegistryError::NotServing(_) => TsStatus::NotServing,
            RegistryError::Audit { .. } => TsStatus::Audit,
            // A variant added later: a registry refusal all the same.
            _ => TsStatus::Manifest,
        };
        FfiError::new(status, format!("refused at step {}: {e}", e.step()))
    }
}

impl From<ScoreError> for FfiError {
    fn from(e: ScoreError) -> FfiError {
        let status = match e {
            ScoreError::WidthMismatch { .. } => TsStatus::WidthMismatch,
            ScoreError::OutputMismatch { .. } => TsStatus::OutputMismatch,
            ScoreError::NonFinite { .. } => TsStatus::NonFinite,
            ScoreError::OutOfBounds { .. } => TsStatus::OutOfBounds,
            ScoreError::Engine => TsStatus::Engine,
        };
        FfiError::new(status, e.to_string())
    }
}

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

pub(crate) fn set_last_error(message: String) {
    LAST_ERROR.with(|m| *m.borrow_mut() = message);
}

/// Copy the last error into `buf` (NUL-terminated, truncated to fit) and
/// return its full length in bytes, without the NUL.
///
/// # Safety
/// `buf` must be NULL or writable for `len` bytes.
pub(crate) unsafe fn copy_last_error(buf: *mut c_char, len: usize) -> usize {
    LAST_ERROR.with(|m| {
        let m = m.borrow();
        // SAFETY: forwarded contract.
        unsafe { crate::strings::copy_to_c(&m, buf, len) };
        m.len()
    })
}

impl From<SubmitError> for FfiError {
    fn from(e: SubmitError) -> FfiError {
        let status = match e {
            SubmitError::Busy => TsStatus::Busy,
            SubmitError::ShutDown => TsStatus::ShutDown,
            SubmitError::WidthMismatch { .. } => TsStatus::WidthMismatch,
            // The C ABI has no callback submission; unreachable from C.
            SubmitError::NoCallback => TsStatus::InvalidArgument,
        };
        FfiError::new(status, e.to_string())
    }
}

impl From<RequestError> for FfiError {
    fn from(e: RequestError) -> FfiError {
        match e {
            RequestError::Score(s) => s.into(),
            RequestError::DeadlineExceeded => {
                FfiError::new(TsStatus::DeadlineExceeded, e.to_string())
            }
            RequestError::Panicked => FfiError::new(TsStatus::RequestPanicked, e.to_string()),
        }
    }
}

impl From<UnknownTicket> for FfiError {
    fn from(e: UnknownTicket) -> FfiError {
        FfiError::new(TsStatus::UnknownTicket, e.to_string())
    }
}

impl From<EngineError> for FfiError {
    fn from(e: EngineError) -> FfiError {
        FfiError::new(TsStatus::EngineStart, e.to_string())
    }
}
