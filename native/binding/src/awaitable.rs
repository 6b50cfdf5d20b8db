//! Awaitables that complete without suspending, so `await receive()` / `await send()` cost no
//! Future and no trip through the event loop when nothing has to wait.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyModule;

/// A generator-based coroutine that returns its argument without suspending. Awaiting a
/// finished generator hands the value back directly, where an iterator would have to raise
/// `StopIteration(value)`: an exception object per `receive()`.
const READY_SOURCE: &std::ffi::CStr = c"import types

@types.coroutine
def ready(value):
    return value
    yield
";

static READY_FACTORY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// An awaitable whose result is `value`, available at once.
pub fn ready_with<'py>(value: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = value.py();
    let factory = READY_FACTORY.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        let module =
            PyModule::from_code(py, READY_SOURCE, c"ruvicorn/_ready.py", c"ruvicorn._ready")?;
        Ok(module.getattr("ready")?.unbind())
    })?;
    factory.bind(py).call1((value,))
}

/// Completes at once with None. It holds no state, so one shared instance serves every
/// `await send()` that need not wait.
#[pyclass(frozen, module = "ruvicorn._native")]
pub struct Ready;

#[pymethods]
impl Ready {
    fn __await__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Exhausted at once: `await` yields None without raising an exception object.
    fn __next__(&self) -> Option<Py<PyAny>> {
        None
    }

    fn send(&self, value: &Bound<'_, PyAny>) -> Option<Py<PyAny>> {
        let _ = value;
        None
    }
}
