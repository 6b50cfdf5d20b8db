//! Counters in memory another process reads: `unsafe` behind a safe API (one of two places
//! with `unsafe`; the other steps an app's coroutine, `asgi/runner.rs`).
//!
//! The master maps a page it shares with each worker (`ruvicorn.supervisor.heartbeat`) and
//! the worker hands its counter slots to the native protocol as a writable Python buffer.
//! `SharedCounters` views those bytes as `[AtomicU64]`, so counting is one relaxed atomic
//! add straight into the page: whatever instant a worker dies at, every count it made is
//! already where the master reads it.
#![allow(unsafe_code)]

use std::sync::atomic::AtomicU64;

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// `N` unsigned 64-bit counters in a buffer that may be shared with other processes. `N` is
/// a constant so that a constant slot needs no bounds check on the hot path.
pub struct SharedCounters<const N: usize> {
    /// The buffer export. Holding it holds a reference to the exporting object and keeps the
    /// export open, so the memory stays valid: CPython's `mmap.close()` (and
    /// `mmap.resize()`, `memoryview.release()`) refuse with `BufferError` while an export
    /// exists, and the exporter cannot be freed while referenced. Released (with the GIL)
    /// on drop.
    buffer: PyBuffer<u64>,
}

impl<const N: usize> SharedCounters<N> {
    /// `buffer` must be a writable, C-contiguous buffer of exactly `N` native `u64`
    /// (format `Q`), aligned for `AtomicU64`; anything else is a one-line ValueError.
    pub fn new(buffer: &Bound<'_, PyAny>) -> PyResult<Self> {
        let wrong = || {
            PyValueError::new_err(format!(
                "metrics must be a writable buffer of {N} aligned unsigned 64-bit integers"
            ))
        };
        let buffer = PyBuffer::<u64>::get(buffer).map_err(|_| wrong())?;
        let ptr = buffer.buf_ptr();
        let fits = !buffer.readonly()
            && buffer.is_c_contiguous()
            && buffer.item_count() == N
            && buffer.len_bytes() == size_of::<[AtomicU64; N]>()
            && !ptr.is_null()
            && ptr.cast::<AtomicU64>().is_aligned();
        if !fits {
            return Err(wrong());
        }
        Ok(Self { buffer })
    }

    /// The counters, as atomics: the only access there is to the shared bytes.
    #[inline]
    pub fn atomics(&self) -> &[AtomicU64; N] {
        // SAFETY: `buf_ptr()` is the start of the exported memory, which stays mapped and
        // valid for as long as `self.buffer` holds the export (see the field), and the
        // returned reference borrows `self`, so it cannot outlive the export. `new` checked
        // that the pointer is non-null and aligned for `AtomicU64` (an array's alignment is
        // its element's), that the buffer is writable and C-contiguous, and that it spans
        // exactly `size_of::<[AtomicU64; N]>()` bytes; the exporter never moves its memory
        // while exported (the buffer protocol's contract). `AtomicU64` has the size and bit
        // validity of `u64` (every bit pattern is a valid value), and its `UnsafeCell` makes
        // a shared reference to memory that others change sound as long as every access is
        // atomic: through this reference only atomic operations are possible, the worker's
        // Python code hands the buffer over and never touches it again, and the master
        // reads the page from another process (aligned 8-byte loads), outside this
        // process's memory model.
        unsafe { &*self.buffer.buf_ptr().cast::<[AtomicU64; N]>() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::Ordering::Relaxed;

    use pyo3::types::PyDict;

    /// Run `code` after `page = <a shared anonymous mapping of one page>`; its locals.
    fn run<'py>(py: Python<'py>, code: &str) -> Bound<'py, PyDict> {
        let locals = PyDict::new(py);
        let source = format!(
            "import mmap\npage = mmap.mmap(-1, mmap.PAGESIZE, flags=mmap.MAP_SHARED)\n{code}"
        );
        let source = std::ffi::CString::new(source).expect("test code has no NUL");
        py.run(&source, None, Some(&locals))
            .expect("test code runs");
        locals
    }

    fn local<'py>(locals: &Bound<'py, PyDict>, name: &str) -> Bound<'py, PyAny> {
        locals.get_item(name).ok().flatten().expect(name)
    }

    fn attach<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> R {
        Python::initialize();
        Python::attach(f)
    }

    #[test]
    fn counts_land_in_the_shared_mapping() {
        attach(|py| {
            let env = run(py, "view = memoryview(page)[64:64 + 8 * 3].cast('Q')");
            let counters = SharedCounters::<3>::new(&local(&env, "view")).expect("counters");
            let slots = counters.atomics();
            slots[0].fetch_add(2, Relaxed);
            slots[2].fetch_add(5, Relaxed);
            slots[2].fetch_add(1, Relaxed);
            slots[1].fetch_sub(1, Relaxed);
            assert_eq!(slots[0].load(Relaxed), 2);
            assert_eq!(slots[1].load(Relaxed), u64::MAX);
            let seen: Vec<u64> = py
                .import("struct")
                .and_then(|s| s.call_method1("unpack_from", ("3Q", local(&env, "page"), 64)))
                .and_then(|t| t.extract())
                .expect("the page reads back");
            assert_eq!(seen, vec![2, u64::MAX, 6]);
        });
    }

    #[test]
    fn the_mapping_cannot_be_closed_while_counted_into() {
        attach(|py| {
            let env = run(py, "view = memoryview(page)[:16].cast('Q')");
            let counters = SharedCounters::<2>::new(&local(&env, "view")).expect("counters");
            env.del_item("view").expect("the view is dropped");
            let page = local(&env, "page");
            let closed = page.call_method0("close");
            assert!(closed.is_err(), "mmap.close() refuses while exported");
            counters.atomics()[1].fetch_add(3, Relaxed);
            assert_eq!(counters.atomics()[1].load(Relaxed), 3);
            drop(counters);
            page.call_method0("close").expect("closes once released");
        });
    }

    #[test]
    fn a_buffer_of_the_wrong_shape_is_refused() {
        attach(|py| {
            let env = run(
                py,
                "readonly = memoryview(bytes(16)).cast('Q')\n\
                 short = memoryview(page)[:8].cast('Q')\n\
                 bytes_ = memoryview(page)[:16]\n\
                 strided = memoryview(page)[:32].cast('Q')[::2]\n\
                 misaligned = memoryview(bytearray(24))[1:17].cast('Q')",
            );
            for name in ["readonly", "short", "bytes_", "strided", "misaligned"] {
                let err = SharedCounters::<2>::new(&local(&env, name))
                    .err()
                    .expect(name);
                assert!(err.is_instance_of::<PyValueError>(py), "{name}: {err}");
            }
            let err = SharedCounters::<2>::new(&py.None().into_bound(py)).err();
            assert!(err.is_some(), "None is no buffer");
        });
    }
}
