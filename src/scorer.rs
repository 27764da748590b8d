//! Inline scoring on the caller's thread.
//!
//! A [`Scorer`] is owned by one thread (it is `Send`, not `Sync`): it holds
//! the arena of a lowered plan, or a tract state, so scoring needs no lock.
//! On the lowered tier, [`Scorer::score`] allocates nothing once the scorer
//! exists (proven by `tests/zero_alloc.rs`). Outputs are written only when
//! the call succeeds.

use std::panic::{catch_unwind, AssertUnwindSafe};

use tract_onnx::prelude::*;

use crate::error::{LoadError, NonFiniteKind, ScoreError};
use crate::model::{Model, NonFinitePolicy};

/// Rows a tree-ensemble batch is scored in at a time (bounds the scratch).
const TREE_BATCH: usize = 64;

/// Accumulators and outputs for `TREE_BATCH` rows of a tree ensemble.
struct TreeBatch {
    scratch: Box<[f32]>,
    outputs: Box<[f32]>,
}

enum Engine {
    Lowered {
        arena: Box<[f32]>,
        /// For tree-ensemble plans, so batches need no allocation either.
        tree_batch: Option<TreeBatch>,
    },
    Tract {
        state: TypedSimpleState,
    },
}

/// A thread-owned scoring context for one [`Model`].
pub struct Scorer {
    model: Model,
    engine: Engine,
}

impl std::fmt::Debug for Scorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scorer")
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl Scorer {
    pub(crate) fn new(model: Model) -> Result<Scorer, LoadError> {
        let engine = match &model.inner.plan {
            Some(plan) => Engine::Lowered {
                arena: vec![0f32; plan.arena_len()].into_boxed_slice(),
                tree_batch: plan.as_tree_ensemble().map(|(trees, _)| {
                    let scratch = vec![0f32; TREE_BATCH * trees.scratch_len()];
                    let outputs = vec![0f32; TREE_BATCH * trees.output_width()];
                    TreeBatch {
                        scratch: scratch.into_boxed_slice(),
                        outputs: outputs.into_boxed_slice(),
                    }
                }),
            },
            None => Engine::Tract {
                state: TypedSimpleState::new(&model.inner.tract_plan).map_err(|e| {
                    LoadError::Import(format!("cannot create a tract state: {e:#}"))
                })?,
            },
        };
        let mut scorer = Scorer { model, engine };
        let info = scorer.model.info();
        let (zeros, mut out) = (vec![0f32; info.input_width], vec![0f32; info.score_width]);
        scorer
            .run_row(&zeros, &mut out)
            .map_err(|e| LoadError::Import(format!("warm-up row failed: {e}")))?;
        Ok(scorer)
    }

    /// The model this scorer runs.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Score one row into `out` (`score_width` slots). Validates width and
    /// non-finite values first; on error `out` is untouched.
    #[inline]
    pub fn score(&mut self, row: &[f32], out: &mut [f32]) -> Result<(), ScoreError> {
        let info = self.model.info();
        if row.len() != info.input_width {
            return Err(ScoreError::WidthMismatch {
                expected: info.input_width,
                got: row.len(),
            });
        }
        if out.len() != info.score_width {
            return Err(ScoreError::OutputMismatch {
                expected: info.score_width,
                got: out.len(),
            });
        }
        self.validate(row, 0)?;
        self.run_row(row, out)
    }

    /// Score `rows.len() / input_width` rows stored back to back into `out`
    /// (`score_width` slots per row). Every row is validated before any is
    /// scored, so on error `out` is untouched and the error names the row.
    pub fn score_batch(&mut self, rows: &[f32], out: &mut [f32]) -> Result<(), ScoreError> {
        let (w, s) = (self.model.info().input_width, self.model.info().score_width);
        if rows.len() % w != 0 {
            return Err(ScoreError::WidthMismatch {
                expected: w,
                got: rows.len() % w,
            });
        }
        let n = rows.len() / w;
        if out.len() != n * s {
            return Err(ScoreError::OutputMismatch {
                expected: n * s,
                got: out.len(),
            });
        }
        for (i, row) in rows.chunks_exact(w).enumerate() {
            self.validate(row, i)?;
        }
        if let (
            Engine::Lowered {
                tree_batch: Some(TreeBatch { scratch, outputs }),
                ..
            },
            Some(plan),
        ) = (&mut self.engine, &self.model.inner.plan)
        {
            if let Some((trees, offset)) = plan.as_tree_ensemble() {
                let k = trees.output_width();
                for (chunk, o) in rows
                    .chunks(TREE_BATCH * w)
                    .zip(out.chunks_mut(TREE_BATCH * s))
                {
                    let n = chunk.len() / w;
                    let tree_out = &mut outputs[..n * k];
                    trees.eval_rows(chunk, w, &mut scratch[..n * trees.scratch_len()], tree_out);
                    for (dst, src) in o.chunks_exact_mut(s).zip(tree_out.chunks_exact(k)) {
                        dst.copy_from_slice(&src[offset..offset + s]);
                    }
                }
                return Ok(());
            }
        }
        for (row, o) in rows.chunks_exact(w).zip(out.chunks_exact_mut(s)) {
            self.run_row(row, o)?;
        }
        Ok(())
    }

    #[inline]
    fn validate(&self, row: &[f32], row_ix: usize) -> Result<(), ScoreError> {
        let policy = self.model.input_policy();
        if policy.nan == NonFinitePolicy::Pass && policy.infinite == NonFinitePolicy::Pass {
            return Ok(());
        }
        // One cheap pass in the common case; the slow path names the value.
        if row.iter().all(|v| v.is_finite()) {
            return Ok(());
        }
        for (column, v) in row.iter().enumerate() {
            let kind = if v.is_nan() {
                (policy.nan == NonFinitePolicy::Reject).then_some(NonFiniteKind::NaN)
            } else if v.is_infinite() {
                let kind = if *v > 0.0 {
                    NonFiniteKind::PosInf
                } else {
                    NonFiniteKind::NegInf
                };
                (policy.infinite == NonFinitePolicy::Reject).then_some(kind)
            } else {
                None
            };
            if let Some(kind) = kind {
                return Err(ScoreError::NonFinite {
                    row: row_ix,
                    column,
                    kind,
                });
            }
        }
        Ok(())
    }

    /// Run one validated row.
    #[inline]
    fn run_row(&mut self, row: &[f32], out: &mut [f32]) -> Result<(), ScoreError> {
        match &mut self.engine {
            Engine::Lowered { arena, .. } => {
                if let Some(plan) = &self.model.inner.plan {
                    plan.run(arena, row, out);
                    Ok(())
                } else {
                    Err(ScoreError::Engine)
                }
            }
            Engine::Tract { state } => {
                let w = row.len();
                let result = catch_unwind(AssertUnwindSafe(|| -> TractResult<()> {
                    let input = Tensor::from_shape(&[1, w], row)?;
                    let outputs = state.run(tvec![input.into()])?;
                    out.copy_from_slice(outputs[0].try_as_plain_ram()?.as_slice::<f32>()?);
                    Ok(())
                }));
                match result {
                    Ok(Ok(())) => Ok(()),
                    // tract's messages can quote input values (customer data):
                    // they are not passed on.
                    Ok(Err(_)) => Err(ScoreError::Engine),
                    Err(_) => {
                        // A panic may leave the state inconsistent: start afresh.
                        if let Ok(fresh) = TypedSimpleState::new(&self.model.inner.tract_plan) {
                            *state = fresh;
                        }
                        Err(ScoreError::Engine)
                    }
                }
            }
        }
    }
}
