//! Lowering: tract's decluttered typed graph (batch 1) → a tickscore [`Plan`].
//!
//! The lowering knows the core ops that MLP, linear and logistic exports
//! declutter to: matrix products with a constant (`EinSum`), binary
//! arithmetic, element-wise functions, softmax, concat, slices, reshapes and
//! no-op casts. It fuses every element-wise step into the step that produced
//! its input (bias, activation, Scaler's subtract-then-multiply), and turns
//! reshapes and leading-axis slices into aliases of an arena span. Anything
//! else returns an error naming the node, and the model runs on tract's plan.
//!
//! Runs once per model load; never on the hot path.

use std::collections::HashMap;

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::DimLike;
use tract_onnx::tract_hir::tract_core::ops::array::{Slice, TypedConcat};
use tract_onnx::tract_hir::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_hir::tract_core::ops::cast::Cast;
use tract_onnx::tract_hir::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_hir::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_hir::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_hir::tract_core::ops::konst::Const;
use tract_onnx::tract_hir::tract_core::ops::nn::{Softmax, SoftmaxKind};
use tract_onnx::tract_hir::tract_core::ops::source::TypedSource;

use super::kernels::{BinOp, ElemOp, UnaryOp};
use super::plan::{Plan, Span, Step};
use super::trees::TreeEnsembleOp;

/// A value flowing along an edge of the graph.
#[derive(Clone)]
enum Value {
    /// Computed at run time, living in the arena.
    Tensor {
        span: Span,
        shape: Vec<usize>,
        /// The step that writes this span and can absorb element-wise work,
        /// if nothing else reads its output.
        open_step: Option<usize>,
    },
    /// Known at load time.
    Const { data: Box<[f32]>, shape: Vec<usize> },
}

impl Value {
    fn numel(&self) -> usize {
        match self {
            Value::Tensor { span, .. } => span.len,
            Value::Const { data, .. } => data.len(),
        }
    }
    fn shape(&self) -> &[usize] {
        match self {
            Value::Tensor { shape, .. } | Value::Const { shape, .. } => shape,
        }
    }
}

struct Lowering<'m> {
    model: &'m TypedModel,
    values: HashMap<OutletId, Value>,
    steps: Vec<Step>,
    arena_len: usize,
}

/// Lower `model` (decluttered, batch 1, one input, one output) to a plan,
/// or say which node prevents it.
pub fn lower(model: &TypedModel) -> Result<Plan, String> {
    let mut l = Lowering {
        model,
        values: HashMap::new(),
        steps: Vec::new(),
        arena_len: 0,
    };
    let inputs = model.input_outlets().map_err(|e| e.to_string())?;
    let outputs = model.output_outlets().map_err(|e| e.to_string())?;
    if inputs.len() != 1 || outputs.len() != 1 {
        return Err("the lowering handles one input and one output".into());
    }
    let order = model.eval_order().map_err(|e| e.to_string())?;
    for id in order {
        let node = model.node(id);
        l.lower_node(node)
            .map_err(|why| format!("node {:?} ({}): {why}", node.name, node.op.name()))?;
    }
    let input_span = match l.values.get(&inputs[0]) {
        Some(Value::Tensor { span, .. }) => *span,
        _ => return Err("the input is not a tensor".into()),
    };
    let output = match l.values.get(&outputs[0]).cloned() {
        Some(Value::Tensor { span, .. }) => span,
        Some(Value::Const { data, .. }) => l.fill(data),
        None => return Err("the output was not computed".into()),
    };
    Plan::new(l.arena_len, input_span, output, l.steps).map_err(|e| e.0)
}

