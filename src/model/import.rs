//! Import: ONNX bytes → checked protobuf → tract typed graph at batch 1.
//!
//! The bytes are parsed once, from memory, so what was checked is what runs.
//! Structural checks (one f32 `[batch, features]` input, a usable score
//! output, every operator on the scoring path known) happen on the protobuf
//! before tract builds anything, so their errors are precise and typed.
//! Everything here runs on the control plane, never on the hot path.

use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};

use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::DimLike;
use tract_onnx::tract_hir::tract_core::ops::array::Slice;

use super::onnx_ml::onnx_framework;
use super::trees::TreeError;
use crate::error::LoadError;

/// ONNX `TensorProto.DataType.FLOAT`.
const ONNX_FLOAT: i32 = 1;

/// Metadata key (in the model's `metadata_props`) listing feature names.
pub const FEATURE_NAMES_KEY: &str = "tickscore.feature_names";

/// A model imported by tract, fixed at batch 1, reduced to its score output.
pub(crate) struct Imported {
    /// Decluttered typed graph: recognisable core ops, the lowering's input.
    pub decluttered: TypedModel,
    /// tract's optimised plan of the same graph: the fallback tier and the
    /// parity reference.
    pub tract_plan: Arc<TypedSimplePlan>,
    /// Number of input features.
    pub input_width: usize,
    /// Number of scores per row.
    pub score_width: usize,
    /// Feature names from the model's metadata, if it has them.
    pub feature_names: Option<Vec<String>>,
    /// Name of the ONNX output the score is taken from.
    pub score_output: String,
    /// Whether the score is column 1 of a two-column probability output.
    pub positive_class_column: bool,
    /// The file's ONNX `model_version` field (0 if unset).
    pub model_version: i64,
}

/// Import `bytes`, containing any panic the parser or tract raises.
pub(crate) fn import(bytes: &[u8], expect_width: Option<usize>) -> Result<Imported, LoadError> {
    match catch_unwind(AssertUnwindSafe(|| import_unguarded(bytes, expect_width))) {
        Ok(result) => result,
        Err(payload) => Err(LoadError::ImporterPanicked(panic_message(&*payload))),
    }
}

/// The text of a panic payload, for reporting.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

fn import_unguarded(bytes: &[u8], expect_width: Option<usize>) -> Result<Imported, LoadError> {
    let onnx = onnx_framework();
    let proto = onnx
        .proto_model_for_read(&mut &*bytes)
        .map_err(|e| LoadError::Malformed(format!("{e:#}")))?;
    let graph = proto
        .graph
        .as_ref()
        .ok_or_else(|| LoadError::Malformed("the model has no graph".into()))?;
    if graph.node.is_empty() {
        return Err(LoadError::Malformed("the graph has no nodes".into()));
    }

    check_names(graph)?;
    let input_width = check_input(graph)?;
    if let Some(expected) = expect_width {
        if expected != input_width {
            return Err(LoadError::InputWidthMismatch {
                expected,
                model: input_width,
            });
        }
    }
    let score_output = choose_score_output(graph)?;
    check_operators(graph, &score_output, &onnx)?;
    let feature_names = feature_names(&proto, input_width)?;

    let tract_err = |e: TractError| match e.chain().find_map(|c| c.downcast_ref::<TreeError>()) {
        Some(tree) => LoadError::InvalidTreeEnsemble(tree.0.clone()),
        None => LoadError::Import(format!("{e:#}")),
    };
    let mut model = onnx.model_for_proto_model(&proto).map_err(tract_err)?;
    model
        .select_outputs_by_name([score_output.as_str()])
        .map_err(tract_err)?;
    let batch = model.symbols.sym("tickscore_batch");
    model
        .set_input_fact(0, f32::fact([batch.to_dim(), input_width.to_dim()]).into())
        .map_err(tract_err)?;
    let typed = model.into_typed().map_err(tract_err)?;
    let mut typed = typed
        .set_symbols(&HashMap::from([(batch, 1.to_dim())]))
        .map_err(tract_err)?;

    let (score_width, positive_class_column) = select_score(&mut typed, &score_output)?;
    let decluttered = typed.into_decluttered().map_err(tract_err)?;
    let tract_plan = decluttered
        .clone()
        .into_optimized()
        .and_then(|m| m.into_runnable())
        .map_err(tract_err)?;
    Ok(Imported {
        decluttered,
        tract_plan,
        input_width,
        score_width,
        feature_names,
        score_output,
        positive_class_column,
        model_version: proto.model_version,
    })
}

