//! Awaitables that complete without suspending, so `await receive()` / `await send()` cost no
//! Future and no trip through the event loop when nothing has to wait.

use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;

/// Completes at once with `value` (None when absent). One instance is awaited once.
#[pyclass(frozen, module = "ruvicorn._native")]
pub struct Ready {
    value: Option<Py<PyAny>>,
}

impl Ready {
    pub fn new(value: Option<Py<PyAny>>) -> Self {
        Self { value }
    }
}

#[pymethods]
impl Ready {
    fn __await__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        match &self.value {
            // StopIteration(value) is how an iterator-based awaitable returns a value.
            Some(value) => Err(PyStopIteration::new_err((value.clone_ref(py),))),
            None => Ok(None),
        }
    }

    fn send(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyAny>>> {
        let _ = value;
        self.__next__(py)
    }
}
