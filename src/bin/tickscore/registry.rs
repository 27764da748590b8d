//! `tickscore keygen | sign | verify | registry list|publish|rollback`.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use tickscore::input::read_features_by_name;
use tickscore::registry::{
    manifest_for, save_manifest, Manifest, PublicKey, PublishOptions, SigningKey, ValuePolicy,
};
use tickscore::{LoadOptions, Model, Registry, RegistryError, RegistryOptions};

/// A registry error with the step it failed at.
fn step(e: RegistryError) -> Box<dyn std::error::Error> {
    format!("refused at step {}: {e}", e.step()).into()
}

use super::CliResult;

/// Where the registry is and whom it trusts.
#[derive(Args)]
pub struct RegistryArgs {
    /// The registry root (`<root>/<model>/<version>/`).
    #[arg(long)]
    root: PathBuf,
    /// Trusted public keys: `.pub` files, or directories of them (repeatable).
    #[arg(long)]
    trusted: Vec<PathBuf>,
    /// Accept unsigned manifests (a present signature is still checked).
    #[arg(long)]
    allow_unsigned: bool,
    /// Who is acting, for the audit log (default: $USER).
    #[arg(long)]
    actor: Option<String>,
}

impl RegistryArgs {
    fn open(&self) -> Result<(Registry, String), Box<dyn std::error::Error>> {
        let mut trusted_keys = Vec::new();
        for path in &self.trusted {
            if path.is_dir() {
                trusted_keys.extend(PublicKey::read_dir(path)?);
            } else {
                trusted_keys.push(PublicKey::read(path)?);
            }
        }
        if trusted_keys.is_empty() && !self.allow_unsigned {
            return Err("no trusted keys: pass --trusted KEY.pub (or --allow-unsigned)".into());
        }
        let registry = Registry::open(
            &self.root,
            RegistryOptions {
                require_signatures: !self.allow_unsigned,
                trusted_keys,
                ..Default::default()
            },
        )?;
        let actor = self
            .actor
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "cli".into());
        Ok((registry, actor))
    }
}

/// Registry actions.
#[derive(Subcommand)]
pub enum RegistryCommand {
    /// Models, their versions, and the version CURRENT names.
    List {
        #[command(flatten)]
        reg: RegistryArgs,
    },
    /// Verify a version (every load step) and make it CURRENT.
    Publish {
        #[command(flatten)]
        reg: RegistryArgs,
        /// Model name.
        #[arg(long)]
        model: String,
        /// Version number.
        #[arg(long)]
        version: u64,
        /// Accept an input schema that differs from the serving version's.
        #[arg(long)]
        force: bool,
    },
    /// Make the previously published version CURRENT again (verified anew).
    Rollback {
        #[command(flatten)]
        reg: RegistryArgs,
        /// Model name.
        #[arg(long)]
        model: String,
    },
}

/// NaN / infinity policy for `sign`.
#[derive(Clone, Copy, ValueEnum)]
pub enum PolicyArg {
    /// Refuse rows holding the value.
    Reject,
    /// Pass it to the model (tree models route NaN as missing).
    Pass,
}

impl From<PolicyArg> for ValuePolicy {
    fn from(p: PolicyArg) -> ValuePolicy {
        match p {
            PolicyArg::Reject => ValuePolicy::Reject,
            PolicyArg::Pass => ValuePolicy::Pass,
        }
    }
}

/// Arguments of `sign`.
#[derive(Args)]
pub struct SignArgs {
    /// The version directory `<root>/<model>/<version>/` holding `model.onnx`.
    #[arg(long)]
    dir: PathBuf,
    /// The secret key (omit with --unsigned).
    #[arg(long, required_unless_present = "unsigned")]
    key: Option<PathBuf>,
    /// Write the manifest without a signature.
    #[arg(long, conflicts_with = "key")]
    unsigned: bool,
    /// NaN policy (default: kept from an existing manifest, else reject).
    #[arg(long, value_enum)]
    nan: Option<PolicyArg>,
    /// Infinity policy (default: kept from an existing manifest, else reject).
    #[arg(long, value_enum)]
    infinite: Option<PolicyArg>,
    /// Free-text label.
    #[arg(long)]
    label: Option<String>,
    /// Features CSV to score for the reference score deciles (drift baseline).
    #[arg(long)]
    reference: Option<PathBuf>,
}

/// `tickscore keygen --out PREFIX`.
pub fn keygen(out: &Path) -> CliResult {
    let secret_path = out.with_extension("key");
    let public_path = out.with_extension("pub");
    for p in [&secret_path, &public_path] {
        if p.exists() {
            return Err(format!("{} exists; refusing to overwrite a key", p.display()).into());
        }
    }
    let key = SigningKey::generate()?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(&secret_path)
        .and_then(|mut f| f.write_all(key.to_text().as_bytes()))
        .map_err(|e| format!("{}: {e}", secret_path.display()))?;
    std::fs::write(&public_path, key.public().to_text())
        .map_err(|e| format!("{}: {e}", public_path.display()))?;
    println!(
        "key {}: secret {} (keep private), public {}",
        key.public().id(),
        secret_path.display(),
        public_path.display()
    );
    Ok(())
}