/// Every value a node reads and every graph output is produced by something
/// (a graph input, an initializer or a node). tract panics on an output
/// nothing produces (found by fuzzing) and turns an unknown node input into
/// an extra model input; both are malformed files.
fn check_names(graph: &pb::GraphProto) -> Result<(), LoadError> {
    let known: HashSet<&str> = graph
        .input
        .iter()
        .map(|i| i.name.as_str())
        .chain(graph.initializer.iter().map(|t| t.name.as_str()))
        .chain(
            graph
                .node
                .iter()
                .flat_map(|n| n.output.iter().map(String::as_str)),
        )
        .collect();
    for node in &graph.node {
        if let Some(missing) = node
            .input
            .iter()
            .find(|i| !i.is_empty() && !known.contains(i.as_str()))
        {
            return Err(LoadError::Malformed(format!(
                "node {:?} reads {missing:?}, which nothing in the graph produces",
                node.name
            )));
        }
    }
    if let Some(o) = graph
        .output
        .iter()
        .find(|o| !known.contains(o.name.as_str()))
    {
        return Err(LoadError::Malformed(format!(
            "graph output {:?} is produced by nothing",
            o.name
        )));
    }
    Ok(())
}

/// Exactly one graph input that is not an initializer: f32, `[batch, F]`, F known.
fn check_input(graph: &pb::GraphProto) -> Result<usize, LoadError> {
    let initializers: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<&pb::ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !initializers.contains(i.name.as_str()))
        .collect();
    let [input] = inputs.as_slice() else {
        return Err(LoadError::UnsupportedInput(format!(
            "the graph has {} inputs; tickscore scores models with exactly one feature tensor",
            inputs.len()
        )));
    };
    let tensor = match input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(pb::type_proto::Value::TensorType(t)) => t,
        _ => {
            return Err(LoadError::UnsupportedInput(format!(
                "input {:?} is not a tensor",
                input.name
            )))
        }
    };
    if tensor.elem_type != ONNX_FLOAT {
        return Err(LoadError::UnsupportedInput(format!(
            "input {:?} has ONNX element type {}, tickscore needs float32 (1)",
            input.name, tensor.elem_type
        )));
    }
    let dims: Vec<Option<i64>> = tensor
        .shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match d.value {
                    Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) => Some(v),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    match dims.as_slice() {
        [batch, Some(width)] if *width > 0 && matches!(batch, None | Some(1)) => {
            usize::try_from(*width).map_err(|_| {
                LoadError::UnsupportedInput(format!("input width {width} does not fit in memory"))
            })
        }
        _ => Err(LoadError::UnsupportedInput(format!(
            "input {:?} must have shape [batch, features] with a fixed feature count, found {dims:?}",
            input.name
        ))),
    }
}

