//! `TaskSpawner`: how an app's asyncio Task is created, per interpreter and event loop.
//!
//! - No task factory on the loop: `asyncio.Task(runner, loop=..., name=...)`. On Python
//!   3.12+ a Task started straight from the event loop (from `data_received`) is started
//!   eagerly, so an app that answers without suspending is done before the loop turns.
//! - A task factory on the loop (an app may install `asyncio.eager_task_factory`, say): it
//!   is honoured through `loop.create_task`.
//! - Either way, a Task is never started eagerly inside app code (a step of an app and the
//!   settling of its response, or an HTTP `send()`/`receive()` from any Task of the app's,
//!   counted by `ServerState::app_call`):
//!   a pipelined request whose app would start inside the previous app's `send()` gets a
//!   plain Task, or, with a factory, is created by the loop on its next turn. Otherwise
//!   each pipelined request would nest its app one level deeper in the previous one's
//!   stack. Such a Task runs in a copy of the context captured when the worker's server
//!   state was made (what the loop's callbacks run in, a copy of the same context), not
//!   in a copy of the previous app's.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::asgi::runner::AppRunner;
use crate::key;

pub struct TaskSpawner {
    event_loop: Py<PyAny>,
    /// `asyncio.Task`, or `loop.create_task` when the loop has a task factory.
    create: Py<PyAny>,
    /// Keyword arguments for `create`: the loop and a fixed name (no per-request "Task-N"
    /// string), none for a factory.
    kwargs: Py<PyDict>,
    /// Python 3.12+ without a factory: `kwargs` plus `eager_start=True`.
    eager_kwargs: Option<Py<PyDict>>,
    /// `asyncio.current_task`, with a factory: spawning depends on whether a Task runs.
    current_task: Option<Py<PyAny>>,
    factory: bool,
}

impl TaskSpawner {
    pub fn new(event_loop: &Bound<'_, PyAny>) -> PyResult<Self> {
        let py = event_loop.py();
        let asyncio = py.import("asyncio")?;
        let factory = !event_loop.call_method0("get_task_factory")?.is_none();
        let eager = py.version_info() >= (3, 12) && !factory;
        let kwargs = PyDict::new(py);
        let create = if factory {
            event_loop.getattr("create_task")?
        } else {
            kwargs.set_item("loop", event_loop)?;
            kwargs.set_item("name", "ruvicorn.request")?;
            asyncio.getattr("Task")?
        };
        let eager_kwargs = if eager {
            let eager_kwargs = kwargs.copy()?;
            eager_kwargs.set_item("eager_start", true)?;
            Some(eager_kwargs.unbind())
        } else {
            None
        };
        let current_task = if factory {
            Some(asyncio.getattr("current_task")?.unbind())
        } else {
            None
        };
        Ok(Self {
            event_loop: event_loop.clone().unbind(),
            create: create.unbind(),
            kwargs: kwargs.unbind(),
            eager_kwargs,
            current_task,
            factory,
        })
    }

    /// `loop.call_soon(callback)`.
    pub fn call_soon(&self, callback: Bound<'_, PyAny>) -> PyResult<()> {
        let py = callback.py();
        self.event_loop
            .bind(py)
            .call_method1(key!(py, "call_soon"), (callback,))?;
        Ok(())
    }

    /// Run `runner` in a Task of its own, returned unless its creation is deferred to the
    /// loop's next turn (the runner is then handed its Task, see `AppRunner::task_created`).
    /// `context` is given when app code is running (`ServerState::context_for_task`): the
    /// Task would start inside that code, and runs in `context` rather than a copy of the
    /// running app's. An error is one of creating the Task now; a deferred creation that
    /// fails settles the request.
    pub fn spawn<'py>(
        &self,
        runner: Bound<'py, AppRunner>,
        context: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let py = runner.py();
        if self.factory {
            // A factory may run anything in a Task (the app's own code too): ask asyncio.
            let nested = match &self.current_task {
                Some(current_task) => !current_task
                    .bind(py)
                    .call1((self.event_loop.bind(py),))?
                    .is_none(),
                None => false,
            };
            if nested || context.is_some() {
                let start = DeferredStart {
                    create: self.create.clone_ref(py),
                    runner: runner.unbind(),
                };
                let kwargs = PyDict::new(py);
                kwargs.set_item(key!(py, "context"), context)?;
                self.event_loop.bind(py).call_method(
                    key!(py, "call_soon"),
                    (start,),
                    Some(&kwargs),
                )?;
                return Ok(None);
            }
        }
        let kwargs = match (&context, &self.eager_kwargs) {
            (Some(context), _) => {
                let kwargs = self.kwargs.bind(py).copy()?;
                kwargs.set_item(key!(py, "context"), context)?;
                kwargs
            }
            (None, Some(eager_kwargs)) => eager_kwargs.bind(py).clone(),
            (None, None) => self.kwargs.bind(py).clone(),
        };
        let task = self.create.bind(py).call((runner,), Some(&kwargs))?;
        Ok(Some(task))
    }
}

/// `loop.create_task(runner)` on the loop's next turn.
#[pyclass(frozen, module = "ruvicorn._native")]
pub struct DeferredStart {
    create: Py<PyAny>,
    runner: Py<AppRunner>,
}

#[pymethods]
impl DeferredStart {
    fn __call__(&self, py: Python<'_>) -> PyResult<()> {
        let runner = self.runner.bind(py);
        match self.create.bind(py).call1((runner,)) {
            Ok(task) => runner.get().task_created(&task),
            Err(err) => runner.get().not_started(py, err),
        }
    }
}
