//! # tickscore
//!
//! A low-latency embedded inference engine for financial scoring models.
//!
//! ```text
//! model.onnx ──► import (tract-onnx: parse, type-check at batch 1, declutter)
//!                  │
//!                  ├─► lower ──► Plan (fused kernels, one arena) ──► Scorer::score (no alloc, no lock)
//!                  └─► tract optimised plan (fallback tier, parity reference)
//! ```
//!
//! * [`Model`]: a loaded, validated, immutable model shared by threads;
//!   [`Model::tier`] says which engine runs it.
//! * [`Scorer`]: a thread-owned context that scores rows inline into a
//!   caller's buffer (no allocation, no lock).
//! * [`Engine`] ([`runtime`]): worker threads pinned to cores behind a
//!   bounded queue; submit, then poll, wait or get a callback.
//! * [`eval`]: AUC, KS, Gini, precision/recall/F1, Brier, log loss,
//!   calibration, PSI, R²/MAE/MSE.
//! * [`loadgen`], [`telemetry`], [`plot`]: open/closed-loop load generation,
//!   HdrHistogram latency summaries, `.hgrm` and SVG output.
//! * [`input`]: strict CSV reading (by position or by feature name).
//! * [`registry`]: signed, versioned models; publish by atomic swap,
//!   O(1) rollback, audit log; [`VersionedScorer`] and
//!   [`Engine::start_deployment`] follow publications without a pause.
//!
//! The C ABI (`libtickscore`) lives in the `ffi/` crate, a client of this one.
//!
//! ```no_run
//! use tickscore::{LoadOptions, Model};
//! let model = Model::load("models/german_logreg/model.onnx", &LoadOptions::default())?;
//! let mut scorer = model.scorer()?;
//! let row = vec![0f32; model.info().input_width];
//! let mut p_bad = [0f32];
//! scorer.score(&row, &mut p_bad)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

pub mod error;
pub mod eval;
pub mod input;
pub mod loadgen;
pub mod model;
pub mod plot;
pub mod registry;
pub mod runtime;
pub mod scorer;
pub mod telemetry;

pub use error::{LoadError, NonFiniteKind, ScoreError};
pub use model::{InputPolicy, LoadOptions, Model, ModelInfo, NonFinitePolicy, Tier, TierChoice};
pub use registry::{
    Deployment, ModelVersion, Registry, RegistryError, RegistryOptions, VersionedScorer,
};
pub use runtime::{
    Completion, CompletionCallback, Engine, EngineConfig, IdleStrategy, Producer, RequestError,
    StageTimes, SubmitError, Ticket, TicketId,
};
pub use scorer::Scorer;
