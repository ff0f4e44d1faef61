//! A counting global allocator: the fuzzer's memory judge.
//!
//! A parser that believes a corrupt size field allocates what the field says;
//! on a small image that is a bug even when the machine has the memory. The
//! binary (and the fuzz tests) install [`Counting`] as the global allocator;
//! the runner resets [`largest`] before each case and compares it afterwards
//! with what the input justifies. Requests beyond [`CEILING`] are refused
//! outright (the process aborts with Rust's allocation-failure message and the
//! runner's last-case file names the case), so a fuzz run never takes the
//! machine down.
//!
//! The counters are process-wide: the runner executes one case at a time, and
//! the watchdog thread allocates nothing while a case runs.

#![allow(unsafe_code)] // a GlobalAlloc is unsafe by definition; this one only forwards

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// No single allocation above this is ever made (4 GiB).
pub const CEILING: usize = 4 << 30;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

/// Forwards to the system allocator, recording the largest single request.
pub struct Counting;

fn note(size: usize) -> bool {
    LARGEST.fetch_max(size, Ordering::Relaxed);
    size <= CEILING
}

// SAFETY: every method forwards to `System` with the caller's own arguments;
// the only addition is an atomic counter and a refusal (null) above CEILING,
// which GlobalAlloc permits.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !note(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !note(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !note(new_size) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// The largest single allocation since the last [`reset`].
pub fn largest() -> usize {
    LARGEST.load(Ordering::Relaxed)
}

pub fn reset() {
    LARGEST.store(0, Ordering::Relaxed);
}

/// What an input of `len` bytes justifies in one allocation: a few times its
/// size (a decoded copy, a table per block) plus 64 MiB for fixed buffers
/// (2 MiB qcow2 clusters, 64 MiB zstd windows are the largest the formats allow).
pub fn justified(len: usize) -> usize {
    len.saturating_mul(4).saturating_add(64 << 20)
}
