//! The registry through the C ABI: open a registry, serve, publish, roll
//! back, query the serving version, and make scorers and engines that
//! follow publications (see the crate docs for the conventions).
//!
//! Publish and rollback are control-plane calls (they read files, may
//! import a model, and write the audit log); scoring through
//! `ts_score_versioned` or an engine never waits for them.

use std::ffi::{c_char, CStr};

use engine::registry::{PublicKey, PublishOptions};
use engine::{Engine, Registry, RegistryOptions};

use crate::boundary::{ffi_boundary, non_null};
use crate::pool::{engine_config, TsEngine, TsEngineOptions};
use crate::status::{FfiError, TsStatus};
use crate::TsScorer;

/// A model registry rooted at one directory. Thread-safe: every function
/// taking a `ts_registry *` may be called from any thread.
pub struct TsRegistry {
    registry: Registry,
}

/// Options for `ts_registry_open`. Initialise with
/// `ts_registry_options_default`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct TsRegistryOptions {
    /// Trusted public keys: a `.pub` file or a directory of them
    /// (NUL-terminated UTF-8), or NULL for none.
    pub trusted_keys: *const c_char,
    /// 1 = refuse manifests without a valid signature by a trusted key
    /// (default); 0 = accept unsigned ones (a present signature is still
    /// checked).
    pub require_signatures: u32,
    /// Versions kept loaded per model, the serving one included (default 3).
    pub keep_warm: u32,
    /// Refuse model files larger than this many bytes (default 256 MiB).
    pub max_model_bytes: u64,
    /// The audit log path, or NULL for `<root>/audit.jsonl`.
    pub audit_log: *const c_char,
    /// 1 = write `<root>/<model>/CURRENT` on publish and rollback (default).
    pub persist: u32,
}

/// # Safety
/// `p` must be NULL or a valid NUL-terminated string.
unsafe fn opt_str<'a>(p: *const c_char, name: &str) -> Result<Option<&'a str>, FfiError> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL (checked); NUL-terminated by contract.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map(Some)
        .map_err(|_| {
            FfiError::new(
                TsStatus::InvalidArgument,
                format!("{name} is not valid UTF-8"),
            )
        })
}

/// # Safety
/// `p` must be NULL (refused) or a valid NUL-terminated string.
unsafe fn req_str<'a>(p: *const c_char, name: &str) -> Result<&'a str, FfiError> {
    non_null(p, name)?;
    // SAFETY: forwarded contract.
    Ok(unsafe { opt_str(p, name) }?.unwrap_or_default())
}

/// # Safety
/// `registry` must be NULL (refused) or a live handle.
unsafe fn registry_ref<'a>(registry: *const TsRegistry) -> Result<&'a Registry, FfiError> {
    non_null(registry, "registry")?;
    // SAFETY: non-NULL (checked) and live by contract.
    Ok(unsafe { &(*registry).registry })
}

/// The arguments every registry action takes: the registry, the model
/// name and the actor (NULL: "c-abi").
///
/// # Safety
/// `registry` NULL (refused) or live; `model` NULL (refused) or a valid
/// string; `actor` NULL or a valid string.
unsafe fn action_args<'a>(
    registry: *const TsRegistry,
    model: *const c_char,
    actor: *const c_char,
) -> Result<(&'a Registry, &'a str, &'a str), FfiError> {
    // SAFETY: forwarded contract.
    unsafe {
        Ok((
            registry_ref(registry)?,
            req_str(model, "model")?,
            opt_str(actor, "actor")?.unwrap_or("c-abi"),
        ))
    }
}

fn flag(v: u32, name: &str) -> Result<bool, FfiError> {
    match v {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(FfiError::new(
            TsStatus::InvalidArgument,
            format!("{name} must be 0 or 1, got {v}"),
        )),
    }
}

/// Fill `*out_options` with the defaults. Thread-safe.
///
/// # Safety
/// `out_options` must be NULL (refused) or writable.
#[no_mangle]
pub unsafe extern "C" fn ts_registry_options_default(
    out_options: *mut TsRegistryOptions,
) -> TsStatus {
    ffi_boundary(|| {
        non_null(out_options, "out_options")?;
        let d = RegistryOptions::default();
        let options = TsRegistryOptions {
            trusted_keys: std::ptr::null(),
            require_signatures: u32::from(d.require_signatures),
            keep_warm: d.keep_warm as u32,
            max_model_bytes: d.max_model_bytes,
            audit_log: std::ptr::null(),
            persist: u32::from(d.persist),
        };
        // SAFETY: non-NULL (checked); writable by contract.
        unsafe { out_options.write(options) };
        Ok(())
    })
}

