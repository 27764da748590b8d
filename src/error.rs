//! Typed errors: one enum per operation, each variant saying what to do.
//!
//! [`ScoreError`] is returned on the hot path, so it is `Copy`, carries no
//! heap data, and never quotes feature values (they are customer data).
//! [`LoadError`] is returned by the control plane and may carry text, but
//! never text that could contain a caller's input values.

use std::fmt;
use std::path::PathBuf;

/// Why a row could not be scored. Building or returning one never allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ScoreError {
    /// The row has the wrong number of features. Send exactly
    /// [`ModelInfo::input_width`](crate::ModelInfo::input_width) values.
    #[error("input width mismatch: the model takes {expected} features, the row has {got}")]
    WidthMismatch {
        /// Features the model takes.
        expected: usize,
        /// Features the caller sent.
        got: usize,
    },
    /// The output buffer has the wrong length. Pass exactly
    /// [`ModelInfo::score_width`](crate::ModelInfo::score_width) slots per row.
    #[error("output buffer mismatch: the model writes {expected} scores, the buffer holds {got}")]
    OutputMismatch {
        /// Slots the model writes.
        expected: usize,
        /// Slots the caller passed.
        got: usize,
    },
    /// A feature is NaN or infinite and the model's [`InputPolicy`](crate::InputPolicy)
    /// rejects it. Fix or impute the value upstream, or load the model with a
    /// policy that accepts it (only if the model is defined for it).
    #[error("row {row}, feature {column}: {kind} rejected by the input policy")]
    NonFinite {
        /// Row index within the call (0 for a single-row call).
        row: usize,
        /// Feature index (0-based, model order).
        column: usize,
        /// Which non-finite value it was.
        kind: NonFiniteKind,
    },
    /// A feature lies outside the bounds the registry manifest sets for
    /// it (`[[input.bounds]]`). Fix the value upstream; the bounds are part
    /// of the model's signed contract.
    #[error("row {row}, feature {column}: outside the manifest's bounds")]
    OutOfBounds {
        /// Row index within the call (0 for a single-row call).
        row: usize,
        /// Feature index (0-based, model order).
        column: usize,
    },
    /// The execution engine failed on this row. The model is still usable;
    /// report it, since a loaded model should never fail on valid input.
    #[error("the execution engine failed on this row")]
    Engine,
}

/// Which non-finite value a feature held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonFiniteKind {
    /// Not a number.
    NaN,
    /// Positive infinity.
    PosInf,
    /// Negative infinity.
    NegInf,
}

impl fmt::Display for NonFiniteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NonFiniteKind::NaN => "NaN",
            NonFiniteKind::PosInf => "+inf",
            NonFiniteKind::NegInf => "-inf",
        })
    }
}

/// Why a model could not be loaded. Nothing is half-loaded: on error no
/// [`Model`](crate::Model) exists.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read. Check the path and permissions.
    #[error("cannot read model file {path}: {source}")]
    Io {
        /// The path that was opened.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file is larger than [`LoadOptions::max_model_bytes`](crate::LoadOptions::max_model_bytes).
    #[error("model is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// The size of the file.
        size: u64,
        /// The configured limit.
        limit: u64,
    },
    /// The bytes are not a valid ONNX protobuf (garbage, truncated, or empty).
    #[error("not a valid ONNX model: {0}")]
    Malformed(String),
    /// The graph needs an operator that neither tract nor tickscore implements.
    #[error(
        "unsupported operator {op_type:?} (domain {domain:?}, node {node:?}) on the scoring path"
    )]
    UnsupportedOperator {
        /// ONNX `op_type`.
        op_type: String,
        /// ONNX domain (`""` is the default domain).
        domain: String,
        /// Node name in the graph.
        node: String,
    },
    /// The model's input is not one f32 tensor of shape `[batch, features]`.
    #[error("unsupported model input: {0}")]
    UnsupportedInput(String),
    /// The caller expected a different number of features than the model declares.
    #[error("input width mismatch: the model declares {model} features, expected {expected}")]
    InputWidthMismatch {
        /// Width the caller asked for.
        expected: usize,
        /// Width the model declares.
        model: usize,
    },
    /// No output of the model can serve as a score: there must be an f32 tensor
    /// output (a probability tensor, or a single regression/logit column).
    #[error("no usable score output: {0}")]
    NoScoreOutput(String),
    /// A tree ensemble node is malformed (unknown mode, dangling or cyclic
    /// node ids, mismatched attribute lengths, out-of-range feature or class).
    #[error("invalid tree ensemble: {0}")]
    InvalidTreeEnsemble(String),
    /// tract rejected the graph (type or shape analysis, optimisation).
    #[error("model rejected by the importer: {0}")]
    Import(String),
    /// The importer panicked on this file; the panic was contained.
    #[error("the importer panicked on this model file: {0}")]
    ImporterPanicked(String),
}
