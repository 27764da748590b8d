//! The panic boundary every exported function runs inside: a panic becomes
//! `TS_STATUS_PANIC`, an error becomes its status plus the thread's last
//! error message; nothing unwinds into C or C++.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::status::{set_last_error, FfiError, TsStatus};

/// Run `f`, turning its error or panic into a status.
#[inline]
pub(crate) fn ffi_boundary(f: impl FnOnce() -> Result<(), FfiError>) -> TsStatus {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => TsStatus::Ok,
        Ok(Err(e)) => {
            set_last_error(e.message);
            e.status
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(format!("tickscore panicked (contained): {what}"));
            TsStatus::Panic
        }
    }
}

/// `Err(NullArgument)` naming the argument if `p` is NULL.
#[inline]
pub(crate) fn non_null<T>(p: *const T, name: &str) -> Result<(), FfiError> {
    if p.is_null() {
        Err(FfiError::new(
            TsStatus::NullArgument,
            format!("{name} is NULL"),
        ))
    } else {
        Ok(())
    }
}

/// A float slice from a C pointer and length: NULL and alignment checked.
///
/// # Safety
/// `p` must point to `len` readable floats that stay valid and unmodified
/// for the returned lifetime.
#[inline]
pub(crate) unsafe fn floats<'a>(
    p: *const f32,
    len: usize,
    name: &str,
) -> Result<&'a [f32], FfiError> {
    non_null(p, name)?;
    if !p.is_aligned() {
        return Err(FfiError::new(
            TsStatus::InvalidArgument,
            format!("{name} is not 4-byte aligned"),
        ));
    }
    // SAFETY: non-NULL and aligned (checked); length and validity are the
    // caller's contract, stated on every exported function.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// A mutable float slice from a C pointer and length (see [`floats`]).
///
/// # Safety
/// `p` must point to `len` writable floats, not aliased for the returned
/// lifetime.
#[inline]
pub(crate) unsafe fn floats_mut<'a>(
    p: *mut f32,
    len: usize,
    name: &str,
) -> Result<&'a mut [f32], FfiError> {
    non_null(p, name)?;
    if !p.is_aligned() {
        return Err(FfiError::new(
            TsStatus::InvalidArgument,
            format!("{name} is not 4-byte aligned"),
        ));
    }
    // SAFETY: as in `floats`, for writing.
    Ok(unsafe { std::slice::from_raw_parts_mut(p, len) })
}
