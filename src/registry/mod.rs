//! The model registry: signed, versioned models, published by an atomic
//! pointer swap, rolled back in O(1), every change audited.
//!
//! ```text
//! <root>/
//!   audit.jsonl                     append-only audit log (default location)
//!   <name>/
//!     CURRENT                       published versions, one per line; the last is serving
//!     <version>/                    a positive integer
//!       model.onnx
//!       manifest.toml               see [`manifest`]
//! ```
//!
//! Loading a version runs these steps in order, and the first failure
//! refuses the version with an error naming its [`LoadStep`], leaving the
//! serving version untouched and the refusal in the audit log:
//!
//! 1. **manifest**: read (≤ 1 MiB), parse, validate; name and version must
//!    match the directory; the file must be `model.onnx`.
//! 2. **size**: the file's size against the manifest and the size limit
//!    (before it is read).
//! 3. **integrity**: sha256 of the bytes read against the manifest; these
//!    same bytes are what is imported.
//! 4. **signature**: ed25519 against the trusted keys (when required, or
//!    whenever a signature is present).
//! 5. **import** → lower → warm up → **probe** (lowered plan vs tract on a
//!    probe batch, see [`Model::from_bytes`]), then the manifest's input
//!    schema and score output are checked against the model (**schema**).
//!
//! Publishing swaps an [`ArcSwap`]: scorers read it without a lock, a
//! request in flight finishes on the version it loaded, and a retired
//! version is freed when its last user drops it. The last
//! [`RegistryOptions::keep_warm`] versions stay loaded, so a rollback (or a
//! re-publish of a warm version) is a pointer swap.

pub mod audit;
pub mod keys;
pub mod manifest;
mod scorer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use crate::error::LoadError;
use crate::model::{InputPolicy, LoadOptions, Model, NonFinitePolicy, Tier, TierChoice};
use audit::{AuditEvent, AuditLog};
pub use keys::{sha256_hex, KeyError, PublicKey, SigningKey};
pub use manifest::{Manifest, ManifestError, ValuePolicy};
pub use scorer::VersionedScorer;

/// Publications remembered in `CURRENT` for rollback.
const MAX_HISTORY: usize = 100;

/// Largest manifest file read.
const MAX_MANIFEST_BYTES: u64 = 1 << 20;

/// The step of the load pipeline an error comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadStep {
    /// Finding the model or version directory.
    Locate,
    /// Reading and validating `manifest.toml`.
    Manifest,
    /// The model file's size.
    Size,
    /// The sha256 of the model file.
    Integrity,
    /// The manifest's signature.
    Signature,
    /// Importing, lowering and warming up the model.
    Import,
    /// The parity probe (lowered plan vs tract).
    Probe,
    /// The manifest's schema against the model, or against the serving version.
    Schema,
    /// Publication (audit log, `CURRENT` file).
    Publish,
}

impl std::fmt::Display for LoadStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LoadStep::Locate => "locate",
            LoadStep::Manifest => "manifest",
            LoadStep::Size => "size",
            LoadStep::Integrity => "integrity",
            LoadStep::Signature => "signature",
            LoadStep::Import => "import",
            LoadStep::Probe => "probe",
            LoadStep::Schema => "schema",
            LoadStep::Publish => "publish",
        })
    }
}

