//! `AppRunner`: the coroutine an app's asyncio Task runs.
//!
//! It steps the app's own coroutine and, in the same step in which the app returns or
//! raises, settles the response (500, or cutting a half-sent one). That replaces a
//! done-callback, which would cost every request a scheduled handle and two method calls.
//! The Task stays a real `asyncio.Task`: contextvars, cancellation (forwarded through
//! `throw`) and introspection (`cr_frame` and friends, forwarded to the app's coroutine)
//! behave as with the bare coroutine.

use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::exceptions::{PyException, PyStopIteration};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::iterator::PySendResult;
use pyo3::types::{PyDict, PyIterator, PyNone, PyType};

use crate::asgi::cycle::RequestCycle;
use crate::conn::{websocket_app_finished, HttpProtocol};
use crate::key;
use crate::server::ServerState;

#[pyclass(frozen, module = "ruvicorn._native")]
pub struct AppRunner {
    /// What the app returned (kept for attribute forwarding).
    coro: Py<PyAny>,
    /// What is actually stepped: the coroutine itself, or `coro.__await__()`.
    steps: Steps,
    protocol: Py<HttpProtocol>,
    seq: u64,
    serves: Serves,
    slot: TaskSlot,
}

/// What an app's runner serves.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Serves {
    /// A WebSocket: the app's end settles the handshake or closes the socket.
    WebSocket,
    /// An HTTP/1.1 exchange: the body parts its app sends in one step may be held and
    /// written together (`conn/cork.rs`), so its steps are marked.
    Http1Exchange,
    /// An HTTP/2 or HTTP/3 stream.
    Stream,
}

/// Counts the app as running in its worker (for `--limit-concurrency`) until it ends, is
/// closed, or its runner is dropped unfinished, whichever comes first.
struct TaskSlot {
    server: Py<ServerState>,
    held: AtomicBool,
    websocket: bool,
}

impl TaskSlot {
    fn take(server: Py<ServerState>, websocket: bool) -> Self {
        server.get().task_started(websocket);
        Self {
            server,
            held: AtomicBool::new(true),
            websocket,
        }
    }

    fn release(&self) {
        if self.held.swap(false, Ordering::Relaxed) {
            self.server.get().task_ended(self.websocket);
        }
    }
}

impl Drop for TaskSlot {
    fn drop(&mut self) {
        self.release();
    }
}

impl AppRunner {
    /// A runner for the app of exchange `seq`.
    pub fn new(
        awaitable: &Bound<'_, PyAny>,
        protocol: Py<HttpProtocol>,
        seq: u64,
        serves: Serves,
    ) -> PyResult<Self> {
        let py = awaitable.py();
        let steps = Steps::of(awaitable)?;
        let websocket = serves == Serves::WebSocket;
        let slot = TaskSlot::take(protocol.get().server().clone_ref(py), websocket);
        Ok(Self {
            coro: awaitable.clone().unbind(),
            steps,
            protocol,
            seq,
            serves,
            slot,
        })
    }

    /// The app is done (`error` when it raised an `Exception`).
    fn finished(&self, py: Python<'_>, error: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        self.slot.release();
        let protocol = self.protocol.bind(py);
        if self.serves == Serves::WebSocket {
            websocket_app_finished(protocol, self.seq, error)
        } else {
            RequestCycle::app_finished(protocol, self.seq, error)
        }
    }

    /// The app returned: make sure its response is complete.
    fn returned(&self, py: Python<'_>) -> PyResult<()> {
        self.finished(py, None)
    }

    /// The app raised. An `Exception` is logged and answered here and the Task ends
    /// normally; cancellation and other `BaseException`s propagate to the Task.
    fn raised(&self, py: Python<'_>, err: PyErr) -> PyResult<()> {
        if err.is_instance_of::<PyException>(py) {
            let value = err.into_value(py).into_bound(py).into_any();
            return self.finished(py, Some(value));
        }
        self.finished(py, None)?;
        Err(err)
    }

