//! Asking the CPU for memory a fan-out will touch a few sessions on.
//!
//! A QoS 1 fan-out to a thousand sessions reads and writes each one's
//! session, its queues and its window, a chain of boxes each behind the
//! last. Between two messages the sockets' buffers go through the cache
//! and push them out, so each session of the routing loop waited on that
//! chain, a miss at a time, under the broker's lock.

/// A hint that `at` will be read soon. It reads nothing itself, so any
/// address will do, one past an end included.
#[inline(always)]
pub(crate) fn prefetch<T>(at: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: SSE, which the intrinsic needs, is in every x86_64 CPU;
        // and a prefetch does not access memory: it cannot fault or change
        // what any load or store sees, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(at.cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

/// The cache lines of the `T` at `at`, which may start anywhere in one.
#[inline(always)]
pub(crate) fn prefetch_whole<T>(at: *const T) {
    let lines = (at as usize % LINE + size_of::<T>()).div_ceil(LINE);
    for line in 0..lines {
        prefetch(at.cast::<u8>().wrapping_add(line * LINE));
    }
}

/// A cache line's bytes on x86_64.
const LINE: usize = 64;