/// Why a registry operation was refused. Nothing changed: the serving
/// version (if any) is still serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
        /// The step it happened in.
        step: LoadStep,
    },
    /// The model name is not valid.
    #[error("invalid model name: {0}")]
    InvalidName(String),
    /// No such model directory, or no version in it.
    #[error("no model {0:?} in the registry")]
    UnknownModel(String),
    /// No such version directory.
    #[error("model {model:?} has no version {version}")]
    UnknownVersion {
        /// The model.
        model: String,
        /// The version asked for.
        version: u64,
    },
    /// The manifest is malformed or breaks a rule.
    #[error("manifest {path}: {error}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        error: ManifestError,
    },
    /// The manifest's name or version differs from its directory.
    #[error("manifest says {field} {in_manifest:?}, but it sits in the directory for {in_path:?}")]
    ManifestLocation {
        /// `name` or `version`.
        field: &'static str,
        /// The value in the manifest.
        in_manifest: String,
        /// The value the directory says.
        in_path: String,
    },
    /// The model file is larger than the registry's limit.
    #[error("model file is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// The file's size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The model file's size differs from the manifest (truncated or replaced).
    #[error("model file is {actual} bytes, the manifest says {manifest} (truncated or replaced)")]
    SizeMismatch {
        /// The size the manifest states.
        manifest: u64,
        /// The file's size.
        actual: u64,
    },
    /// The model file's sha256 differs from the manifest (the file was altered).
    #[error("model file sha256 {actual} differs from the manifest's {manifest}")]
    DigestMismatch {
        /// The digest the manifest states.
        manifest: String,
        /// The digest of the file.
        actual: String,
    },
    /// Signatures are required and the manifest has none.
    #[error("the manifest is not signed, and this registry requires signatures")]
    Unsigned,
    /// The manifest is signed by a key that is not trusted.
    #[error("the manifest is signed by key {key_id}, which is not among the trusted keys")]
    UntrustedKey {
        /// The key id in the manifest.
        key_id: String,
    },
    /// The signature does not verify (the manifest was altered, or forged).
    #[error("the signature by key {key_id} does not match the manifest")]
    BadSignature {
        /// The key id in the manifest.
        key_id: String,
    },
    /// The model itself failed to import, lower or warm up.
    #[error("model refused: {0}")]
    Model(#[from] LoadError),
    /// The lowered plan failed the parity probe and the registry requires it.
    #[error("parity probe: {0}")]
    Probe(String),
    /// The manifest's schema does not describe the model file.
    #[error("manifest does not describe the model: {0}")]
    ManifestModelMismatch(String),
    /// The new version's input schema differs from the serving version's.
    #[error("input schema differs from serving version {serving}: {difference} (publish with force to accept)")]
    SchemaChanged {
        /// The serving version.
        serving: u64,
        /// The first difference found.
        difference: String,
    },
    /// Nothing to roll back to.
    #[error("model {0:?} has no earlier published version to roll back to")]
    NothingToRollBack(String),
    /// The model is not being served by this registry (publish it first).
    #[error("model {0:?} is not being served (publish a version first)")]
    NotServing(String),
    /// The audit record could not be written, so the action was not taken.
    #[error("audit log {path}: {source}; the action was not taken")]
    Audit {
        /// The log file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
}

impl RegistryError {
    /// The load-pipeline step this error comes from.
    pub fn step(&self) -> LoadStep {
        match self {
            RegistryError::Io { step, .. } => *step,
            RegistryError::InvalidName(_)
            | RegistryError::UnknownModel(_)
            | RegistryError::UnknownVersion { .. } => LoadStep::Locate,
            RegistryError::Manifest { .. } | RegistryError::ManifestLocation { .. } => {
                LoadStep::Manifest
            }
            RegistryError::TooLarge { .. } | RegistryError::SizeMismatch { .. } => LoadStep::Size,
            RegistryError::DigestMismatch { .. } => LoadStep::Integrity,
            RegistryError::Unsigned
            | RegistryError::UntrustedKey { .. }
            | RegistryError::BadSignature { .. } => LoadStep::Signature,
            RegistryError::Model(_) => LoadStep::Import,
            RegistryError::Probe(_) => LoadStep::Probe,
            RegistryError::ManifestModelMismatch(_) | RegistryError::SchemaChanged { .. } => {
                LoadStep::Schema
            }
            RegistryError::NothingToRollBack(_)
            | RegistryError::NotServing(_)
            | RegistryError::Audit { .. } => LoadStep::Publish,
        }
    }
}

/// How a [`Registry`] loads and keeps versions.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Refuse manifests without a valid signature by a trusted key
    /// (default true). A signature that is present is always checked.
    pub require_signatures: bool,
    /// Keys trusted to sign manifests.
    pub trusted_keys: Vec<PublicKey>,
    /// Versions kept loaded per model, the serving one included (default 3,
    /// at least 1): rollback to any of them is a pointer swap.
    pub keep_warm: usize,
    /// Refuse model files larger than this (default 256 MiB).
    pub max_model_bytes: u64,
    /// Refuse a version whose lowered plan fails the parity probe (or does
    /// not lower) instead of serving it on tract's tier (default false).
    pub require_lowered: bool,
    /// Execution tier.
    pub tier: TierChoice,
    /// The audit log (default `<root>/audit.jsonl`).
    pub audit_log: Option<PathBuf>,
    /// Write `<root>/<name>/CURRENT` on publish and rollback, so the next
    /// process serves the same version (default true).
    pub persist: bool,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            require_signatures: true,
            trusted_keys: Vec::new(),
            keep_warm: 3,
            max_model_bytes: LoadOptions::default().max_model_bytes,
            require_lowered: false,
            tier: TierChoice::Auto,
            audit_log: None,
            persist: true,
        }
    }
}

/// One loaded, verified version of a model. Immutable.
#[derive(Debug)]
pub struct ModelVersion {
    manifest: Manifest,
    model: Model,
    /// Per-feature `[min, max]` in model order, when the manifest bounds any.
    bounds: Option<Box<[(f64, f64)]>>,
    retired: AtomicBool,
}

impl ModelVersion {
    /// Model name.
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// Version number.
    pub fn version(&self) -> u64 {
        self.manifest.version
    }

    /// sha256 of the model file.
    pub fn sha256(&self) -> &str {
        &self.manifest.sha256
    }

    /// The verified manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The loaded model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The reference score deciles, if the manifest has them.
    pub fn reference_deciles(&self) -> Option<&[f64]> {
        self.manifest
            .reference
            .as_ref()
            .map(|r| r.deciles.as_slice())
    }

    /// True once the registry no longer keeps this version warm (scorers
    /// drop their cached state for it at their next version change).
    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    pub(crate) fn bounds(&self) -> Option<&[(f64, f64)]> {
        self.bounds.as_deref()
    }