impl Lowering<'_> {
    fn alloc(&mut self, len: usize) -> Span {
        let span = Span {
            start: self.arena_len,
            len,
        };
        self.arena_len += len;
        span
    }

    fn fill(&mut self, values: Box<[f32]>) -> Span {
        let y = self.alloc(values.len());
        self.steps.push(Step::Fill { y, values });
        y
    }

    fn input(&self, node: &TypedNode, ix: usize) -> Result<Value, String> {
        let outlet = node.inputs.get(ix).ok_or("missing input")?;
        self.values
            .get(outlet)
            .cloned()
            .ok_or_else(|| "input not lowered".into())
    }

    /// A tensor's span (constants are materialised with a fill step).
    fn span_of(&mut self, v: Value) -> Span {
        match v {
            Value::Tensor { span, .. } => span,
            Value::Const { data, .. } => self.fill(data),
        }
    }

    fn output_shape(&self, node: &TypedNode) -> Result<Vec<usize>, String> {
        let fact = &node.outputs.first().ok_or("no output")?.fact;
        if fact.datum_type != f32::datum_type() {
            return Err(format!("output type {:?} is not f32", fact.datum_type));
        }
        fact.shape
            .iter()
            .map(|d| d.to_usize().map_err(|_| format!("symbolic dimension {d}")))
            .collect()
    }

    /// Whether the node's single output may be fused into by its consumer.
    fn is_private(&self, node: &TypedNode) -> bool {
        let outlet = OutletId::new(node.id, 0);
        let is_output = self
            .model
            .output_outlets()
            .is_ok_and(|o| o.contains(&outlet));
        !is_output && self.model.outlet_successors(outlet).len() == 1
    }

    fn set(&mut self, node: &TypedNode, v: Value) {
        self.values.insert(OutletId::new(node.id, 0), v);
    }

    /// The node's output is the tensor at `span`, closed to fusion.
    fn bind(&mut self, node: &TypedNode, span: Span, shape: Vec<usize>) {
        self.set(
            node,
            Value::Tensor {
                span,
                shape,
                open_step: None,
            },
        );
    }

    /// Append an element-wise op after `x`, fusing into x's producer when possible.
    fn elementwise(&mut self, node: &TypedNode, x: Value, op: ElemOp) -> Result<(), String> {
        let shape = self.output_shape(node)?;
        let Value::Tensor {
            span, open_step, ..
        } = x
        else {
            return Err("element-wise op on a constant (not folded)".into());
        };
        if shape.iter().product::<usize>() != span.len {
            return Err("element-wise op changes the element count".into());
        }
        let private = self.is_private(node);
        let fused = match open_step.and_then(|i| self.steps.get_mut(i)) {
            Some(Step::Dense {
                epilogue: chain, ..
            })
            | Some(Step::Map { chain, .. }) => {
                chain.push(op.clone());
                true
            }
            _ => false,
        };
        let (span, step) = if fused {
            (span, open_step)
        } else {
            let y = self.alloc(span.len);
            self.steps.push(Step::Map {
                x: span,
                y,
                chain: vec![op],
            });
            (y, Some(self.steps.len() - 1))
        };
        let open_step = if private { step } else { None };
        self.set(
            node,
            Value::Tensor {
                span,
                shape,
                open_step,
            },
        );
        Ok(())
    }

    fn lower_node(&mut self, node: &TypedNode) -> Result<(), String> {
        let op = node.op.as_op();
        if op.downcast_ref::<TypedSource>().is_some() {
            let shape = self.output_shape(node)?;
            let span = self.alloc(shape.iter().product());
            self.bind(node, span, shape);
        } else if let Some(c) = op.downcast_ref::<Const>() {
            let t = c.val();
            let shape = t.shape().to_vec();
            // Non-f32 constants (shapes, indices) are only legal if no f32 op reads them.
            if let Ok(data) = t.try_as_plain_ram().and_then(|v| v.as_slice::<f32>()) {
                let data = data.into();
                self.set(node, Value::Const { data, shape });
            }
        } else if let Some(bin) = op.downcast_ref::<TypedBinOp>() {
            self.binary(node, bin)?;
        } else if let Some(ew) = op.downcast_ref::<ElementWiseOp>() {
            let name = ew.0.name();
            let f = UnaryOp::from_tract_name(&name).ok_or(format!("no kernel for {name}"))?;
            let x = self.input(node, 0)?;
            self.elementwise(node, x, ElemOp::Unary(f))?;
        } else if let Some(ein) = op.downcast_ref::<EinSum>() {
            self.einsum(node, ein)?;
        } else if let Some(axis_op) = op.downcast_ref::<AxisOp>() {
            let x = self.input(node, 0)?;
            let moves_data = matches!(axis_op, AxisOp::Move(..))
                && x.shape().iter().filter(|&&d| d > 1).count() > 1;
            if moves_data {
                return Err("transposition of a matrix".into());
            }
            self.alias(node, x)?;
        } else if let Some(cast) = op.downcast_ref::<Cast>() {
            if cast.to != f32::datum_type() {
                return Err(format!("cast to {:?}", cast.to));
            }
            let x = self.input(node, 0)?;
            self.alias(node, x)?;
        } else if let Some(slice) = op.downcast_ref::<Slice>() {
            self.slice(node, slice)?;
        } else if let Some(concat) = op.downcast_ref::<TypedConcat>() {
            self.concat(node, concat)?;
        } else if let Some(trees) = op.downcast_ref::<TreeEnsembleOp>() {
            if trees.labels {
                return Err("tree ensemble labels (only scores are lowered)".into());
            }
            let x = self.input(node, 0)?;
            let x = self.span_of(x);
            let shape = self.output_shape(node)?;
            let y = self.alloc(trees.ensemble.output_width());
            let scratch = self.alloc(trees.ensemble.scratch_len());
            self.steps.push(Step::Trees {
                x,
                y,
                scratch,
                ensemble: trees.ensemble.clone(),
            });
            self.bind(node, y, shape);
        } else if let Some(sm) = op.downcast_ref::<Softmax>() {
            let x = self.input(node, 0)?;
            let shape = self.output_shape(node)?;
            let whole = sm.axes.len() == 1
                && shape.get(sm.axes[0]).copied() == Some(shape.iter().product());
            if sm.kind != SoftmaxKind::Softmax || sm.quant_output_dt.is_some() || !whole {
                return Err("softmax other than over the only non-unit axis".into());
            }
            let x = self.span_of(x);
            let y = self.alloc(x.len);
            self.steps.push(Step::Softmax { x, y });
            self.bind(node, y, shape);
        } else {
            return Err("no lowered kernel for this operator".into());
        }
        Ok(())
    }

    /// Same data, new shape.
    fn alias(&mut self, node: &TypedNode, x: Value) -> Result<(), String> {
        let shape = self.output_shape(node)?;
        if shape.iter().product::<usize>() != x.numel() {
            return Err("reshape changes the element count".into());
        }
        let private = self.is_private(node);
        let v = match x {
            Value::Tensor {
                span, open_step, ..
            } => Value::Tensor {
                span,
                shape,
                open_step: if private { open_step } else { None },
            },
            Value::Const { data, .. } => Value::Const { data, shape },
        };
        self.set(node, v);
        Ok(())
    }

    fn binary(&mut self, node: &TypedNode, bin: &TypedBinOp) -> Result<(), String> {
        let name = bin.0.name();
        let op = BinOp::from_tract_name(name).ok_or(format!("no kernel for binary {name}"))?;
        let (a, b) = (self.input(node, 0)?, self.input(node, 1)?);
        let shape = self.output_shape(node)?;
        let n: usize = shape.iter().product();
        // Batch 1: operands are flat vectors; only "same shape" and "one
        // value" broadcasts keep flat indexing valid.
        for v in [&a, &b] {
            if v.numel() != 1 && v.shape() != shape.as_slice() {
                return Err(format!("broadcast {:?} to {shape:?}", v.shape()));
            }
        }
        match (a, b) {
            (x @ Value::Tensor { .. }, Value::Const { data, .. }) => self.elementwise(
                node,
                x,
                ElemOp::WithConst {
                    op,
                    c: data,
                    const_left: false,
                },
            ),
            (Value::Const { data, .. }, x @ Value::Tensor { .. }) => self.elementwise(
                node,
                x,
                ElemOp::WithConst {
                    op,
                    c: data,
                    const_left: true,
                },
            ),
            (a, b) => {
                let (a, b) = (self.span_of(a), self.span_of(b));
                let y = self.alloc(n);
                self.steps.push(Step::Binary { op, a, b, y });
                self.bind(node, y, shape);
                Ok(())
            }
        }
    }

    /// A product of the tensor with a constant matrix or vector.
    fn einsum(&mut self, node: &TypedNode, ein: &EinSum) -> Result<(), String> {
        if ein.q_params.is_some() || node.inputs.len() != 2 {
            return Err("quantized or n-ary einsum".into());
        }
        let (a, b) = (self.input(node, 0)?, self.input(node, 1)?);
        let (t_ix, x, c_data, c_shape) = match (a, b) {
            (x @ Value::Tensor { .. }, Value::Const { data, shape }) => (0, x, data, shape),
            (Value::Const { data, shape }, x @ Value::Tensor { .. }) => (1, x, data, shape),
            _ => return Err("product of two computed tensors".into()),
        };
        let c_ix = 1 - t_ix;
        let out_shape = self.output_shape(node)?;
        let x_shape = x.shape().to_vec();
        let (mut k_axis, mut n_axis) = (None, None);
        for axis in ein.axes.iter_all_axes() {
            let (in_t, in_c, out) = (&axis.inputs[t_ix], &axis.inputs[c_ix], &axis.outputs[0]);
            if in_t.len() > 1 || in_c.len() > 1 || out.len() > 1 {
                return Err("repeated axis".into());
            }
            let size = if let Some(&p) = in_t.first() {
                x_shape[p]
            } else if let Some(&p) = in_c.first() {
                c_shape[p]
            } else {
                out.first().map(|&p| out_shape[p]).unwrap_or(1)
            };
            if size == 1 {
                continue;
            }
            match (in_t.first(), in_c.first(), out.is_empty()) {
                (Some(_), Some(&pc), true) if k_axis.is_none() => k_axis = Some((pc, size)),
                (None, Some(&pc), false) if n_axis.is_none() => n_axis = Some((pc, size)),
                _ => {
                    return Err(format!(
                        "axis {} is not a matrix-vector product axis",
                        axis.repr
                    ))
                }
            }
        }
        let (k_pos, k) = k_axis.ok_or("no contracted axis")?;
        let (n_pos, n) = n_axis.map_or((None, 1), |(p, s)| (Some(p), s));
        if x.numel() != k || out_shape.iter().product::<usize>() != n || c_data.len() != k * n {
            return Err("operand sizes do not match a matrix-vector product".into());
        }
        // Row-major strides of the constant; its other axes all have size 1.
        let stride = |pos: usize| c_shape[pos + 1..].iter().product::<usize>();
        let (k_stride, n_stride) = (stride(k_pos), n_pos.map_or(0, stride));
        let mut w = vec![0f32; k * n];
        for kk in 0..k {
            for j in 0..n {
                w[kk * n + j] = c_data[kk * k_stride + j * n_stride];
            }
        }
        let Value::Tensor { span: x_span, .. } = x else {
            return Err("unreachable: x is a tensor".into());
        };
        let y = self.alloc(n);
        self.steps.push(Step::Dense {
            x: x_span,
            y,
            w: w.into(),
            epilogue: Vec::new(),
        });
        let open_step = self.is_private(node).then_some(self.steps.len() - 1);
        self.set(
            node,
            Value::Tensor {
                span: y,
                shape: out_shape,
                open_step,
            },
        );
        Ok(())
    }

    /// A slice along an axis preceded only by unit axes is a contiguous sub-span.
    fn slice(&mut self, node: &TypedNode, slice: &Slice) -> Result<(), String> {
        let x = self.input(node, 0)?;
        let shape = self.output_shape(node)?;
        let dims = x.shape().to_vec();
        let (start, end) = match (slice.start.to_usize(), slice.end.to_usize()) {
            (Ok(s), Ok(e)) if s <= e && e <= *dims.get(slice.axis).unwrap_or(&0) => (s, e),
            _ => return Err("symbolic or out-of-range slice".into()),
        };
        if dims[..slice.axis].iter().any(|&d| d != 1) {
            return Err("slice of an inner axis".into());
        }
        let inner: usize = dims[slice.axis + 1..].iter().product();
        let v = match x {
            Value::Tensor { span, .. } => Value::Tensor {
                span: Span {
                    start: span.start + start * inner,
                    len: (end - start) * inner,
                },
                shape,
                open_step: None,
            },
            Value::Const { data, .. } => Value::Const {
                data: data[start * inner..end * inner].into(),
                shape,
            },
        };
        self.set(node, v);
        Ok(())
    }

    fn concat(&mut self, node: &TypedNode, concat: &TypedConcat) -> Result<(), String> {
        let shape = self.output_shape(node)?;
        if shape[..concat.axis].iter().any(|&d| d != 1) {
            return Err("concat along an inner axis".into());
        }
        let mut parts = Vec::with_capacity(node.inputs.len());
        for ix in 0..node.inputs.len() {
            let v = self.input(node, ix)?;
            parts.push(self.span_of(v));
        }
        let y = self.alloc(shape.iter().product());
        self.steps.push(Step::Concat { parts, y });
        self.bind(node, y, shape);
        Ok(())
    }
}