/// `tickscore sign`.
pub fn sign(a: SignArgs) -> CliResult {
    let dir = &a.dir;
    let part = |p: Option<&Path>| {
        p.and_then(Path::file_name)
            .and_then(|n| n.to_str())
            .map(str::to_owned)
    };
    let (version, name) = (part(Some(dir)), part(dir.parent()));
    let (Some(version), Some(name)) = (version, name) else {
        return Err(format!("{}: expected <root>/<model>/<version>/", dir.display()).into());
    };
    let version: u64 = version.parse().map_err(|_| {
        format!(
            "{}: the directory name must be the version number",
            dir.display()
        )
    })?;
    let manifest_path = dir.join("manifest.toml");
    let template = if manifest_path.is_file() {
        let text = std::fs::read_to_string(&manifest_path)?;
        Some(
            Manifest::parse(&text)
                .map_err(|e| format!("existing {}: {e}", manifest_path.display()))?,
        )
    } else {
        None
    };
    let key = a.key.as_deref().map(SigningKey::read).transpose()?;
    let mut m = manifest_for(dir, &name, version, template.as_ref())?;
    if let Some(p) = a.nan {
        m.input.nan = p.into();
    }
    if let Some(p) = a.infinite {
        m.input.infinite = p.into();
    }
    if let Some(l) = a.label {
        m.label = Some(l);
    }
    if let Some(data) = &a.reference {
        m.reference = Some(tickscore::registry::manifest::Reference {
            deciles: reference_deciles(&dir.join("model.onnx"), &m, data)?,
        });
    }
    m.validate()?;
    if let Some(k) = &key {
        k.sign(&mut m);
    }
    save_manifest(dir, &m)?;
    println!(
        "{}: {} v{} sha256 {} {}",
        manifest_path.display(),
        m.name,
        m.version,
        m.sha256,
        match &m.signature {
            Some(s) => format!("signed by key {}", s.key_id),
            None => "UNSIGNED".into(),
        }
    );
    Ok(())
}

fn reference_deciles(
    model_path: &Path,
    m: &Manifest,
    data: &Path,
) -> Result<Vec<f64>, Box<dyn std::error::Error>> {
    let pass = tickscore::NonFinitePolicy::Pass;
    let model = Model::load(
        model_path,
        &LoadOptions {
            input_policy: tickscore::InputPolicy {
                nan: pass,
                infinite: pass,
            },
            ..Default::default()
        },
    )?;
    let rows = read_features_by_name(data, &m.input.features)
        .map_err(|e| format!("{}: {e}", data.display()))?;
    let mut scorer = model.scorer()?;
    let mut out = vec![0f32; model.info().score_width];
    let mut scores = Vec::with_capacity(rows.rows());
    for i in 0..rows.rows() {
        scorer.score(rows.row(i), &mut out)?;
        scores.push(f64::from(out[0]));
    }
    if scores.len() < 10 {
        return Err(format!("{}: need at least 10 rows for deciles", data.display()).into());
    }
    scores.sort_by(f64::total_cmp);
    // Nearest rank: the k-th decile is the ceil(k n / 10)-th smallest score.
    let n = scores.len();
    Ok((1..10).map(|k| scores[(k * n).div_ceil(10) - 1]).collect())
}

/// `tickscore verify`.
pub fn verify(reg: RegistryArgs, model: &str, version: u64) -> CliResult {
    let (registry, actor) = reg.open()?;
    let v = registry.load(model, version, &actor).map_err(step)?;
    println!(
        "{} v{}: OK (sha256 {}, {}, {} features, tier {})",
        v.name(),
        v.version(),
        v.sha256(),
        match &v.manifest().signature {
            Some(s) => format!("signed by trusted key {}", s.key_id),
            None => "unsigned".into(),
        },
        v.manifest().input.features.len(),
        v.model().tier()
    );
    Ok(())
}

/// `tickscore registry …`.
pub fn registry(cmd: RegistryCommand) -> CliResult {
    match cmd {
        RegistryCommand::List { reg } => {
            let (registry, _) = reg.open()?;
            println!("{:<24} {:>8}  versions", "model", "current");
            for m in registry.list()? {
                let current = m
                    .current_on_disk
                    .map_or_else(|| "-".to_owned(), |v| v.to_string());
                let versions: Vec<String> = m.versions.iter().map(u64::to_string).collect();
                println!("{:<24} {:>8}  {}", m.name, current, versions.join(" "));
            }
        }
        RegistryCommand::Publish {
            reg,
            model,
            version,
            force,
        } => {
            let (registry, actor) = reg.open()?;
            let from = registry.current_on_disk(&model)?;
            if let Some(from) = from {
                // Serve what is current first, so the schema check compares
                // against it and the history continues.
                registry.serve(&model, &actor).map_err(step)?;
                if from == version {
                    println!("{model} v{version} is already current");
                    return Ok(());
                }
            }
            let v = registry
                .publish(
                    &model,
                    version,
                    &actor,
                    PublishOptions {
                        force_schema_change: force,
                    },
                )
                .map_err(step)?;
            println!(
                "{model}: published v{} (sha256 {}), was {}",
                v.version(),
                v.sha256(),
                from.map_or_else(|| "none".to_owned(), |f| format!("v{f}"))
            );
        }
        RegistryCommand::Rollback { reg, model } => {
            let (registry, actor) = reg.open()?;
            let from = registry
                .serve(&model, &actor)
                .map_err(step)?
                .current()
                .version();
            let v = registry.rollback(&model, &actor).map_err(step)?;
            println!("{model}: rolled back from v{from} to v{}", v.version());
        }
    }
    Ok(())
}