    /// A version outside any registry (no manifest checks): lets the
    /// runtime treat a plain [`Model`] like a registry model.
    pub(crate) fn unregistered(model: Model) -> ModelVersion {
        let info = model.info();
        let policy = |p| match p {
            NonFinitePolicy::Reject => ValuePolicy::Reject,
            NonFinitePolicy::Pass => ValuePolicy::Pass,
        };
        let manifest = Manifest {
            schema_version: manifest::SCHEMA_VERSION,
            name: "unregistered".into(),
            version: u64::try_from(info.model_version).unwrap_or(0),
            label: None,
            file: manifest::MODEL_FILE.into(),
            size: 0,
            sha256: String::new(),
            input: manifest::InputSchema {
                features: info.feature_names.clone().unwrap_or_default(),
                nan: policy(model.input_policy().nan),
                infinite: policy(model.input_policy().infinite),
                bounds: Vec::new(),
            },
            score: manifest::ScoreSpec {
                output: info.score_output.clone(),
            },
            reference: None,
            signature: None,
        };
        ModelVersion {
            manifest,
            model,
            bounds: None,
            retired: AtomicBool::new(false),
        }
    }
}

/// Control-plane state of one model: which versions are warm and which
/// were published, in order.
#[derive(Debug, Default)]
struct LineageState {
    /// Loaded versions, most recently published first (the serving one first).
    warm: Vec<Arc<ModelVersion>>,
    /// Published versions, oldest first; the last is serving.
    history: Vec<u64>,
}

/// One model's serving pointer. Readers only touch `current`.
#[derive(Debug)]
pub(crate) struct Lineage {
    name: String,
    current: ArcSwap<ModelVersion>,
    /// Bumped after every store to `current`: a scorer that sees the same
    /// value as at its last look skips the `arc-swap` load (whose
    /// read-modify-write would make the CPU drain its store buffer on
    /// every call).
    publications: std::sync::atomic::AtomicU64,
    keep_warm: usize,
    state: Mutex<LineageState>,
}

impl Lineage {
    pub(crate) fn current(&self) -> &ArcSwap<ModelVersion> {
        &self.current
    }

    pub(crate) fn keep_warm(&self) -> usize {
        self.keep_warm
    }

    /// How many times `current` has been replaced (acquire: a changed
    /// value means the new pointer is visible to a following load).
    #[inline]
    pub(crate) fn publications(&self) -> u64 {
        self.publications.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Serve `v`: the swap, then the count scorers poll.
    fn set_current(&self, v: Arc<ModelVersion>) {
        self.current.store(v);
        self.publications
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// `version`, if it is loaded (warm).
    fn warm(&self, version: u64) -> Option<Arc<ModelVersion>> {
        let state = self.state.lock();
        state.warm.iter().find(|v| v.version() == version).cloned()
    }
}

/// A handle on one served model: cheap to clone, shared by threads. Its
/// scorers follow every publish and rollback.
#[derive(Debug, Clone)]
pub struct Deployment {
    lineage: Arc<Lineage>,
}

impl Deployment {
    /// A deployment of one fixed model, outside any registry (its version
    /// is the ONNX `model_version`, or 0).
    pub fn fixed(model: Model) -> Deployment {
        let version = Arc::new(ModelVersion::unregistered(model));
        Deployment {
            lineage: Arc::new(Lineage {
                name: version.name().to_owned(),
                publications: std::sync::atomic::AtomicU64::new(0),
                current: ArcSwap::new(version),
                keep_warm: 1,
                state: Mutex::new(LineageState::default()),
            }),
        }
    }

    /// The model name.
    pub fn name(&self) -> &str {
        &self.lineage.name
    }

    /// The version serving now.
    pub fn current(&self) -> Arc<ModelVersion> {
        self.lineage.current.load_full()
    }

    /// A scorer for the calling thread that follows publications.
    pub fn scorer(&self) -> Result<VersionedScorer, LoadError> {
        VersionedScorer::following(self.lineage.clone())
    }
}

/// What [`Registry::list`] reports per model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelListing {
    /// Model name.
    pub name: String,
    /// Version directories on disk, ascending.
    pub versions: Vec<u64>,
    /// The version `CURRENT` names on disk, if any.
    pub current_on_disk: Option<u64>,
    /// The version this registry serves, if it serves the model.
    pub serving: Option<u64>,
}

/// How to publish.
#[derive(Debug, Clone, Copy, Default)]
pub struct PublishOptions {
    /// Accept an input schema that differs from the serving version's.
    pub force_schema_change: bool,
}

/// A registry rooted at one directory.
#[derive(Debug)]
pub struct Registry {
    root: PathBuf,
    options: RegistryOptions,
    audit: AuditLog,
    lineages: Mutex<HashMap<String, Arc<Lineage>>>,
    /// Serialises control-plane changes (loads may run in parallel with
    /// scoring, never with each other's publication).
    control: Mutex<()>,
}

impl Registry {
    /// Open the registry at `root` (which must exist) and its audit log.
    pub fn open(
        root: impl AsRef<Path>,
        options: RegistryOptions,
    ) -> Result<Registry, RegistryError> {
        let root = root.as_ref().to_owned();
        let meta = std::fs::metadata(&root).map_err(|source| RegistryError::Io {
            path: root.clone(),
            source,
            step: LoadStep::Locate,
        })?;
        if !meta.is_dir() {
            return Err(RegistryError::Io {
                path: root,
                source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
                step: LoadStep::Locate,
            });
        }
        let audit_path = options
            .audit_log
            .clone()
            .unwrap_or_else(|| root.join("audit.jsonl"));
        let audit = AuditLog::open(&audit_path).map_err(|source| RegistryError::Audit {
            path: audit_path.clone(),
            source,
        })?;
        let mut options = options;
        options.keep_warm = options.keep_warm.max(1);
        Ok(Registry {
            root,
            options,
            audit,
            lineages: Mutex::new(HashMap::new()),
            control: Mutex::new(()),
        })
    }

