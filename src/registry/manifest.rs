//! `manifest.toml`: what a registry version claims about its model file.
//!
//! ```toml
//! schema_version = 1            # this format; anything else is refused
//! name = "german_credit"        # must equal the directory <root>/<name>/
//! version = 2                   # must equal the directory <root>/<name>/<version>/
//! label = "2026-12 retrain"     # optional, free text
//! file = "model.onnx"           # the only accepted value: the file sits beside the manifest
//! size = 23456                  # bytes of model.onnx (checked before reading it)
//! sha256 = "9f86d0…"            # lowercase hex of model.onnx
//!
//! [input]
//! features = ["duration", "credit_amount", …]   # model order
//! nan = "reject"                # or "pass" (tree models route NaN as missing)
//! infinite = "reject"           # or "pass"
//!
//! [[input.bounds]]              # optional, any number; checked on every row
//! feature = "duration"
//! min = 0.0
//! max = 120.0
//!
//! [score]
//! output = "probabilities"      # the ONNX output the score comes from
//!
//! [reference]                   # optional: score distribution for drift checks
//! deciles = [0.05, 0.09, …]     # 9 non-decreasing cut points
//!
//! [signature]                   # optional (required when the registry requires signatures)
//! key_id = "3f1c…"              # first 16 hex digits of sha256(public key)
//! ed25519 = "…"                 # 128 hex digits
//! ```
//!
//! Unknown fields are refused (a typo must not silently drop a check). The
//! signature covers every other field, model digest included: the signed
//! message is [`SIGNING_CONTEXT`] followed by the manifest re-serialised
//! without its `[signature]` table (see [`Manifest::signing_bytes`]), so
//! reformatting the file by hand does not break it but changing any value
//! does.

use serde::{Deserialize, Serialize};

/// The manifest format this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// The model file name every manifest must name.
pub const MODEL_FILE: &str = "model.onnx";

/// Prefix of the signed message (domain separation: a tickscore manifest
/// signature cannot be replayed as a signature of anything else).
pub const SIGNING_CONTEXT: &[u8] = b"tickscore manifest v1\n";

/// Why a manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not TOML, a field of the wrong type, a missing field or an unknown
    /// field (the message names it and its line).
    #[error("manifest syntax: {0}")]
    Syntax(String),
    /// `schema_version` is not one this build reads.
    #[error(
        "manifest schema_version {found} is not supported (this build reads {SCHEMA_VERSION})"
    )]
    SchemaVersion {
        /// The version in the file.
        found: u32,
    },
    /// A field has a value outside its rules (the message says which).
    #[error("manifest field {field}: {reason}")]
    Invalid {
        /// The field, as a TOML path.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// NaN or infinity handling, as written in a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValuePolicy {
    /// Refuse the row (default).
    #[default]
    Reject,
    /// Pass the value to the model.
    Pass,
}

/// Closed interval a feature must lie in (either end optional).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bound {
    /// Feature name (one of `input.features`).
    pub feature: String,
    /// Smallest accepted value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Largest accepted value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// The input schema: which features, in which order, and what is valid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSchema {
    /// Feature names in model order.
    pub features: Vec<String>,
    /// NaN handling.
    #[serde(default)]
    pub nan: ValuePolicy,
    /// ±infinity handling.
    #[serde(default)]
    pub infinite: ValuePolicy,
    /// Per-feature bounds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bounds: Vec<Bound>,
}

/// Which output is the score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreSpec {
    /// ONNX output name.
    pub output: String,
}

/// A reference score distribution for drift checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    /// The 10th, 20th, … 90th percentiles of the score on reference data.
    pub deciles: Vec<f64>,
}

/// An ed25519 signature of the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// Which key signed: first 16 hex digits of sha256(public key).
    pub key_id: String,
    /// The 64-byte signature, hex.
    pub ed25519: String,
}