/// Open the registry at `root` (an existing directory; NUL-terminated
/// UTF-8) and its audit log. `options` may be NULL for the defaults (which
/// require signatures, so pass trusted keys). Free with `ts_registry_free`.
///
/// # Safety
/// `root` must be a valid string; `options` NULL or valid (its strings
/// NULL or valid); `out_registry` writable.
#[no_mangle]
pub unsafe extern "C" fn ts_registry_open(
    root: *const c_char,
    options: *const TsRegistryOptions,
    out_registry: *mut *mut TsRegistry,
) -> TsStatus {
    ffi_boundary(|| {
        // SAFETY: the caller's contract.
        let root = unsafe { req_str(root, "root") }?;
        non_null(out_registry, "out_registry")?;
        let mut opts = RegistryOptions::default();
        if !options.is_null() {
            // SAFETY: non-NULL (checked), valid by contract.
            let o = unsafe { &*options };
            opts.require_signatures = flag(o.require_signatures, "require_signatures")?;
            opts.persist = flag(o.persist, "persist")?;
            opts.keep_warm = o.keep_warm.max(1) as usize;
            opts.max_model_bytes = o.max_model_bytes;
            // SAFETY: NULL or a valid string, by contract.
            if let Some(keys) = unsafe { opt_str(o.trusted_keys, "trusted_keys") }? {
                let path = std::path::Path::new(keys);
                let loaded = if path.is_dir() {
                    PublicKey::read_dir(path)
                } else {
                    PublicKey::read(path).map(|k| vec![k])
                };
                opts.trusted_keys =
                    loaded.map_err(|e| FfiError::new(TsStatus::InvalidArgument, e.to_string()))?;
            }
            // SAFETY: NULL or a valid string, by contract.
            opts.audit_log = unsafe { opt_str(o.audit_log, "audit_log") }?.map(Into::into);
        }
        let registry = Registry::open(root, opts)?;
        let handle = Box::into_raw(Box::new(TsRegistry { registry }));
        // SAFETY: non-NULL (checked); writable by contract.
        unsafe { out_registry.write(handle) };
        Ok(())
    })
}

/// Free a registry. NULL is a no-op. Scorers and engines made from it stay
/// valid (they keep serving the version they hold). Free it only once.
///
/// # Safety
/// `registry` must be NULL or a pointer from `ts_registry_open` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn ts_registry_free(registry: *mut TsRegistry) {
    if !registry.is_null() {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: from `Box::into_raw` in `ts_registry_open`, freed once by contract.
            drop(unsafe { Box::from_raw(registry) })
        }));
    }
}

/// Serve `model`: publish the version its CURRENT file names (or its
/// highest version), unless already served; write the serving version to
/// `*out_version`. Every load step is checked; the message names the step
/// that refused.
///
/// # Safety
/// `registry` live; `model` and `actor` valid strings (`actor` may be
/// NULL: "c-abi"); `out_version` writable.
#[no_mangle]
pub unsafe extern "C" fn ts_registry_serve(
    registry: *const TsRegistry,
    model: *const c_char,
    actor: *const c_char,
    out_version: *mut u64,
) -> TsStatus {
    ffi_boundary(|| {
        // SAFETY: the caller's contract.
        let (reg, model, actor) = unsafe { action_args(registry, model, actor) }?;
        non_null(out_version, "out_version")?;
        let version = reg.serve(model, actor)?.current().version();
        // SAFETY: non-NULL (checked); writable by contract.
        unsafe { out_version.write(version) };
        Ok(())
    })
}