    /// The registry's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The audit log file.
    pub fn audit_path(&self) -> &Path {
        self.audit.path()
    }

    /// Every model directory, its versions, and what is serving.
    pub fn list(&self) -> Result<Vec<ModelListing>, RegistryError> {
        let mut out = Vec::new();
        for name in sorted_dir_names(&self.root)? {
            if manifest::check_name(&name).is_err() || !self.root.join(&name).is_dir() {
                continue;
            }
            let versions = self.versions_on_disk(&name)?;
            let current_on_disk = self.current_on_disk(&name)?;
            if versions.is_empty() && current_on_disk.is_none() {
                continue; // not a model directory
            }
            out.push(ModelListing {
                current_on_disk,
                serving: self.deployment(&name).map(|d| d.current().version()),
                name,
                versions,
            });
        }
        Ok(out)
    }

    /// Version directories of `name`, ascending.
    pub fn versions_on_disk(&self, name: &str) -> Result<Vec<u64>, RegistryError> {
        manifest::check_name(name).map_err(RegistryError::InvalidName)?;
        let dir = self.root.join(name);
        if !dir.is_dir() {
            return Err(RegistryError::UnknownModel(name.to_owned()));
        }
        let mut versions: Vec<u64> = sorted_dir_names(&dir)?
            .iter()
            .filter(|n| !n.starts_with('0') && n.bytes().all(|b| b.is_ascii_digit()))
            .filter_map(|n| n.parse().ok())
            .filter(|v: &u64| dir.join(v.to_string()).is_dir())
            .collect();
        versions.sort_unstable();
        Ok(versions)
    }

    /// The version `<root>/<name>/CURRENT` names (its last line), if the
    /// file exists.
    pub fn current_on_disk(&self, name: &str) -> Result<Option<u64>, RegistryError> {
        Ok(self.history_on_disk(name)?.last().copied())
    }

