//! Awaitables that complete without suspending, so `await receive()` / `await send()` cost no
//! Future and no trip through the event loop when nothing has to wait.

use pyo3::exceptions::{PyBaseException, PyRuntimeError, PyStopIteration};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyModule;

/// A coroutine that returns its argument without suspending: 3.12+ resume it in the
/// awaiting frame's own evaluation loop, with no exception object for its value.
const READY_SOURCE: &std::ffi::CStr = c"async def ready(value):
    return value
";

static READY_FACTORY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// An awaitable whose result is `value`, available at once, and a coroutine on every
/// interpreter: a `ReadyValue` where `await` goes through `am_send` (3.11), else a
/// coroutine of `READY_SOURCE`.
pub fn ready_with<'py>(value: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = value.py();
    if awaits_through_send(py) {
        return Ok(Bound::new(
            py,
            ReadyValue {
                value: value.unbind(),
            },
        )?
        .into_any());
    }
    let factory = READY_FACTORY.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        let module =
            PyModule::from_code(py, READY_SOURCE, c"ruvicorn/_ready.py", c"ruvicorn._ready")?;
        Ok(module.getattr("ready")?.unbind())
    })?;
    factory.bind(py).call1((value,))
}

/// Whether `await` on this interpreter calls an awaitable's `am_send` (3.11's `SEND`
/// does; 3.12+ call `__next__`, which would have to raise `StopIteration(value)`).
fn awaits_through_send(py: Python<'_>) -> bool {
    static SEND_AWAITS: PyOnceLock<bool> = PyOnceLock::new();
    *SEND_AWAITS.get_or_init(py, || py.version_info() < (3, 12))
}

/// A value available at once. On 3.11 `await` reaches it through `am_send` (set by
/// `install_slots`), which hands the value back with no generator frame and no exception;
/// `__next__`, `send`, `throw` and `close` keep it a coroutine for any other caller.
#[pyclass(frozen, module = "ruvicorn._native")]
pub struct ReadyValue {
    value: Py<PyAny>,
}

#[pymethods]
impl ReadyValue {
    fn __await__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Finished at once: the value travels in `StopIteration`, as a coroutine's would.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        Err(PyStopIteration::new_err((self.value.clone_ref(py),)))
    }

    fn send(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyAny>>> {
        let _ = value;
        self.__next__(py)
    }

    #[pyo3(signature = (typ, val = None, tb = None))]
    fn throw(
        &self,
        typ: &Bound<'_, PyAny>,
        val: Option<&Bound<'_, PyAny>>,
        tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        Err(thrown(typ, val, tb)?)
    }

    fn close(&self) {}
}