/// A parsed, validated manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Format version ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// Model name (the directory name).
    pub name: String,
    /// Version number (the directory name), ≥ 1.
    pub version: u64,
    /// Free-text label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The model file, always [`MODEL_FILE`].
    pub file: String,
    /// Size of the model file in bytes.
    pub size: u64,
    /// sha256 of the model file, lowercase hex.
    pub sha256: String,
    /// Input schema.
    pub input: InputSchema,
    /// Score output.
    pub score: ScoreSpec,
    /// Reference score distribution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<Reference>,
    /// Signature over everything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
}

fn invalid(field: &str, reason: impl Into<String>) -> ManifestError {
    ManifestError::Invalid {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// Names of models: what a directory may be called safely on every OS.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a model name (1-128 of A-Z a-z 0-9 _ - ., not starting with '.')"
        ))
    }
}

pub(crate) fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Manifest {
    /// Parse and validate manifest text (at most 1 MiB; the caller checks).
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        // Read the schema version first, so a future format gets the right
        // error rather than a confusing "unknown field".
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ManifestError::Syntax(e.to_string()))?;
        match table.get("schema_version") {
            Some(toml::Value::Integer(v)) if *v == i64::from(SCHEMA_VERSION) => {}
            Some(toml::Value::Integer(v)) => {
                return Err(ManifestError::SchemaVersion {
                    found: u32::try_from(*v).unwrap_or(u32::MAX),
                })
            }
            _ => {
                return Err(invalid(
                    "schema_version",
                    "missing or not an integer (this build reads 1)",
                ))
            }
        }
        let manifest: Manifest =
            toml::from_str(text).map_err(|e| ManifestError::Syntax(e.to_string()))?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Check every rule a parsed manifest must follow.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.schema_version != SCHEMA_VERSION {
            return Err(ManifestError::SchemaVersion {
                found: self.schema_version,
            });
        }
        check_name(&self.name).map_err(|r| invalid("name", r))?;
        if self.version == 0 {
            return Err(invalid("version", "versions start at 1"));
        }
        if let Some(label) = &self.label {
            if label.len() > 256 || label.chars().any(char::is_control) {
                return Err(invalid("label", "at most 256 printable characters"));
            }
        }
        if self.file != MODEL_FILE {
            return Err(invalid(
                "file",
                format!(
                    "names {:?}; a version's model must be {MODEL_FILE:?} beside its manifest",
                    self.file
                ),
            ));
        }
        if !is_lower_hex(&self.sha256, 64) {
            return Err(invalid("sha256", "must be 64 lowercase hex digits"));
        }
        let features = &self.input.features;
        if features.is_empty() {
            return Err(invalid("input.features", "must list at least one feature"));
        }
        let mut seen = std::collections::HashSet::new();
        for f in features {
            if f.is_empty() || f.chars().any(char::is_control) {
                return Err(invalid("input.features", format!("bad feature name {f:?}")));
            }
            if !seen.insert(f.as_str()) {
                return Err(invalid("input.features", format!("{f:?} listed twice")));
            }
        }
        let mut bounded = std::collections::HashSet::new();
        for b in &self.input.bounds {
            if !seen.contains(b.feature.as_str()) {
                return Err(invalid(
                    "input.bounds",
                    format!("{:?} is not in input.features", b.feature),
                ));
            }
            if !bounded.insert(b.feature.as_str()) {
                return Err(invalid(
                    "input.bounds",
                    format!("{:?} bounded twice", b.feature),
                ));
            }
            let finite = |v: Option<f64>| v.is_none_or(f64::is_finite);
            if !finite(b.min) || !finite(b.max) {
                return Err(invalid(
                    "input.bounds",
                    format!("{:?}: bounds must be finite", b.feature),
                ));
            }
            if let (Some(lo), Some(hi)) = (b.min, b.max) {
                if lo > hi {
                    return Err(invalid(
                        "input.bounds",
                        format!("{:?}: min {lo} > max {hi}", b.feature),
                    ));
                }
            }
        }
        if self.score.output.is_empty() {
            return Err(invalid("score.output", "must name an ONNX output"));
        }
        if let Some(r) = &self.reference {
            let d = &r.deciles;
            if d.len() != 9 || d.iter().any(|v| !v.is_finite()) || d.windows(2).any(|w| w[0] > w[1])
            {
                return Err(invalid(
                    "reference.deciles",
                    "must be 9 finite, non-decreasing cut points",
                ));
            }
        }
        if let Some(sig) = &self.signature {
            if !is_lower_hex(&sig.key_id, 16) {
                return Err(invalid(
                    "signature.key_id",
                    "must be 16 lowercase hex digits",
                ));
            }
            if !is_lower_hex(&sig.ed25519, 128) {
                return Err(invalid(
                    "signature.ed25519",
                    "must be 128 lowercase hex digits",
                ));
            }
        }
        Ok(())
    }

    /// The bytes a signature covers: [`SIGNING_CONTEXT`] + this manifest
    /// serialised without its signature.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut unsigned = self.clone();
        unsigned.signature = None;
        let mut bytes = SIGNING_CONTEXT.to_vec();
        bytes.extend_from_slice(unsigned.to_toml().as_bytes());
        bytes
    }

    /// Serialise (the canonical form `tickscore sign` writes).
    pub fn to_toml(&self) -> String {
        // Serialising plain structs of strings, numbers and arrays cannot
        // fail; a failure would be a bug in this module's types.
        toml::to_string(self).unwrap_or_else(|e| panic!("manifest serialisation: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            schema_version: 1,
            name: "m".into(),
            version: 1,
            label: None,
            file: MODEL_FILE.into(),
            size: 10,
            sha256: "0".repeat(64),
            input: InputSchema {
                features: vec!["a".into(), "b".into()],
                nan: ValuePolicy::Reject,
                infinite: ValuePolicy::Reject,
                bounds: vec![Bound {
                    feature: "a".into(),
                    min: Some(0.0),
                    max: None,
                }],
            },
            score: ScoreSpec { output: "p".into() },
            reference: None,
            signature: None,
        }
    }

    #[test]
    fn round_trips() {
        let m = sample();
        assert_eq!(Manifest::parse(&m.to_toml()), Ok(m));
    }

    #[test]
    fn unknown_field_is_refused_by_name() {
        let text = sample().to_toml() + "\nsha512 = \"x\"\n";
        match Manifest::parse(&text) {
            Err(ManifestError::Syntax(msg)) => assert!(msg.contains("sha512"), "{msg}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn future_schema_is_refused() {
        let text = sample()
            .to_toml()
            .replace("schema_version = 1", "schema_version = 2");
        assert_eq!(
            Manifest::parse(&text),
            Err(ManifestError::SchemaVersion { found: 2 })
        );
    }

    #[test]
    fn rules_are_enforced() {
        type Edit = Box<dyn Fn(&mut Manifest)>;
        let cases: Vec<(&str, Edit)> = vec![
            ("name", Box::new(|m| m.name = "../x".into())),
            ("version", Box::new(|m| m.version = 0)),
            ("file", Box::new(|m| m.file = "../2/model.onnx".into())),
            ("sha256", Box::new(|m| m.sha256 = "AB".repeat(32))),
            (
                "input.features",
                Box::new(|m| m.input.features.push("a".into())),
            ),
            (
                "input.bounds",
                Box::new(|m| m.input.bounds[0].feature = "z".into()),
            ),
            (
                "input.bounds",
                Box::new(|m| m.input.bounds[0].max = Some(-1.0)),
            ),
            (
                "reference.deciles",
                Box::new(|m| {
                    m.reference = Some(Reference {
                        deciles: vec![0.5; 8],
                    })
                }),
            ),
        ];
        for (field, edit) in cases {
            let mut m = sample();
            edit(&mut m);
            match m.validate() {
                Err(ManifestError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn signing_bytes_ignore_the_signature_and_cover_the_rest() {
        let a = sample();
        let mut b = sample();
        b.signature = Some(Signature {
            key_id: "0".repeat(16),
            ed25519: "0".repeat(128),
        });
        assert_eq!(a.signing_bytes(), b.signing_bytes());
        b.input.features.swap(0, 1);
        assert_ne!(a.signing_bytes(), b.signing_bytes());
    }
}