    /// The publication history in `<root>/<name>/CURRENT`: one version per
    /// line, oldest first; the last line is the serving version and the
    /// lines before it are what rollback returns to.
    pub fn history_on_disk(&self, name: &str) -> Result<Vec<u64>, RegistryError> {
        manifest::check_name(name).map_err(RegistryError::InvalidName)?;
        let path = self.root.join(name).join("CURRENT");
        let text = match read_limited(&path, MAX_MANIFEST_BYTES, LoadStep::Locate) {
            Ok(bytes) => bytes,
            Err(RegistryError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Ok(Vec::new())
            }
            Err(e) => return Err(e),
        };
        let bad = |what: &str| RegistryError::Io {
            path: path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned()),
            step: LoadStep::Locate,
        };
        let text = String::from_utf8(text).map_err(|_| bad("not UTF-8"))?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| match l.trim().parse::<u64>() {
                Ok(v) if v > 0 => Ok(v),
                _ => Err(bad("each line must be one version number (>= 1)")),
            })
            .collect()
    }

    /// The deployment of `name`, or [`RegistryError::NotServing`].
    pub fn serving(&self, name: &str) -> Result<Deployment, RegistryError> {
        self.deployment(name)
            .ok_or_else(|| RegistryError::NotServing(name.to_owned()))
    }

    /// The deployment of `name`, if this registry serves it.
    pub fn deployment(&self, name: &str) -> Option<Deployment> {
        self.lineages
            .lock()
            .get(name)
            .map(|l| Deployment { lineage: l.clone() })
    }

    /// Serve `name`: publish the version its `CURRENT` file names, or its
    /// highest version, unless already served. Returns its deployment.
    pub fn serve(&self, name: &str, actor: &str) -> Result<Deployment, RegistryError> {
        if let Some(d) = self.deployment(name) {
            return Ok(d);
        }
        let version = match self.current_on_disk(name)? {
            Some(v) => v,
            None => *self
                .versions_on_disk(name)?
                .last()
                .ok_or_else(|| RegistryError::UnknownModel(name.to_owned()))?,
        };
        self.publish(name, version, actor, PublishOptions::default())?;
        self.serving(name)
    }

    /// Run the load pipeline on one version without publishing it (the
    /// load, or its refusal, is audited).
    pub fn load(
        &self,
        name: &str,
        version: u64,
        actor: &str,
    ) -> Result<Arc<ModelVersion>, RegistryError> {
        let result = self.load_unaudited(name, version);
        let (outcome, step, error) = match &result {
            Ok(_) => ("ok", None, None),
            Err(e) => ("refused", Some(e.step().to_string()), Some(e.to_string())),
        };
        let sha = result.as_ref().ok().map(|v| v.sha256().to_owned());
        self.record(&AuditEvent {
            action: "load",
            outcome,
            model: name,
            version: Some(version),
            sha256: sha.as_deref(),
            step: step.as_deref(),
            error,
            actor,
            ..AuditEvent::default()
        })?;
        result
    }

    /// Publish `version` of `name`: load and verify it (unless it is warm),
    /// check its input schema against the serving version, audit, persist
    /// `CURRENT`, then swap. On error the serving version is untouched.
    pub fn publish(
        &self,
        name: &str,
        version: u64,
        actor: &str,
        options: PublishOptions,
    ) -> Result<Arc<ModelVersion>, RegistryError> {
        let _control = self.control.lock();
        let lineage = self.lineages.lock().get(name).cloned();
        let serving = lineage.as_ref().map(|l| l.current.load_full());
        let warm = lineage.as_ref().and_then(|l| l.warm(version));
        let candidate = match warm {
            Some(v) => Ok(v),
            None => self.load(name, version, actor),
        };
        let checked = candidate.and_then(|v| {
            if let Some(s) = &serving {
                if !options.force_schema_change {
                    if let Some(difference) = schema_difference(s, &v) {
                        return Err(RegistryError::SchemaChanged {
                            serving: s.version(),
                            difference,
                        });
                    }
                }
            }
            Ok(v)
        });
        let from_version = serving.as_ref().map(|s| s.version());
        let v = match checked {
            Ok(v) => v,
            Err(e) => return Err(self.refuse("publish", name, version, from_version, actor, e)),
        };
        self.record(&AuditEvent {
            action: "publish",
            outcome: "ok",
            model: name,
            version: Some(version),
            sha256: Some(v.sha256()),
            from_version,
            actor,
            ..AuditEvent::default()
        })?;
        let mut history = match &lineage {
            Some(l) => l.state.lock().history.clone(),
            // The first publication in this process continues the history
            // on disk (so a rollback can go back past this process's start).
            None if self.options.persist => self.history_on_disk(name)?,
            None => Vec::new(),
        };
        if history.last() != Some(&version) {
            history.push(version);
        }
        self.persist(name, &history)
            .map_err(|e| self.refuse("publish", name, version, from_version, actor, e))?;
        match lineage {
            Some(l) => {
                let mut state = l.state.lock();
                promote(&mut state.warm, &v, self.options.keep_warm);
                state.history = history;
                // The swap: readers see the old or the new version, never a
                // mix, and never wait.
                l.set_current(v.clone());
            }
            None => {
                let l = Arc::new(Lineage {
                    name: name.to_owned(),
                    publications: std::sync::atomic::AtomicU64::new(0),
                    current: ArcSwap::new(v.clone()),
                    keep_warm: self.options.keep_warm,
                    state: Mutex::new(LineageState {
                        warm: vec![v.clone()],
                        history,
                    }),
                });
                self.lineages.lock().insert(name.to_owned(), l);
            }
        }
        Ok(v)
    }

    /// Roll `name` back to the version published before the serving one.
    /// A pointer swap when that version is still warm (the last
    /// [`RegistryOptions::keep_warm`] are); otherwise it is reloaded and
    /// verified again.
    pub fn rollback(&self, name: &str, actor: &str) -> Result<Arc<ModelVersion>, RegistryError> {
        let _control = self.control.lock();
        let Some(lineage) = self.lineages.lock().get(name).cloned() else {
            let e = RegistryError::NotServing(name.to_owned());
            return Err(self.refuse("rollback", name, 0, None, actor, e));
        };
        let serving = lineage.current.load_full();
        let target = lineage.state.lock().history.iter().rev().nth(1).copied();
        let warm = target.and_then(|t| lineage.warm(t));
        let Some(target) = target else {
            let e = RegistryError::NothingToRollBack(name.to_owned());
            return Err(self.refuse(
                "rollback",
                name,
                serving.version(),
                Some(serving.version()),
                actor,
                e,
            ));
        };
        let v = match warm {
            Some(v) => v,
            None => self.load(name, target, actor).map_err(|e| {
                self.refuse("rollback", name, target, Some(serving.version()), actor, e)
            })?,
        };
        self.record(&AuditEvent {
            action: "rollback",
            outcome: "ok",
            model: name,
            version: Some(target),
            sha256: Some(v.sha256()),
            from_version: Some(serving.version()),
            actor,
            ..AuditEvent::default()
        })?;
        let mut history = lineage.state.lock().history.clone();
        history.pop();
        self.persist(name, &history).map_err(|e| {
            self.refuse("rollback", name, target, Some(serving.version()), actor, e)
        })?;
        let mut state = lineage.state.lock();
        state.history = history;
        promote(&mut state.warm, &v, self.options.keep_warm);
        lineage.set_current(v.clone());
        Ok(v)
    }

    /// A version loaded for one caller that does not follow publications
    /// (a pinned scorer): from the warm set, or loaded and verified now.
    pub fn pinned_scorer(
        &self,
        name: &str,
        version: u64,
        actor: &str,
    ) -> Result<VersionedScorer, RegistryError> {
        let lineage = self.lineages.lock().get(name).cloned();
        let v = match lineage.and_then(|l| l.warm(version)) {
            Some(v) => v,
            None => self.load(name, version, actor)?,
        };
        Ok(VersionedScorer::pinned(v)?)
    }

    fn refuse(
        &self,
        action: &str,
        name: &str,
        version: u64,
        from_version: Option<u64>,
        actor: &str,
        error: RegistryError,
    ) -> RegistryError {
        let step = error.step().to_string();
        match self.record(&AuditEvent {
            action,
            outcome: "refused",
            model: name,
            version: (version != 0).then_some(version),
            from_version,
            step: Some(&step),
            error: Some(error.to_string()),
            actor,
            ..AuditEvent::default()
        }) {
            Ok(()) => error,
            // The refusal stands either way; an audit failure is the more
            // urgent news, and it says the action was not taken.
            Err(audit) => audit,
        }
    }

    fn record(&self, event: &AuditEvent<'_>) -> Result<(), RegistryError> {
        self.audit
            .record(event)
            .map_err(|source| RegistryError::Audit {
                path: self.audit.path().to_owned(),
                source,
            })
    }

    fn persist(&self, name: &str, history: &[u64]) -> Result<(), RegistryError> {
        if !self.options.persist {
            return Ok(());
        }
        let keep = &history[history.len().saturating_sub(MAX_HISTORY)..];
        let text: String = keep.iter().map(|v| format!("{v}\n")).collect();
        write_atomically(&self.root.join(name).join("CURRENT"), &text)
    }

    fn load_unaudited(&self, name: &str, version: u64) -> Result<Arc<ModelVersion>, RegistryError> {
        manifest::check_name(name).map_err(RegistryError::InvalidName)?;
        let model_dir = self.root.join(name);
        if !model_dir.is_dir() {
            return Err(RegistryError::UnknownModel(name.to_owned()));
        }
        let dir = model_dir.join(version.to_string());
        if version == 0 || !dir.is_dir() {
            return Err(RegistryError::UnknownVersion {
                model: name.to_owned(),
                version,
            });
        }
        // 1. manifest
        let manifest_path = dir.join("manifest.toml");
        let text = read_limited(&manifest_path, MAX_MANIFEST_BYTES, LoadStep::Manifest)?;
        let text = String::from_utf8(text).map_err(|_| RegistryError::Manifest {
            path: manifest_path.clone(),
            error: ManifestError::Syntax("not UTF-8".into()),
        })?;
        let manifest = Manifest::parse(&text).map_err(|error| RegistryError::Manifest {
            path: manifest_path.clone(),
            error,
        })?;
        if manifest.name != name {
            return Err(RegistryError::ManifestLocation {
                field: "name",
                in_manifest: manifest.name,
                in_path: name.to_owned(),
            });
        }
        if manifest.version != version {
            return Err(RegistryError::ManifestLocation {
                field: "version",
                in_manifest: manifest.version.to_string(),
                in_path: version.to_string(),
            });
        }
        // 2. size, before reading
        let model_path = dir.join(manifest::MODEL_FILE);
        let io = |source| RegistryError::Io {
            path: model_path.clone(),
            source,
            step: LoadStep::Size,
        };
        let size = std::fs::metadata(&model_path).map_err(io)?.len();
        if size > self.options.max_model_bytes {
            return Err(RegistryError::TooLarge {
                size,
                limit: self.options.max_model_bytes,
            });
        }
        if size != manifest.size {
            return Err(RegistryError::SizeMismatch {
                manifest: manifest.size,
                actual: size,
            });
        }
        let bytes = read_limited(&model_path, manifest.size, LoadStep::Size)?;
        if bytes.len() as u64 != manifest.size {
            return Err(RegistryError::SizeMismatch {
                manifest: manifest.size,
                actual: bytes.len() as u64,
            });
        }
        // 3. integrity of the very bytes that will be imported
        let digest = sha256_hex(&bytes);
        if digest != manifest.sha256 {
            return Err(RegistryError::DigestMismatch {
                manifest: manifest.sha256,
                actual: digest,
            });
        }
        // 4. signature
        match &manifest.signature {
            None if self.options.require_signatures => return Err(RegistryError::Unsigned),
            None => {}
            Some(sig) => {
                let key = self
                    .options
                    .trusted_keys
                    .iter()
                    .find(|k| k.id() == sig.key_id)
                    .ok_or_else(|| RegistryError::UntrustedKey {
                        key_id: sig.key_id.clone(),
                    })?;
                if !key.verifies(&manifest, sig) {
                    return Err(RegistryError::BadSignature {
                        key_id: sig.key_id.clone(),
                    });
                }
            }
        }
        // 5. import, lower, probe, warm up
        let policy = |p: ValuePolicy| match p {
            ValuePolicy::Reject => NonFinitePolicy::Reject,
            ValuePolicy::Pass => NonFinitePolicy::Pass,
        };
        let load_options = LoadOptions {
            max_model_bytes: self.options.max_model_bytes,
            expect_width: Some(manifest.input.features.len()),
            input_policy: InputPolicy {
                nan: policy(manifest.input.nan),
                infinite: policy(manifest.input.infinite),
            },
            tier: self.options.tier,
        };
        let model = Model::from_bytes(&bytes, &load_options)?;
        if self.options.require_lowered {
            if let Tier::Tract { reason } = model.tier() {
                return Err(RegistryError::Probe(reason.clone()));
            }
        }
        // 6. the manifest describes this model
        let info = model.info();
        if let Some(names) = &info.feature_names {
            if *names != manifest.input.features {
                let at = names
                    .iter()
                    .zip(&manifest.input.features)
                    .position(|(a, b)| a != b)
                    .unwrap_or(names.len().min(manifest.input.features.len()));
                return Err(RegistryError::ManifestModelMismatch(format!(
                    "feature {at}: the model reads {:?}, the manifest lists {:?}",
                    names.get(at),
                    manifest.input.features.get(at)
                )));
            }
        }
        if info.score_output != manifest.score.output {
            return Err(RegistryError::ManifestModelMismatch(format!(
                "the model scores from output {:?}, the manifest names {:?}",
                info.score_output, manifest.score.output
            )));
        }
        let bounds = (!manifest.input.bounds.is_empty()).then(|| {
            let mut b = vec![(f64::NEG_INFINITY, f64::INFINITY); manifest.input.features.len()];
            for bound in &manifest.input.bounds {
                if let Some(i) = manifest
                    .input
                    .features
                    .iter()
                    .position(|f| *f == bound.feature)
                {
                    b[i] = (
                        bound.min.unwrap_or(f64::NEG_INFINITY),
                        bound.max.unwrap_or(f64::INFINITY),
                    );
                }
            }
            b.into_boxed_slice()
        });
        Ok(Arc::new(ModelVersion {
            manifest,
            model,
            bounds,
            retired: AtomicBool::new(false),
        }))
    }
}

