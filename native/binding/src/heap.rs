//! Returning the C heap's free pages to the kernel once a worker has started.
//!
//! Importing modules and starting the app leave freed blocks all over the C heap (the
//! allocator Python uses for anything larger than its small objects): bytecode files
//! read and unmarshalled, parse buffers, temporary lists. The allocator keeps those
//! pages, so they stay in the worker's resident set for its whole life although nothing
//! uses them. glibc's `malloc_trim` hands every free page back (it releases the middle
//! of the heap too, not only its top), once, before the worker serves.

use pyo3::prelude::*;

/// Give the free pages of the C heap back to the kernel; True when any were released.
/// A no-op (False) where the C library has no `malloc_trim`.
#[pyfunction]
pub fn trim_heap(py: Python<'_>) -> bool {
    // Not under the GIL: it walks every arena of the heap, which another thread of the
    // process (logging, a thread pool) might be waiting to allocate from.
    py.detach(trim)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim() -> bool {
    unsafe extern "C" {
        fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }
    // SAFETY: `malloc_trim` takes no pointer and only returns unused memory to the
    // kernel; glibc serialises it with every other allocation through its arena locks.
    unsafe { malloc_trim(0) != 0 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() -> bool {
    false
}