/// Publish `version` of `model` (load and verify it unless warm, check its
/// input schema against the serving version unless `force_schema_change`
/// is 1, audit, swap). On failure the serving version is untouched.
///
/// # Safety
/// As for `ts_registry_serve`.
#[no_mangle]
pub unsafe extern "C" fn ts_registry_publish(
    registry: *const TsRegistry,
    model: *const c_char,
    version: u64,
    actor: *const c_char,
    force_schema_change: u32,
) -> TsStatus {
    ffi_boundary(|| {
        // SAFETY: the caller's contract.
        let (reg, model, actor) = unsafe { action_args(registry, model, actor) }?;
        let options = PublishOptions {
            force_schema_change: flag(force_schema_change, "force_schema_change")?,
        };
        reg.publish(model, version, actor, options)?;
        Ok(())
    })
}

/// Roll `model` back to the version published before the serving one (a
/// pointer swap when it is still warm); its number goes to `*out_version`.
///
/// # Safety
/// As for `ts_registry_serve`.
#[no_mangle]
pub unsafe extern "C" fn ts_registry_rollback(
    registry: *const TsRegistry,
    model: *const c_char,
    actor: *const c_char,
    out_version: *mut u64,
) -> TsStatus {
    ffi_boundary(|| {
        // SAFETY: the caller's contract.
        let (reg, model, actor) = unsafe { action_args(registry, model, actor) }?;
        non_null(out_version, "out_version")?;
        let version = reg.rollback(model, actor)?.version();
        // SAFETY: non-NULL (checked); writable by contract.
        unsafe { out_version.write(version) };
        Ok(())
    })
}

/// The version of `model` serving now, to `*out_version`
/// (`TS_STATUS_NOT_SERVING` if the registry does not serve it).
///
/// # Safety
/// `registry` live; `model` a valid string; `out_version` writable.
#[no_mangle]
pub unsafe extern "C" fn ts_registry_current_version(
    registry: *const TsRegistry,
    model: *const c_char,
    out_version: *mut u64,
) -> TsStatus {
    ffi_boundary(|| {
        // SAFETY: the caller's contract.
        let (reg, model) = unsafe { (registry_ref(registry)?, req_str(model, "model")?) };
        non_null(out_version, "out_version")?;
        let d = reg.serving(model)?;
        // SAFETY: non-NULL (checked); writable by contract.
        unsafe { out_version.write(d.current().version()) };
        Ok(())
    })
}

/// A scorer that follows `model`'s publications (serve it first): each
/// `ts_score_versioned` scores on the version serving at that moment and
/// reports it. Free with `ts_scorer_free`. One thread at a time.
///
/// # Safety
/// `registry` live; `model` a valid string; `out_scorer` writable.
#[no_mangle]
pub unsafe extern "C" fn ts_registry_scorer_new(
    registry: *const TsRegistry,
    model: *const c_char,
    out_scorer: *mut *mut TsScorer,
) -> TsStatus {
    ffi_boundary(|| {
        // SAFETY: the caller's contract.
        let (reg, model) = unsafe { (registry_ref(registry)?, req_str(model, "model")?) };
        non_null(out_scorer, "out_scorer")?;
        let d = reg.serving(model)?;
        let handle = Box::into_raw(Box::new(TsScorer::versioned(d.scorer()?)));
        // SAFETY: non-NULL (checked); writable by contract.
        unsafe { out_scorer.write(handle) };
        Ok(())
    })
}

/// An engine whose workers follow `model`'s publications (serve it
/// first); each result's `model_version` says which version scored it.
/// `options` may be NULL. Free with `ts_engine_free`.
///
/// # Safety
/// `registry` live; `model` a valid string; `options` NULL or valid;
/// `out_engine` writable.
#[no_mangle]
pub unsafe extern "C" fn ts_registry_engine_open(
    registry: *const TsRegistry,
    model: *const c_char,
    options: *const TsEngineOptions,
    out_engine: *mut *mut TsEngine,
) -> TsStatus {
    ffi_boundary(|| {
        // SAFETY: the caller's contract.
        let (reg, model) = unsafe { (registry_ref(registry)?, req_str(model, "model")?) };
        non_null(out_engine, "out_engine")?;
        // SAFETY: NULL or valid by contract.
        let config = unsafe { engine_config(options) }?;
        let d = reg.serving(model)?;
        let engine = Engine::start_deployment(&d, &config)?;
        let handle = Box::into_raw(Box::new(TsEngine { engine }));
        // SAFETY: non-NULL (checked); writable by contract.
        unsafe { out_engine.write(handle) };
        Ok(())
    })
}
