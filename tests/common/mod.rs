//! Shared helpers for the integration tests: the bundled models and their
//! recorded onnxruntime outputs, and a small builder of synthetic ONNX files.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use prost::Message;
use tickscore::input::{read_features_by_name_from_any, read_features_file, FeatureRows};
use tickscore::Model;
use tract_onnx::pb;

pub fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

/// Every bundled model directory that has recorded reference outputs.
pub fn bundled_models() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(models_dir())
        .expect("models/ exists")
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.path().join("model.onnx").is_file() && e.path().join("reference.csv").is_file()
        })
        .map(|e| e.file_name().into_string().expect("utf-8 name"))
        .collect();
    names.sort();
    assert!(names.len() >= 7, "bundled models missing: {names:?}");
    names
}

pub fn model_path(name: &str) -> PathBuf {
    models_dir().join(name).join("model.onnx")
}

/// The test split, as the model's features (selected by name).
pub fn test_rows(model: &Model) -> FeatureRows {
    rows_from(model, "")
}

/// The test split with NaNs injected, as the model's features.
pub fn nan_rows(model: &Model) -> FeatureRows {
    rows_from(model, "_nan")
}

/// `data/german_test{suffix}.csv`, or for the 119-feature model (whose
/// features are not all there) `data/german_wide_test{suffix}.csv`.
fn rows_from(model: &Model, suffix: &str) -> FeatureRows {
    let names = model
        .info()
        .feature_names
        .as_ref()
        .expect("bundled models name their features");
    let data = models_dir().join("data");
    read_features_by_name_from_any(
        &[
            &data.join(format!("german_test{suffix}.csv")),
            &data.join(format!("german_wide_test{suffix}.csv")),
        ],
        names,
    )
    .expect("test rows read")
}

/// onnxruntime's scores on the NaN rows, for the models that have them.
pub fn reference_nan(name: &str) -> Option<Vec<f32>> {
    let path = models_dir().join(name).join("reference_nan.csv");
    path.is_file().then(|| {
        read_features_file(&path, 1, None)
            .expect("reference reads")
            .values
    })
}

pub fn reference(name: &str) -> Vec<f32> {
    read_features_file(&models_dir().join(name).join("reference.csv"), 1, None)
        .expect("reference reads")
        .values
}

// ---- synthetic ONNX models -------------------------------------------------

pub fn tensor_type(elem_type: i32, dims: &[Option<i64>]) -> Option<pb::TypeProto> {
    use pb::tensor_shape_proto::{dimension, Dimension};
    Some(pb::TypeProto {
        value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
            elem_type,
            shape: Some(pb::TensorShapeProto {
                dim: dims
                    .iter()
                    .map(|d| Dimension {
                        value: Some(match d {
                            Some(v) => dimension::Value::DimValue(*v),
                            None => dimension::Value::DimParam("N".into()),
                        }),
                        ..Default::default()
                    })
                    .collect(),
            }),
        })),
        ..Default::default()
    })
}

pub fn value(name: &str, elem_type: i32, dims: &[Option<i64>]) -> pb::ValueInfoProto {
    pb::ValueInfoProto {
        name: name.into(),
        r#type: tensor_type(elem_type, dims),
        ..Default::default()
    }
}

pub fn node(op: &str, domain: &str, inputs: &[&str], outputs: &[&str]) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        domain: domain.into(),
        name: format!("{op}_node"),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

pub fn f32_initializer(name: &str, dims: &[i64], data: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 1,
        float_data: data.to_vec(),
        ..Default::default()
    }
}

pub fn model_bytes(
    nodes: Vec<pb::NodeProto>,
    inputs: Vec<pb::ValueInfoProto>,
    outputs: Vec<pb::ValueInfoProto>,
    initializers: Vec<pb::TensorProto>,
) -> Vec<u8> {
    let model = pb::ModelProto {
        ir_version: 8,
        opset_import: vec![
            pb::OperatorSetIdProto {
                domain: String::new(),
                version: 17,
            },
            pb::OperatorSetIdProto {
                domain: "ai.onnx.ml".into(),
                version: 3,
            },
        ],
        graph: Some(pb::GraphProto {
            name: "g".into(),
            node: nodes,
            input: inputs,
            output: outputs,
            initializer: initializers,
            ..Default::default()
        }),
        ..Default::default()
    };
    model.encode_to_vec()
}

/// `score = sigmoid(x · w + b)` over 3 features: a minimal valid model.
pub fn tiny_logistic() -> Vec<u8> {
    model_bytes(
        vec![
            node("MatMul", "", &["x", "w"], &["xw"]),
            node("Add", "", &["xw", "b"], &["z"]),
            node("Sigmoid", "", &["z"], &["score"]),
        ],
        vec![value("x", 1, &[None, Some(3)])],
        vec![value("score", 1, &[None, Some(1)])],
        vec![
            f32_initializer("w", &[3, 1], &[0.5, -1.0, 2.0]),
            f32_initializer("b", &[1], &[0.25]),
        ],
    )
}

// ---- registry fixtures -----------------------------------------------------

/// A fresh, empty directory under the system temp dir (removed on drop).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("tickscore-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The signing key of the test registries (deterministic).
pub fn test_key() -> tickscore::registry::SigningKey {
    tickscore::registry::SigningKey::from_seed([42; 32])
}

/// Put bundled model `bundled` into `<root>/<name>/<version>/` with a
/// manifest signed by `key` (unsigned if `None`).
pub fn add_version(
    root: &Path,
    name: &str,
    version: u64,
    bundled: &str,
    key: Option<&tickscore::registry::SigningKey>,
) -> tickscore::registry::Manifest {
    let dir = root.join(name).join(version.to_string());
    std::fs::create_dir_all(&dir).expect("version dir");
    std::fs::copy(model_path(bundled), dir.join("model.onnx")).expect("copy model");
    tickscore::registry::write_manifest(&dir, name, version, None, key).expect("manifest")
}

/// Registry options trusting [`test_key`], audit log inside `root`.
pub fn registry_options() -> tickscore::RegistryOptions {
    tickscore::RegistryOptions {
        trusted_keys: vec![test_key().public()],
        keep_warm: 2,
        ..Default::default()
    }
}