/// Put `v` first in the warm list; retire what falls off its end.
fn promote(warm: &mut Vec<Arc<ModelVersion>>, v: &Arc<ModelVersion>, keep_warm: usize) {
    warm.retain(|w| !Arc::ptr_eq(w, v));
    warm.insert(0, v.clone());
    let keep = keep_warm.min(warm.len());
    for old in warm.drain(keep..) {
        old.retired.store(true, Ordering::Release);
    }
}

/// The first difference between two versions' input contracts, if any.
fn schema_difference(serving: &ModelVersion, new: &ModelVersion) -> Option<String> {
    let (a, b) = (&serving.manifest.input, &new.manifest.input);
    if a.features != b.features {
        let at = a
            .features
            .iter()
            .zip(&b.features)
            .position(|(x, y)| x != y)
            .unwrap_or(a.features.len().min(b.features.len()));
        return Some(format!(
            "features differ at position {at} ({:?} vs {:?}; {} vs {} features)",
            a.features.get(at),
            b.features.get(at),
            a.features.len(),
            b.features.len()
        ));
    }
    if a.nan != b.nan || a.infinite != b.infinite {
        return Some("NaN/infinity policy differs".into());
    }
    if a.bounds != b.bounds {
        return Some("feature bounds differ".into());
    }
    let (sa, sb) = (
        serving.model.info().score_width,
        new.model.info().score_width,
    );
    if sa != sb {
        return Some(format!("score width {sa} vs {sb}"));
    }
    None
}