    /// Its Task could not be created after all (a deferred start): close the app's
    /// coroutine, never run, and settle the response as for an app that raised.
    pub fn not_started(&self, py: Python<'_>, err: PyErr) -> PyResult<()> {
        let closed = self.steps.object(py).call_method0(key!(py, "close"));
        let value = err.into_value(py).into_bound(py).into_any();
        self.finished(py, Some(value))?;
        closed.map(drop)
    }

    /// Its Task, created on the loop's turn after the app was called: an HTTP/2 or
    /// HTTP/3 stream keeps it, to cancel when the client resets the stream.
    pub fn task_created(&self, task: &Bound<'_, PyAny>) -> PyResult<()> {
        if self.serves != Serves::Stream {
            return Ok(());
        }
        HttpProtocol::keep_stream_task(self.protocol.bind(task.py()), self.seq, task)
    }

    /// `step` run as one step of the app, marked as such when its output may be held.
    fn marked<R>(&self, py: Python<'_>, step: impl FnOnce() -> R) -> R {
        if self.serves != Serves::Http1Exchange {
            return step();
        }
        let protocol = self.protocol.bind(py);
        protocol.get().step_begins();
        let outcome = step();
        HttpProtocol::step_ended(protocol);
        outcome
    }

    /// One step of the app and, when it ends, the settling of its response: app code for
    /// the server throughout (`TaskSpawner::spawn`), since settling may start the next app.
    fn step(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyAny>>> {
        let _app_code = self.slot.server.get().app_call();
        match self.marked(py, || self.steps.send(value)) {
            Ok(PySendResult::Next(yielded)) => Ok(Some(yielded.unbind())),
            Ok(PySendResult::Return(_)) => self.returned(py).map(|()| None),
            Err(err) => self.raised(py, err).map(|()| None),
        }
    }
}

#[pymethods]
impl AppRunner {
    fn __await__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// What the Task calls on each step (`send(None)` takes this path).
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.step(py, PyNone::get(py).as_any())
    }

    fn send(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.step(py, value)?
            .ok_or_else(|| PyStopIteration::new_err(()))
    }

    #[pyo3(signature = (typ, val=None, tb=None))]
    fn throw(
        &self,
        py: Python<'_>,
        typ: &Bound<'_, PyAny>,
        val: Option<&Bound<'_, PyAny>>,
        tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        // As in `step`: the app's code and the settling of its response.
        let _app_code = self.slot.server.get().app_call();
        let steps = self.steps.object(py);
        let result = self.marked(py, || match (val, tb) {
            (None, None) => steps.call_method1(key!(py, "throw"), (typ,)),
            (val, tb) => steps.call_method1(key!(py, "throw"), (typ, val, tb)),
        });
        match result {
            Ok(yielded) => Ok(yielded.unbind()),
            Err(err) if err.is_instance_of::<PyStopIteration>(py) => {
                self.returned(py)?;
                Err(err)
            }
            Err(err) => {
                self.raised(py, err)?;
                Err(PyStopIteration::new_err(()))
            }
        }
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.slot.release();
        self.steps.object(py).call_method0(key!(py, "close"))?;
        Ok(())
    }

    /// `cr_frame`, `cr_running`, `__qualname__`...: answered by the app's coroutine.
    fn __getattr__(
        &self,
        py: Python<'_>,
        name: &Bound<'_, pyo3::types::PyString>,
    ) -> PyResult<Py<PyAny>> {
        Ok(self.coro.bind(py).getattr(name)?.unbind())
    }
}

/// What an `AppRunner` steps.
enum Steps {
    /// A native coroutine (what an `async def` app returns), sent to directly: no
    /// `__await__` wrapper to create per request.
    Coroutine(Py<PyAny>),
    /// Any other awaitable's `__await__()` iterator.
    Iterator(Py<PyIterator>),
}

