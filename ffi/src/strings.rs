//! Copying Rust strings into caller-owned C buffers.

use std::ffi::c_char;

/// Copy `s` into `buf` (capacity `len` bytes) as a NUL-terminated string,
/// truncated to `len - 1` bytes if needed. Does nothing if `buf` is NULL or
/// `len` is 0. Returns whether all of `s` fit.
///
/// # Safety
/// `buf` must be NULL or writable for `len` bytes.
pub(crate) unsafe fn copy_to_c(s: &str, buf: *mut c_char, len: usize) -> bool {
    if buf.is_null() || len == 0 {
        return s.is_empty();
    }
    let n = s.len().min(len - 1);
    // SAFETY: `buf` is writable for `len` bytes (this function's contract);
    // we write `n + 1 <= len` of them.
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr(), buf.cast::<u8>(), n);
        *buf.add(n) = 0;
    }
    n == s.len()
}
