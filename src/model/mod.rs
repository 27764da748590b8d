//! Models: load (verify size, import with tract, lower, probe parity) and
//! the shared, immutable [`Model`] every scorer runs.
//!
//! Loading is control-plane work and may allocate and take time; a loaded
//! [`Model`] is immutable, cheap to clone and shared across threads.

pub mod import;
pub mod kernels;
pub mod lower;
pub mod onnx_ml;
pub mod plan;
pub mod trees;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use tract_onnx::prelude::*;

use crate::error::LoadError;
use crate::scorer::Scorer;
use plan::Plan;

/// What to do with NaN and infinite feature values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NonFinitePolicy {
    /// Refuse the row with [`ScoreError::NonFinite`](crate::ScoreError::NonFinite) (default).
    /// Neural and linear models return plausible-looking scores for NaN
    /// (ReLU turns NaN into 0), so NaN must never reach them silently.
    #[default]
    Reject,
    /// Pass the value to the model (for models defined for it, such as tree
    /// ensembles that route NaN as "missing").
    Pass,
}

/// Per-model input validation, applied to every row before the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InputPolicy {
    /// NaN features.
    pub nan: NonFinitePolicy,
    /// ±infinite features.
    pub infinite: NonFinitePolicy,
}

/// Which execution tier to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TierChoice {
    /// The lowered plan if the model lowers and passes the parity probe,
    /// tract otherwise (default).
    #[default]
    Auto,
    /// Always tract's own plan (for comparisons and diagnosis).
    Tract,
}

/// Options for [`Model::load`].
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Refuse files larger than this (default 256 MiB).
    pub max_model_bytes: u64,
    /// Refuse a model whose input width differs (default: accept any).
    pub expect_width: Option<usize>,
    /// Input validation.
    pub input_policy: InputPolicy,
    /// Execution tier.
    pub tier: TierChoice,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            max_model_bytes: 256 << 20,
            expect_width: None,
            input_policy: InputPolicy::default(),
            tier: TierChoice::Auto,
        }
    }
}

/// Which engine runs a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tier {
    /// tickscore's lowered plan: no allocation, no lock per call.
    Lowered {
        /// Number of fused kernels.
        steps: usize,
    },
    /// tract's optimised plan with a reused state (allocates per call).
    Tract {
        /// Why the model is not lowered.
        reason: String,
    },
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tier::Lowered { steps } => write!(f, "lowered ({steps} fused kernels)"),
            Tier::Tract { reason } => write!(f, "tract ({reason})"),
        }
    }
}

/// What a caller needs to know to feed a model and read its scores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// Features per row.
    pub input_width: usize,
    /// Scores per row (1 for a binary classifier: P(class 1)).
    pub score_width: usize,
    /// Feature names in model order, when the model's metadata lists them
    /// (`tickscore.feature_names`, newline-separated).
    pub feature_names: Option<Vec<String>>,
    /// The ONNX output the score comes from.
    pub score_output: String,
    /// Whether the score is column 1 (positive class) of a probability pair.
    pub positive_class_column: bool,
    /// The model file's ONNX `model_version` field (0 if unset). Registry
    /// versions will come with the registry.
    pub model_version: i64,
}

pub(crate) struct ModelInner {
    pub info: ModelInfo,
    pub tier: Tier,
    pub policy: InputPolicy,
    /// Present when `tier` is `Lowered`.
    pub plan: Option<Plan>,
    pub tract_plan: Arc<TypedSimplePlan>,
}

/// A loaded, validated model. Immutable; clone it to share (an `Arc` inside).
#[derive(Clone)]
pub struct Model {
    pub(crate) inner: Arc<ModelInner>,
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model")
            .field("info", &self.inner.info)
            .field("tier", &self.inner.tier)
            .finish()
    }
}

/// Rows used to check the lowered plan against tract at load time.
const PROBE_ROWS: usize = 16;
/// Largest difference allowed between the tiers on the probe.
const PROBE_TOLERANCE: f32 = 1e-5;

impl Model {
    /// Read, check and import the model file at `path`.
    pub fn load(path: impl AsRef<Path>, options: &LoadOptions) -> Result<Model, LoadError> {
        let path = path.as_ref();
        let io = |source| LoadError::Io {
            path: path.to_owned(),
            source,
        };
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size > options.max_model_bytes {
            return Err(LoadError::TooLarge {
                size,
                limit: options.max_model_bytes,
            });
        }
        let bytes = std::fs::read(path).map_err(io)?;
        Model::from_bytes(&bytes, options)
    }

