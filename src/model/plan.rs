//! The lowered tier: a flat list of fused kernels over one preallocated arena.
//!
//! A [`Plan`] is immutable and shared by every thread; each scorer owns an
//! arena of [`Plan::arena_len`] floats. Running a plan allocates nothing,
//! takes no lock, and dispatches with one `match` per step.
//!
//! Every span is checked against the arena when the plan is built
//! ([`Plan::new`]), and every step writes a span that starts after all the
//! spans it reads, so a step borrows the arena as `(read, write)` halves
//! with `split_at_mut`: no aliasing, no `unsafe`.

use std::sync::Arc;

use super::kernels::{self, BinOp, ElemOp, Isa};
use super::trees::TreeEnsemble;

/// A contiguous range of the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First float.
    pub start: usize,
    /// Number of floats.
    pub len: usize,
}

impl Span {
    /// One past the last float.
    pub fn end(self) -> usize {
        self.start + self.len
    }
}

/// One fused kernel.
#[derive(Debug, Clone)]
pub enum Step {
    /// `y = epilogue(x · W)`, `W` input-major (`x.len` rows of `y.len`).
    Dense {
        /// Input.
        x: Span,
        /// Output.
        y: Span,
        /// Weights, input-major.
        w: Box<[f32]>,
        /// Element-wise steps fused after the product (bias, activation...).
        epilogue: Vec<ElemOp>,
    },
    /// `y = chain(x)`, element-wise; `x` and `y` have the same length.
    Map {
        /// Input.
        x: Span,
        /// Output.
        y: Span,
        /// Steps applied in order.
        chain: Vec<ElemOp>,
    },
    /// `y = a op b` between two computed tensors, with scalar broadcast.
    Binary {
        /// The arithmetic.
        op: BinOp,
        /// Left operand.
        a: Span,
        /// Right operand.
        b: Span,
        /// Output.
        y: Span,
    },
    /// Softmax over all of `x`.
    Softmax {
        /// Input.
        x: Span,
        /// Output.
        y: Span,
    },
    /// Copy the parts one after another into `y`.
    Concat {
        /// Parts in order.
        parts: Vec<Span>,
        /// Output (the parts' lengths add up to it).
        y: Span,
    },
    /// A tree ensemble: `y` gets its scores; `scratch` (directly after `y`)
    /// holds its accumulators.
    Trees {
        /// Input row (at least the features the ensemble reads).
        x: Span,
        /// Scores.
        y: Span,
        /// Accumulators.
        scratch: Span,
        /// The ensemble, shared with tract's tier.
        ensemble: Arc<TreeEnsemble>,
    },
    /// Fill `y` with constants (a graph constant read as a tensor).
    Fill {
        /// Output.
        y: Span,
        /// Values.
        values: Box<[f32]>,
    },
}

impl Step {
    fn output(&self) -> Span {
        match self {
            Step::Dense { y, .. }
            | Step::Map { y, .. }
            | Step::Binary { y, .. }
            | Step::Softmax { y, .. }
            | Step::Concat { y, .. }
            | Step::Trees { y, .. }
            | Step::Fill { y, .. } => *y,
        }
    }

    fn inputs(&self) -> Vec<Span> {
        match self {
            Step::Dense { x, .. }
            | Step::Map { x, .. }
            | Step::Softmax { x, .. }
            | Step::Trees { x, .. } => vec![*x],
            Step::Binary { a, b, .. } => vec![*a, *b],
            Step::Concat { parts, .. } => parts.clone(),
            Step::Fill { .. } => vec![],
        }
    }
}

/// A validated lowered program.
#[derive(Debug, Clone)]
pub struct Plan {
    isa: Isa,
    arena_len: usize,
    input: Span,
    output: Span,
    steps: Vec<Step>,
}

/// Why a list of steps is not a valid plan (a lowering bug, never user input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError(pub String);

