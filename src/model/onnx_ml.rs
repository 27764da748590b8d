//! ONNX-ML operators that tract lacks, registered with tract's op registry.
//!
//! Each operator is an [`Expansion`]: it type-checks like any tract op and
//! wires itself into core tract ops (binary ops with constants), so both the
//! tract tier and tickscore's lowering see ordinary graph nodes.

use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;
use tract_onnx::tract_hir::tract_core::ops::math;

/// tract's ONNX framework with tickscore's extra operators registered.
pub fn onnx_framework() -> tract_onnx::Onnx {
    let mut onnx = tract_onnx::onnx();
    onnx.op_register.insert("Scaler", scaler);
    super::trees::register(&mut onnx);
    onnx
}

/// `x` itself if it is f32, else a cast of it to f32.
pub(crate) fn wire_as_f32(
    prefix: &str,
    model: &mut TypedModel,
    x: OutletId,
) -> TractResult<OutletId> {
    if model.outlet_fact(x)?.datum_type == f32::datum_type() {
        return Ok(x);
    }
    let cast = tract_onnx::tract_hir::tract_core::ops::cast::cast(f32::datum_type());
    Ok(model.wire_node(format!("{prefix}.to_f32"), cast, &[x])?[0])
}

/// ONNX-ML `Scaler`: `y = (x - offset) * scale`, per feature (or one value for all).
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct Scaler {
    offset: Arc<Tensor>,
    scale: Arc<Tensor>,
}

fn scaler(
    _ctx: &tract_onnx::model::ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let offset: Vec<f32> = node
        .get_attr_opt_vec("offset")?
        .unwrap_or_else(|| vec![0.0]);
    let scale: Vec<f32> = node.get_attr_opt_vec("scale")?.unwrap_or_else(|| vec![1.0]);
    ensure!(
        !offset.is_empty() && !scale.is_empty(),
        "Scaler: empty offset or scale"
    );
    Ok((
        expand(Scaler {
            offset: tensor1(&offset)
                .into_shape(&[1, offset.len()])?
                .into_arc_tensor(),
            scale: tensor1(&scale)
                .into_shape(&[1, scale.len()])?
                .into_arc_tensor(),
        }),
        vec![],
    ))
}

impl Expansion for Scaler {
    fn name(&self) -> StaticName {
        "Scaler".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, DatumType::F32)?;
        s.equals(&inputs[0].rank, 2)?;
        s.equals(&inputs[0].shape, &outputs[0].shape)?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let fact = model.outlet_fact(inputs[0])?.clone();
        let width = fact.shape.last().and_then(|d| d.to_usize().ok());
        for (what, t) in [("offset", &self.offset), ("scale", &self.scale)] {
            let len = t.len();
            ensure!(
                len == 1 || Some(len) == width,
                "Scaler: {what} has {len} values for {width:?} features"
            );
        }
        let x = wire_as_f32(prefix, model, inputs[0])?;
        let offset = model.add_const(format!("{prefix}.offset"), self.offset.clone())?;
        let scale = model.add_const(format!("{prefix}.scale"), self.scale.clone())?;
        let centred = model.wire_node(format!("{prefix}.sub"), math::sub(), &[x, offset])?[0];
        model.wire_node(format!("{prefix}.mul"), math::mul(), &[centred, scale])
    }
}