    /// Import a model from its bytes (what is checked is what runs).
    pub fn from_bytes(bytes: &[u8], options: &LoadOptions) -> Result<Model, LoadError> {
        let size = bytes.len() as u64;
        if size > options.max_model_bytes {
            return Err(LoadError::TooLarge {
                size,
                limit: options.max_model_bytes,
            });
        }
        let imported = import::import(bytes, options.expect_width)?;
        let info = ModelInfo {
            input_width: imported.input_width,
            score_width: imported.score_width,
            feature_names: imported.feature_names,
            score_output: imported.score_output,
            positive_class_column: imported.positive_class_column,
            model_version: imported.model_version,
        };
        let (tier, plan) = match options.tier {
            TierChoice::Tract => (
                Tier::Tract {
                    reason: "tract tier requested".into(),
                },
                None,
            ),
            TierChoice::Auto => match lower::lower(&imported.decluttered) {
                Err(reason) => (Tier::Tract { reason }, None),
                Ok(plan) => match probe_parity(&plan, &imported.tract_plan, &info) {
                    Ok(()) => (
                        Tier::Lowered {
                            steps: plan.step_count(),
                        },
                        Some(plan),
                    ),
                    Err(reason) => (Tier::Tract { reason }, None),
                },
            },
        };
        let model = Model {
            inner: Arc::new(ModelInner {
                info,
                tier,
                policy: options.input_policy,
                plan,
                tract_plan: imported.tract_plan,
            }),
        };
        // Building a scorer warms the engine and proves a state can be made.
        model.scorer()?;
        Ok(model)
    }

    /// Input and output layout.
    pub fn info(&self) -> &ModelInfo {
        &self.inner.info
    }

    /// Which engine runs this model, and why.
    pub fn tier(&self) -> &Tier {
        &self.inner.tier
    }

    /// The input validation applied to every row.
    pub fn input_policy(&self) -> InputPolicy {
        self.inner.policy
    }

    /// A new scorer for the calling thread (allocates its arena or tract
    /// state now, and runs one warm-up row, so scoring does not).
    pub fn scorer(&self) -> Result<Scorer, LoadError> {
        Scorer::new(self.clone())
    }
}

/// Deterministic probe rows: zeros, then values spread over several scales.
fn probe_rows(width: usize) -> Vec<f32> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rows = vec![0f32; width * PROBE_ROWS];
    for (i, v) in rows.iter_mut().enumerate().skip(width) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let unit = (state >> 40) as f32 / (1u64 << 24) as f32; // [0, 1)
        let scale = [1.0, 4.0, 100.0, 5000.0][(i / width) % 4];
        *v = (unit * 2.0 - 1.0) * scale;
    }
    rows
}

/// Compare the lowered plan with tract on the probe rows.
fn probe_parity(
    plan: &Plan,
    tract_plan: &Arc<TypedSimplePlan>,
    info: &ModelInfo,
) -> Result<(), String> {
    let (w, s) = (info.input_width, info.score_width);
    let rows = probe_rows(w);
    let mut arena = vec![0f32; plan.arena_len()];
    let mut state = TypedSimpleState::new(tract_plan).map_err(|e| format!("tract state: {e}"))?;
    let mut lowered = vec![0f32; s];
    for row in rows.chunks_exact(w) {
        plan.run(&mut arena, row, &mut lowered);
        let input = Tensor::from_shape(&[1, w], row).map_err(|e| e.to_string())?;
        let out = state
            .run(tvec![input.into()])
            .map_err(|e| format!("tract failed on the probe: {e}"))?;
        let view = out[0].try_as_plain_ram().map_err(|e| e.to_string())?;
        let reference = view.as_slice::<f32>().map_err(|e| e.to_string())?;
        for (a, b) in lowered.iter().zip(reference) {
            let same_nan = a.is_nan() && b.is_nan();
            if !same_nan && (a - b).abs() > PROBE_TOLERANCE * (1.0 + b.abs()) {
                return Err(format!(
                    "lowered plan disagrees with tract on the parity probe ({a} vs {b})"
                ));
            }
        }
    }
    Ok(())
}