/// What `throw()` raises in an awaitable that never suspends: the exception thrown in,
/// from where it was thrown.
fn thrown(
    typ: &Bound<'_, PyAny>,
    val: Option<&Bound<'_, PyAny>>,
    tb: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyErr> {
    let _ = tb;
    Ok(match val.filter(|val| !val.is_none()) {
        Some(val) if val.is_instance_of::<PyBaseException>() => PyErr::from_value(val.clone()),
        Some(val) => PyErr::from_value(typ.call1((val,))?),
        None if typ.is_instance_of::<PyBaseException>() => PyErr::from_value(typ.clone()),
        None => PyErr::from_value(typ.call0()?),
    })
}

/// `am_send` of `ReadyValue`: the value, returned (`PYGEN_RETURN`).
#[allow(unsafe_code)]
unsafe extern "C" fn ready_value_send(
    awaitable: *mut pyo3::ffi::PyObject,
    _sent: *mut pyo3::ffi::PyObject,
    result: *mut *mut pyo3::ffi::PyObject,
) -> pyo3::ffi::PySendResult {
    // SAFETY: CPython calls a type's `am_send` with the thread attached (GIL held); this
    // one is set on `ReadyValue`'s type alone, a final class, so `awaitable` is a live
    // `ReadyValue` borrowed for the call; `result` is CPython's out-pointer, which takes a
    // new (owned) reference.
    unsafe {
        let py = Python::assume_attached();
        let this = Borrowed::from_ptr(py, awaitable).cast_unchecked::<ReadyValue>();
        *result = this.get().value.clone_ref(py).into_ptr();
    }
    pyo3::ffi::PySendResult::PYGEN_RETURN
}

/// `am_await` of `Ready` and `ReadyValue`: the object itself (a new reference).
#[allow(unsafe_code)]
unsafe extern "C" fn await_itself(awaitable: *mut pyo3::ffi::PyObject) -> *mut pyo3::ffi::PyObject {
    // SAFETY: CPython calls `am_await` with the thread attached and a live object.
    unsafe { pyo3::ffi::Py_INCREF(awaitable) };
    awaitable
}

/// `tp_iternext` of `Ready`: exhausted, no exception set, which `await` reads as None.
#[allow(unsafe_code)]
unsafe extern "C" fn ready_next(_ready: *mut pyo3::ffi::PyObject) -> *mut pyo3::ffi::PyObject {
    std::ptr::null_mut()
}

/// `am_send` of `Ready`: None, returned (`PYGEN_RETURN`).
#[allow(unsafe_code)]
unsafe extern "C" fn ready_send(
    _ready: *mut pyo3::ffi::PyObject,
    _sent: *mut pyo3::ffi::PyObject,
    result: *mut *mut pyo3::ffi::PyObject,
) -> pyo3::ffi::PySendResult {
    // SAFETY: CPython's out-pointer takes a new reference, here to None.
    unsafe { *result = pyo3::ffi::Py_NewRef(pyo3::ffi::Py_None()) };
    pyo3::ffi::PySendResult::PYGEN_RETURN
}

/// The async slots of `T`'s heap type, to be written while no instance exists yet.
#[allow(unsafe_code)]
fn async_slots<T: pyo3::PyTypeInfo>(
    py: Python<'_>,
) -> PyResult<(*mut pyo3::ffi::PyTypeObject, *mut pyo3::ffi::PyAsyncMethods)> {
    let ty = py.get_type::<T>().as_type_ptr();
    // SAFETY: `ty` is the class's heap type, alive as the module holds it. A heap type's
    // `tp_as_async` points into the type object itself (its `__await__` makes pyo3 fill
    // it); it is checked for NULL here.
    let as_async = unsafe { (*ty).tp_as_async };
    if as_async.is_null() {
        return Err(PyRuntimeError::new_err(
            "awaitable class without async slots",
        ));
    }
    Ok((ty, as_async))
}

/// Give `ReadyValue` and `Ready` C slots that skip pyo3's call wrapper (each `await`
/// went through two) and the `am_send` pyo3 declares no slot for, before any instance
/// exists.
#[allow(unsafe_code)]
pub fn install_slots(py: Python<'_>) -> PyResult<()> {
    let (_, value_async) = async_slots::<ReadyValue>(py)?;
    let (ready_type, ready_async) = async_slots::<Ready>(py)?;
    // SAFETY: with the GIL held nothing else reads or writes these types' slots now (see
    // `async_slots`); each function written behaves as the pyo3 method it stands for.
    unsafe {
        (*value_async).am_await = Some(await_itself);
        (*value_async).am_send = Some(ready_value_send);
        (*ready_async).am_await = Some(await_itself);
        (*ready_async).am_send = Some(ready_send);
        (*ready_type).tp_iternext = Some(ready_next);
    }
    // Counted coroutines, as what they replace is, so that `asyncio.create_task(receive())`
    // and `asyncio.create_task(send(...))` still take them.
    let coroutine = py.import("collections.abc")?.getattr("Coroutine")?;
    coroutine.call_method1("register", (py.get_type::<ReadyValue>(),))?;
    coroutine.call_method1("register", (py.get_type::<Ready>(),))?;
    Ok(())
}

/// Completes at once with None. It holds no state, so one shared instance serves every
/// `await send()` that need not wait. `await` reaches its C slots (set by
/// `install_slots`); the methods keep it a coroutine for any other caller.
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

    /// Finished at once: `StopIteration` with no value, as a coroutine's would.
    fn send(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let _ = value;
        Err(PyStopIteration::new_err(()))
    }

    #[pyo3(signature = (typ, val = None, tb = None))]
    fn throw(
        &self,
        typ: &Bound<'_, PyAny>,
        val: Option<&Bound<'_, PyAny>>,
        tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        Err(thrown(typ, val, tb)?)
    }

    fn close(&self) {}
}
