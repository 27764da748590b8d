//! The atomics the lane and completion-slot protocols use: `std`'s, or
//! `loom`'s when the `loom` feature is on (for `tests/loom_lane.rs` only:
//! with it, nothing but a `loom::model` run may touch the runtime).

#[cfg(feature = "loom")]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
#[cfg(not(feature = "loom"))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// Sleep while `*word == expected` (futex; under loom, a yield).
#[inline]
pub(crate) fn wait(word: &AtomicU32, expected: u32) {
    #[cfg(not(feature = "loom"))]
    atomic_wait::wait(word, expected);
    #[cfg(feature = "loom")]
    {
        let _ = (word, expected);
        loom::thread::yield_now();
    }
}

/// Wake every thread sleeping on `word`.
#[inline]
pub(crate) fn wake_all(word: &AtomicU32) {
    #[cfg(not(feature = "loom"))]
    atomic_wait::wake_all(word);
    #[cfg(feature = "loom")]
    let _ = word;
}

/// The cheap half of an asymmetric fence, for the hot path (a submit):
/// only a compiler fence where the expensive half is a `membarrier`
/// system call, a full fence otherwise. Pairs with [`heavy_fence`].
#[inline]
pub(crate) fn light_fence() {
    #[cfg(all(target_os = "linux", not(feature = "loom")))]
    if asymmetric::ready() {
        std::sync::atomic::compiler_fence(Ordering::SeqCst);
        return;
    }
    fence_seq_cst();
}

/// The expensive half, for the rare side (a worker about to sleep,
/// shutdown): makes every other thread of the process run a full barrier
/// (`membarrier(PRIVATE_EXPEDITED)`), so either their stores before a
/// [`light_fence`] are visible after this returns, or their loads after
/// it see what this thread stored before this call.
pub(crate) fn heavy_fence() {
    #[cfg(all(target_os = "linux", not(feature = "loom")))]
    if asymmetric::ready() && asymmetric::barrier() {
        return;
    }
    fence_seq_cst();
}

/// Set up the asymmetric fence (once per process; idempotent). Must run
/// before any thread uses the pair: `Engine::start` calls it before it
/// spawns workers or hands out producers.
pub(crate) fn init_asymmetric_fence() {
    #[cfg(all(target_os = "linux", not(feature = "loom")))]
    asymmetric::init();
}

fn fence_seq_cst() {
    #[cfg(not(feature = "loom"))]
    std::sync::atomic::fence(Ordering::SeqCst);
    #[cfg(feature = "loom")]
    loom::sync::atomic::fence(Ordering::SeqCst);
}

#[cfg(all(target_os = "linux", not(feature = "loom")))]
mod asymmetric {
    use std::sync::atomic::{AtomicU8, Ordering};

    /// 0 not set up, 1 membarrier registered, 2 unavailable.
    static STATE: AtomicU8 = AtomicU8::new(0);
    const CMD_QUERY: libc::c_long = 0;
    const CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
    const CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

    fn membarrier(cmd: libc::c_long) -> libc::c_long {
        // SAFETY: membarrier takes (cmd, flags, cpu_id) by value and touches
        // no memory of ours; an unknown command fails with an error code.
        unsafe {
            libc::syscall(
                libc::SYS_membarrier,
                cmd,
                0 as libc::c_long,
                0 as libc::c_long,
            )
        }
    }

    pub fn init() {
        if STATE.load(Ordering::Acquire) != 0 {
            return;
        }
        let supported = membarrier(CMD_QUERY);
        let ok = supported > 0
            && supported & CMD_PRIVATE_EXPEDITED != 0
            && membarrier(CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
        // Both engines of a race register; either outcome is the same.
        STATE.store(if ok { 1 } else { 2 }, Ordering::Release);
    }

    #[inline]
    pub fn ready() -> bool {
        STATE.load(Ordering::Relaxed) == 1
    }

    /// The heavy barrier; `false` if the call failed. After a successful
    /// registration it cannot (the kernel documents two errors: an unknown
    /// command, and a process that did not register); the caller's
    /// fallback, a full fence, is only a last resort.
    pub fn barrier() -> bool {
        membarrier(CMD_PRIVATE_EXPEDITED) == 0
    }
}

/// Hint that the cache line holding `p` will be read by another core next:
/// `cldemote` moves it from this core's private caches to the shared L3,
/// so the other core's miss is served there instead of by a cross-core
/// snoop. A hint in the NOP space: CPUs without it execute a NOP.
#[inline(always)]
pub(crate) fn demote<T>(p: &T) {
    #[cfg(all(target_arch = "x86_64", not(feature = "loom")))]
    // SAFETY: cldemote only hints the cache hierarchy; it reads and writes
    // no memory, cannot fault, and `p` is a valid reference anyway.
    unsafe {
        std::arch::asm!("cldemote [{0}]", in(reg) p as *const T, options(nostack, preserves_flags, readonly));
    }
    #[cfg(not(all(target_arch = "x86_64", not(feature = "loom"))))]
    let _ = p;
}