fn sorted_dir_names(dir: &Path) -> Result<Vec<String>, RegistryError> {
    let io = |source| RegistryError::Io {
        path: dir.to_owned(),
        source,
        step: LoadStep::Locate,
    };
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(io)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(io)?
        .into_iter()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

/// Read at most `limit` bytes (one more would be an error caught by the
/// caller's size check), without trusting the size the file claims.
fn read_limited(path: &Path, limit: u64, step: LoadStep) -> Result<Vec<u8>, RegistryError> {
    use std::io::Read;
    let io = |source| RegistryError::Io {
        path: path.to_owned(),
        source,
        step,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(match step {
            LoadStep::Manifest => RegistryError::Manifest {
                path: path.to_owned(),
                error: ManifestError::Syntax(format!("larger than {limit} bytes")),
            },
            _ => RegistryError::SizeMismatch {
                manifest: limit,
                actual: bytes.len() as u64,
            },
        });
    }
    Ok(bytes)
}

/// Write `<dir>/manifest.toml` for the `model.onnx` in `dir` (see
/// [`manifest_for`]), signed if a key is given. What `tickscore sign` does.
pub fn write_manifest(
    dir: &Path,
    name: &str,
    version: u64,
    template: Option<&Manifest>,
    key: Option<&SigningKey>,
) -> Result<Manifest, RegistryError> {
    let mut m = manifest_for(dir, name, version, template)?;
    if let Some(k) = key {
        k.sign(&mut m);
    }
    save_manifest(dir, &m)?;
    Ok(m)
}

/// Write `m` to `<dir>/manifest.toml` atomically (a watching registry
/// never sees half a manifest).
pub fn save_manifest(dir: &Path, m: &Manifest) -> Result<(), RegistryError> {
    write_atomically(&dir.join("manifest.toml"), &m.to_toml())
}

/// Write `text` to `path` by writing a hidden sibling and renaming it.
fn write_atomically(path: &Path, text: &str) -> Result<(), RegistryError> {
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| RegistryError::Io {
            path,
            source,
            step: LoadStep::Publish,
        }
    };
    std::fs::write(&tmp, text).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

fn model_dir_of(registry: &Registry, name: &str, version: u64) -> PathBuf {
    registry.root.join(name).join(version.to_string())
}

/// The (unsigned) manifest for the `model.onnx` in `dir`: size and digest
/// computed from the file, input features and score output read from the
/// model (features from its metadata); policies, bounds, label and
/// reference come from `template` when given.
pub fn manifest_for(
    dir: &Path,
    name: &str,
    version: u64,
    template: Option<&Manifest>,
) -> Result<Manifest, RegistryError> {
    let model_path = dir.join(manifest::MODEL_FILE);
    let bytes = read_limited(
        &model_path,
        LoadOptions::default().max_model_bytes,
        LoadStep::Size,
    )?;
    let model = Model::from_bytes(&bytes, &LoadOptions::default())?;
    let info = model.info();
    let features = info.feature_names.clone().ok_or_else(|| {
        RegistryError::ManifestModelMismatch(
            "the model does not list its feature names (metadata tickscore.feature_names)".into(),
        )
    })?;
    let mut m = match template {
        Some(t) => t.clone(),
        None => Manifest {
            schema_version: manifest::SCHEMA_VERSION,
            name: String::new(),
            version: 0,
            label: None,
            file: manifest::MODEL_FILE.into(),
            size: 0,
            sha256: String::new(),
            input: manifest::InputSchema {
                features: Vec::new(),
                nan: ValuePolicy::Reject,
                infinite: ValuePolicy::Reject,
                bounds: Vec::new(),
            },
            score: manifest::ScoreSpec {
                output: String::new(),
            },
            reference: None,
            signature: None,
        },
    };
    m.name = name.to_owned();
    m.version = version;
    m.file = manifest::MODEL_FILE.into();
    m.size = bytes.len() as u64;
    m.sha256 = sha256_hex(&bytes);
    m.input.features = features;
    m.score.output = info.score_output.clone();
    m.signature = None;
    m.validate().map_err(|error| RegistryError::Manifest {
        path: dir.join("manifest.toml"),
        error,
    })?;
    Ok(m)
}

/// Publishes new versions of one model as they appear on disk (see
/// [`Registry::watch`]). Stops, and joins its thread, when dropped.
#[derive(Debug)]
pub struct Watcher {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    published: Arc<std::sync::atomic::AtomicU64>,
    refused: Arc<std::sync::atomic::AtomicU64>,
}

impl Watcher {
    /// Versions this watcher published.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Versions it tried and the registry refused (each is audited, and
    /// not tried again).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            // A watcher thread that panicked has nothing left to report.
            let _ = t.join();
        }
    }
}