impl Steps {
    fn of(awaitable: &Bound<'_, PyAny>) -> PyResult<Self> {
        let py = awaitable.py();
        if awaitable.is_exact_instance(coroutine_type(py)?) {
            return Ok(Self::Coroutine(awaitable.clone().unbind()));
        }
        let steps = awaitable
            .call_method0(key!(py, "__await__"))?
            .cast_into::<PyIterator>()?;
        Ok(Self::Iterator(steps.unbind()))
    }

    /// The object whose `throw` and `close` methods reach the app.
    fn object<'py>(&self, py: Python<'py>) -> &Bound<'py, PyAny> {
        match self {
            Self::Coroutine(coro) => coro.bind(py),
            Self::Iterator(steps) => steps.bind(py).as_any(),
        }
    }

    fn send<'py>(&self, value: &Bound<'py, PyAny>) -> PyResult<PySendResult<'py>> {
        let py = value.py();
        match self {
            Self::Coroutine(coro) => send_to_coroutine(coro.bind(py), value),
            Self::Iterator(steps) => steps.bind(py).send(value),
        }
    }
}

/// `types.CoroutineType`.
fn coroutine_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    static TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    TYPE.import(py, "types", "CoroutineType")
}

/// `coro.send(value)` through `PyIter_Send`, which steps a native coroutine through its
/// `am_send` slot.
#[allow(unsafe_code)]
fn send_to_coroutine<'py>(
    coro: &Bound<'py, PyAny>,
    value: &Bound<'py, PyAny>,
) -> PyResult<PySendResult<'py>> {
    let py = coro.py();
    let mut result: *mut pyo3::ffi::PyObject = std::ptr::null_mut();
    // SAFETY: `coro` and `value` are valid references kept alive by their `Bound`s for the
    // whole call, and the GIL is held (`py`). `PyIter_Send` accepts any object (a native
    // coroutine takes its `am_send` slot) and sets `result` to a new (owned) reference on
    // PYGEN_NEXT and PYGEN_RETURN, and to NULL with an exception set on PYGEN_ERROR; each
    // owned reference is taken over exactly once below.
    let status = unsafe { pyo3::ffi::PyIter_Send(coro.as_ptr(), value.as_ptr(), &mut result) };
    match status {
        pyo3::ffi::PySendResult::PYGEN_NEXT => {
            // SAFETY: see above: `result` is a new reference on PYGEN_NEXT.
            Ok(PySendResult::Next(unsafe {
                Bound::from_owned_ptr(py, result)
            }))
        }
        pyo3::ffi::PySendResult::PYGEN_RETURN => {
            // SAFETY: see above: `result` is a new reference on PYGEN_RETURN.
            Ok(PySendResult::Return(unsafe {
                Bound::from_owned_ptr(py, result)
            }))
        }
        pyo3::ffi::PySendResult::PYGEN_ERROR => Err(PyErr::fetch(py)),
    }
}

/// Call the app with `(scope, receive, send)` and run what it returns in its own Task
/// through the runner `make_runner` builds; the Task is returned when it exists already
/// (see `TaskSpawner::spawn`). An exception raised before a Task exists is returned for the
/// caller to settle.
pub fn spawn_app<'py>(
    state: &ServerState,
    scope: Bound<'py, PyDict>,
    (receive, send): (Bound<'py, PyAny>, Bound<'py, PyAny>),
    make_runner: impl FnOnce(&Bound<'py, PyAny>) -> PyResult<AppRunner>,
) -> Result<Option<Bound<'py, PyAny>>, Bound<'py, PyAny>> {
    let py = scope.py();
    let run = || -> PyResult<Option<Bound<'py, PyAny>>> {
        let app = state.app.bind(py);
        // Inside app code the app is called in the context its Task will run in, so code
        // it runs before its coroutine starts sees no other request's variables either.
        let context = state.context_for_task(py)?;
        let awaitable = match &context {
            None => app.call1((scope, receive, send))?,
            Some(context) => context.call_method1(key!(py, "run"), (app, scope, receive, send))?,
        };
        let runner = Bound::new(py, make_runner(&awaitable)?)?;
        state.spawner.spawn(runner, context)
    };
    run().map_err(|err| err.into_value(py).into_bound(py).into_any())
}