/// The f32 tensor output to score with: the probability tensor of a
/// classifier (by name), or the only f32 output.
fn choose_score_output(graph: &pb::GraphProto) -> Result<String, LoadError> {
    let describe = |o: &pb::ValueInfoProto| match o.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(pb::type_proto::Value::TensorType(t)) => {
            format!("{} (tensor of type {})", o.name, t.elem_type)
        }
        _ => format!("{} (not a tensor)", o.name),
    };
    let floats: Vec<&str> = graph
        .output
        .iter()
        .filter(|o| {
            matches!(
                o.r#type.as_ref().and_then(|t| t.value.as_ref()),
                Some(pb::type_proto::Value::TensorType(t)) if t.elem_type == ONNX_FLOAT
            )
        })
        .map(|o| o.name.as_str())
        .collect();
    if let Some(prob) = floats
        .iter()
        .find(|n| n.to_ascii_lowercase().contains("prob"))
    {
        return Ok(prob.to_string());
    }
    match floats.as_slice() {
        [only] => Ok(only.to_string()),
        [] => Err(LoadError::NoScoreOutput(format!(
            "no float32 tensor output; outputs: [{}]",
            graph
                .output
                .iter()
                .map(describe)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        several => Err(LoadError::NoScoreOutput(format!(
            "several float32 outputs and none is named as probabilities: {several:?}"
        ))),
    }
}

/// Every node the score output depends on must have an implementation.
fn check_operators(
    graph: &pb::GraphProto,
    score_output: &str,
    onnx: &tract_onnx::Onnx,
) -> Result<(), LoadError> {
    let producer: HashMap<&str, &pb::NodeProto> = graph
        .node
        .iter()
        .flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n)))
        .collect();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut stack = vec![score_output];
    while let Some(value) = stack.pop() {
        let Some(node) = producer.get(value) else {
            continue;
        };
        if !seen.insert(node.output.first().map(String::as_str).unwrap_or(value)) {
            continue;
        }
        if !onnx.op_register.0.contains_key(&node.op_type) {
            return Err(LoadError::UnsupportedOperator {
                op_type: node.op_type.clone(),
                domain: node.domain.clone(),
                node: node.name.clone(),
            });
        }
        stack.extend(
            node.input
                .iter()
                .map(String::as_str)
                .filter(|s| !s.is_empty()),
        );
    }
    if !producer.contains_key(score_output) && !graph.input.iter().any(|i| i.name == score_output) {
        return Err(LoadError::NoScoreOutput(format!(
            "output {score_output:?} is produced by no node"
        )));
    }
    Ok(())
}

fn feature_names(proto: &pb::ModelProto, width: usize) -> Result<Option<Vec<String>>, LoadError> {
    let Some(prop) = proto
        .metadata_props
        .iter()
        .find(|p| p.key == FEATURE_NAMES_KEY)
    else {
        return Ok(None);
    };
    let names: Vec<String> = prop.value.split('\n').map(str::to_owned).collect();
    if names.len() != width {
        return Err(LoadError::Malformed(format!(
            "metadata {FEATURE_NAMES_KEY} lists {} names for {width} features",
            names.len()
        )));
    }
    Ok(Some(names))
}

/// Reduce the graph's single output to the score: column 1 (P(class 1)) of a
/// two-column probability tensor, all columns otherwise. Returns the score
/// width and whether a column was selected.
fn select_score(typed: &mut TypedModel, name: &str) -> Result<(usize, bool), LoadError> {
    let tract_err = |e: TractError| LoadError::Import(format!("{e:#}"));
    let outlet = typed.output_outlets().map_err(tract_err)?[0];
    let fact = typed.outlet_fact(outlet).map_err(tract_err)?.clone();
    if fact.datum_type != f32::datum_type() {
        return Err(LoadError::NoScoreOutput(format!(
            "output {name:?} is {:?}, not f32",
            fact.datum_type
        )));
    }
    let dims: Option<Vec<usize>> = fact.shape.iter().map(|d| d.to_usize().ok()).collect();
    let dims = dims.ok_or_else(|| {
        LoadError::NoScoreOutput(format!(
            "output {name:?} has a symbolic shape {:?}",
            fact.shape
        ))
    })?;
    let is_prob = name.to_ascii_lowercase().contains("prob");
    match dims.as_slice() {
        [1, 2] if is_prob => {
            let column = typed
                .wire_node("tickscore.positive_class", Slice::new(1, 1, 2), &[outlet])
                .map_err(tract_err)?;
            typed.select_output_outlets(&column).map_err(tract_err)?;
            Ok((1, true))
        }
        [1, k] if *k > 0 => Ok((*k, false)),
        [1] | [] => Ok((1, false)),
        other => Err(LoadError::NoScoreOutput(format!(
            "output {name:?} has shape {other:?} at batch 1; expected [1, k] or [1]"
        ))),
    }
}
