//! `TaskRegistrar`: asyncio's registration of a new Task, done without Python frames.
//!
//! asyncio keeps every Task in a `WeakSet` (`asyncio.tasks._all_tasks` on 3.11,
//! `_scheduled_tasks` on 3.12 and 3.13) that its C Task calls `add` on when it is
//! created, and whose weak reference calls back into Python when the Task dies: about
//! 1,850 instructions per request on 3.11, where every app's Task is registered. Set as
//! the set's own `add`, a registrar stores the same weak reference in the same underlying
//! set, with the set's `discard` as its callback: `asyncio.all_tasks()` sees the same
//! Tasks. The one difference: a Task that dies while the set is being iterated is
//! discarded at once instead of after the iteration, so that iteration raises
//! `RuntimeError`, which `asyncio.all_tasks()` already retries.

use pyo3::prelude::*;
use pyo3::types::{PySet, PyWeakrefReference};

use crate::key;

#[pyclass(frozen, module = "ruvicorn._native")]
pub struct TaskRegistrar {
    /// The `WeakSet`'s `data`: a set of weak references.
    refs: Py<PySet>,
    /// `refs.discard`, the callback of each weak reference.
    discard: Py<PyAny>,
}

#[pymethods]
impl TaskRegistrar {
    #[new]
    fn new(refs: Bound<'_, PySet>) -> PyResult<Self> {
        let discard = refs.getattr(key!(refs.py(), "discard"))?.unbind();
        Ok(Self {
            refs: refs.unbind(),
            discard,
        })
    }

    fn __call__(&self, task: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = task.py();
        let weak = PyWeakrefReference::new_with(task, self.discard.bind(py))?;
        self.refs.bind(py).add(weak)
    }
}