impl Registry {
    /// Watch `name` (off unless called): every `interval`, the newest
    /// version directory holding a `manifest.toml`, if newer than the
    /// serving version, is published (all load steps, schema check, audit as
    /// actor `"watcher"`). Write `model.onnx` first and the manifest last
    /// (atomically, as [`write_manifest`] and `tickscore sign` do). A
    /// refused version is not retried; a newer one is. The model must be
    /// served already.
    pub fn watch(
        self: &Arc<Self>,
        name: &str,
        interval: std::time::Duration,
    ) -> Result<Watcher, RegistryError> {
        let deployment = self.serving(name)?;
        let stop = Arc::new(AtomicBool::new(false));
        let published = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let refused = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let model_dir = self.root.join(name);
        let (registry, name) = (Arc::clone(self), name.to_owned());
        let (stop2, published2, refused2) = (stop.clone(), published.clone(), refused.clone());
        let thread = std::thread::Builder::new()
            .name(format!("tickscore-watch-{name}"))
            .spawn(move || {
                let mut tried = 0u64;
                while !stop2.load(Ordering::Relaxed) {
                    let serving = deployment.current().version();
                    // A version is ready once its manifest exists (written
                    // last, atomically, by `write_manifest`).
                    let newest = registry.versions_on_disk(&name).ok().and_then(|v| {
                        v.into_iter().rev().find(|v| {
                            model_dir_of(&registry, &name, *v)
                                .join("manifest.toml")
                                .is_file()
                        })
                    });
                    if let Some(newest) = newest.filter(|n| *n > serving.max(tried)) {
                        tried = newest;
                        match registry.publish(&name, newest, "watcher", PublishOptions::default())
                        {
                            Ok(_) => published2.fetch_add(1, Ordering::Relaxed),
                            Err(_) => refused2.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                    std::thread::park_timeout(interval);
                }
            })
            .map_err(|source| RegistryError::Io {
                path: model_dir,
                source,
                step: LoadStep::Publish,
            })?;
        Ok(Watcher {
            stop,
            thread: Some(thread),
            published,
            refused,
        })
    }
}