impl Plan {
    /// Validate the steps: every span inside the arena, every output after
    /// its inputs, every length consistent with its kernel.
    pub fn new(
        arena_len: usize,
        input: Span,
        output: Span,
        steps: Vec<Step>,
    ) -> Result<Plan, PlanError> {
        let inside = |s: Span| s.end() <= arena_len;
        let bad = |what: String| Err(PlanError(what));
        if !inside(input) || !inside(output) || input.start != 0 {
            return bad(format!(
                "input {input:?} / output {output:?} outside arena {arena_len}"
            ));
        }
        for (i, step) in steps.iter().enumerate() {
            let y = step.output();
            if !inside(y) || y.len == 0 {
                return bad(format!("step {i}: output {y:?} outside arena {arena_len}"));
            }
            for x in step.inputs() {
                if !inside(x) || x.end() > y.start {
                    return bad(format!("step {i}: input {x:?} not before output {y:?}"));
                }
            }
            let const_ok = |chain: &[ElemOp]| {
                chain.iter().all(|op| match op {
                    ElemOp::Unary(_) => true,
                    ElemOp::WithConst { c, .. } => c.len() == 1 || c.len() == y.len,
                })
            };
            let ok = match step {
                Step::Dense { x, w, epilogue, .. } => {
                    x.len * y.len == w.len() && x.len > 0 && const_ok(epilogue)
                }
                Step::Map { x, chain, .. } => x.len == y.len && const_ok(chain),
                Step::Binary { a, b, .. } => {
                    (a.len == y.len || a.len == 1) && (b.len == y.len || b.len == 1)
                }
                Step::Softmax { x, .. } => x.len == y.len,
                Step::Concat { parts, .. } => parts.iter().map(|p| p.len).sum::<usize>() == y.len,
                Step::Fill { values, .. } => values.len() == y.len,
                Step::Trees {
                    x,
                    scratch,
                    ensemble,
                    ..
                } => {
                    x.len >= ensemble.min_input_width()
                        && y.len == ensemble.output_width()
                        && scratch.start == y.end()
                        && scratch.len == ensemble.scratch_len()
                        && scratch.end() <= arena_len
                }
            };
            if !ok {
                return bad(format!("step {i}: inconsistent lengths in {step:?}"));
            }
        }
        Ok(Plan {
            isa: Isa::detect(),
            arena_len,
            input,
            output,
            steps,
        })
    }

    /// When the plan is one tree ensemble reading the input row directly:
    /// the ensemble, and where the plan's output sits within its outputs.
    /// Batches of such plans are scored trees-outer
    /// ([`TreeEnsemble::eval_rows`]) rather than row by row.
    pub fn as_tree_ensemble(&self) -> Option<(&TreeEnsemble, usize)> {
        match self.steps.as_slice() {
            [Step::Trees { x, y, ensemble, .. }]
                if *x == self.input
                    && self.output.start >= y.start
                    && self.output.end() <= y.end() =>
            {
                Some((ensemble, self.output.start - y.start))
            }
            _ => None,
        }
    }

    /// Floats a scorer's arena must hold.
    pub fn arena_len(&self) -> usize {
        self.arena_len
    }

    /// Number of kernels.
    pub fn step_count(&self) -> usize {
        self.steps.len()
    }

    /// The steps, for inspection.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Run on one row: `row.len() == input.len`, `out.len() == output.len`,
    /// `arena.len() == arena_len` (the caller checks; a mismatch is a bug
    /// and panics on a bounds check rather than reading out of bounds).
    #[inline]
    pub fn run(&self, arena: &mut [f32], row: &[f32], out: &mut [f32]) {
        arena[..self.input.len].copy_from_slice(row);
        for step in &self.steps {
            let (read, write) = arena.split_at_mut(step.output().start);
            let at = |s: Span| &read[s.start..s.end()];
            match step {
                Step::Dense { x, y, w, epilogue } => {
                    let y = &mut write[..y.len];
                    kernels::dense(self.isa, at(*x), w, y);
                    epilogue.iter().for_each(|op| op.apply(y));
                }
                Step::Map { x, y, chain } => {
                    let y = &mut write[..y.len];
                    y.copy_from_slice(at(*x));
                    chain.iter().for_each(|op| op.apply(y));
                }
                Step::Binary { op, a, b, y } => {
                    kernels::binary(*op, at(*a), at(*b), &mut write[..y.len]);
                }
                Step::Softmax { x, y } => kernels::softmax(at(*x), &mut write[..y.len]),
                Step::Concat { parts, y } => {
                    let mut at_y = 0;
                    for p in parts {
                        write[at_y..at_y + p.len].copy_from_slice(at(*p));
                        at_y += p.len;
                    }
                    debug_assert_eq!(at_y, y.len);
                }
                Step::Fill { y, values } => write[..y.len].copy_from_slice(values),
                Step::Trees {
                    x,
                    y,
                    scratch,
                    ensemble,
                } => {
                    let (y, rest) = write.split_at_mut(y.len);
                    ensemble.eval_row(at(*x), &mut rest[..scratch.len], y);
                }
            }
        }
        out.copy_from_slice(&arena[self.output.start..self.output.end()]);
    }
}
