//! `ServerState`: what every connection of one worker shares, and the worker-wide operations
//! (timeouts, graceful drain) that act on all of its connections.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::asgi::scope::{asgi_dict, http_extensions_template, scope_template};
use crate::asgi::spawn::TaskSpawner;
use crate::awaitable::Ready;
use crate::conn::HttpProtocol;
use crate::metrics::Metrics;
use crate::settings::Settings;
use ruvicorn_core::http1::response::DateCache;
use ruvicorn_core::ids::IdMap;

thread_local! {
    static DATE: std::cell::RefCell<DateCache> = std::cell::RefCell::new(DateCache::new());
}

/// The open connections by id.
type Registry = IdMap<u64, Py<HttpProtocol>>;

/// Shared by all connections of a worker; built once by the Python worker.
#[pyclass(frozen, module = "ruvicorn._native")]
pub struct ServerState {
    pub settings: Settings,
    pub app: Py<PyAny>,
    /// How each app's Task is created.
    pub spawner: TaskSpawner,
    pub create_future: Py<PyAny>,
    pub access_log: Option<Py<PyAny>>,
    /// The access log format reads response headers (`%({name}o)s`): only then are they
    /// kept for the access record.
    pub access_response_headers: bool,
    /// Request counters shared with the master (`--metrics-bind`), else None.
    pub metrics: Option<Metrics>,
    pub error_log: Py<PyAny>,
    pub lifespan_state: Option<Py<PyDict>>,
    pub pathsend: Option<Py<PyAny>>,
    /// `await send(...)` needs no Future most of the time: this one is reused.
    pub ready_none: Py<Ready>,
    /// The loop's transports pause the protocol from `writelines` as from `write`
    /// (uvloop's do; asyncio's selector transports of Python 3.12 and 3.13.0 do not), so
    /// a large body part may go out as the app's own `bytes` (`Effects::wire`).
    pub vectored_writes: bool,
    http_template: Py<PyDict>,
    ws_template: Py<PyDict>,
    /// `http_extensions_template` when pathsend is served.
    http_extensions: Option<Py<PyDict>>,
    requests_served: AtomicU64,
    /// The request budget (0 = none): the request that spends it starts the drain and runs
    /// `on_limit` (the worker stops accepting), so no later connection is taken.
    request_budget: u64,
    on_limit: Option<Py<PyAny>>,
    /// App Tasks (HTTP and WebSocket) that have not finished yet.
    running: AtomicUsize,
    /// App code under way: an app's step (with the settling of its response), or an HTTP
    /// `send()`/`receive()` it (or a Task of its own) called. Nested when an app starts
    /// inside another's.
    app_calls: AtomicUsize,
    /// The context ruvicorn's loop callbacks run in, as at start: a Task started inside
    /// app code runs in a copy of it, not of that app's context.
    base_context: Py<PyAny>,
    overload_log: Mutex<RateLimitedCount>,
    draining: AtomicBool,
    restarting: AtomicBool,
    next_id: AtomicU64,
    connections: Mutex<Registry>,
}

/// The protocol factory of one listening socket (`ServerState::listener`).
#[pyclass(frozen, module = "ruvicorn._native")]
pub struct Listener {
    state: Py<ServerState>,
    address: Option<Py<PyTuple>>,
}

#[pymethods]
impl Listener {
    fn __call__(&self, py: Python<'_>) -> PyResult<HttpProtocol> {
        let address = self.address.as_ref().map(|a| a.clone_ref(py));
        HttpProtocol::new(self.state.clone_ref(py), address)
    }
}

/// Events counted between log lines written at most once a second.
#[derive(Debug, Default)]
pub struct RateLimitedCount {
    last_line: Option<Instant>,
    since: u64,
}

impl RateLimitedCount {
    /// Count one event; when a line is due, the events it reports (this one included).
    pub fn note(&mut self, now: Instant) -> Option<u64> {
        self.since += 1;
        if self
            .last_line
            .is_some_and(|at| now.saturating_duration_since(at) < Duration::from_secs(1))
        {
            return None;
        }
        self.last_line = Some(now);
        Some(std::mem::take(&mut self.since))
    }
}

#[pymethods]
impl ServerState {
    /// `config` is the worker's `ruvicorn.config.Config`; the rest are the live objects
    /// of this worker. `request_budget` is the request count after which the worker
    /// retires (0 = never), `on_limit` what it runs then. `metrics` is this worker's
    /// page of counters shared with the master (see `crate::metrics`), or None.
    #[new]
    #[pyo3(signature = (
        config, *, app, event_loop, error_log, access_log, lifespan_state, request_budget,
        on_limit, pathsend, metrics=None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        config: &Bound<'_, PyAny>,
        app: Py<PyAny>,
        event_loop: &Bound<'_, PyAny>,
        error_log: Py<PyAny>,
        access_log: Option<Py<PyAny>>,
        lifespan_state: Option<Py<PyDict>>,
        request_budget: u64,
        on_limit: Option<Py<PyAny>>,
        pathsend: Option<Py<PyAny>>,
        metrics: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let settings = Settings::from_config(config)?;
        let access_response_headers = match &access_log {
            Some(log) => log
                .bind(py)
                .getattr_opt(crate::key!(py, "response_headers"))?
                .is_some_and(|wanted| wanted.is_truthy().unwrap_or(false)),
            None => false,
        };
        let spawner = TaskSpawner::new(event_loop)?;
        let vectored_writes = event_loop
            .get_type()
            .module()?
            .to_str()?
            .starts_with("uvloop");
        let asgi = asgi_dict(py)?;
        let template = |websocket| {
            scope_template(
                py,
                &asgi,
                &settings.root_path,
                lifespan_state.is_some(),
                websocket,
            )
            .map(Bound::unbind)
        };
        let http_extensions = match &pathsend {
            Some(_) => Some(http_extensions_template(py)?.unbind()),
            None => None,
        };
        Ok(Self {
            http_template: template(false)?,
            ws_template: template(true)?,
            settings,
            app,
            spawner,
            create_future: event_loop.getattr("create_future")?.unbind(),
            access_log,
            access_response_headers,
            metrics: metrics.map(Metrics::new).transpose()?,
            error_log,
            lifespan_state,
            pathsend,
            ready_none: Py::new(py, Ready)?,
            vectored_writes,
            http_extensions,
            requests_served: AtomicU64::new(0),
            request_budget,
            on_limit,
            running: AtomicUsize::new(0),
            app_calls: AtomicUsize::new(0),
            base_context: py
                .import("contextvars")?
                .call_method0("copy_context")?
                .unbind(),
            overload_log: Mutex::new(RateLimitedCount::default()),
            draining: AtomicBool::new(false),
            restarting: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            connections: Mutex::new(Registry::default()),
        })
    }

    /// The protocol factory asyncio calls for each accepted connection; each asks its
    /// transport for the scope's `server`.
    fn __call__(slf: Py<Self>) -> PyResult<HttpProtocol> {
        HttpProtocol::new(slf, None)
    }

    /// The protocol factory of one listening socket. `address` is the scope's `server`
    /// for every connection it accepts when the listener alone decides it (one address,
    /// or a unix socket's path), so no connection asks its transport; None when each
    /// connection has its own (a wildcard address).
    fn listener(slf: Py<Self>, address: Option<Py<PyTuple>>) -> Listener {
        Listener {
            state: slf,
            address,
        }
    }

    #[getter]
    fn connections(&self) -> usize {
        self.registry().len()
    }

    /// App Tasks that have not finished yet.
    #[getter]
    fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    /// Enforce keep-alive, request-head, request-body and send timeouts; the worker calls
    /// this about once a second, so no connection needs a timer of its own.
    fn sweep(&self, py: Python<'_>) -> PyResult<()> {
        let now = Instant::now();
        for protocol in self.snapshot(py) {
            HttpProtocol::check_deadline(protocol.bind(py), now)?;
        }
        Ok(())
    }

    /// Graceful stop: every connection's next response says `connection: close`; idle ones
    /// linger for `drain_linger`, then half-close. `restart` says the worker is being
    /// replaced (WebSockets close with 1012) rather than the service going away (1001).
    #[pyo3(signature = (restart=false))]
    fn drain(&self, py: Python<'_>, restart: bool) -> PyResult<()> {
        self.restarting.store(restart, Ordering::Relaxed);
        self.draining.store(true, Ordering::Relaxed);
        for protocol in self.snapshot(py) {
            HttpProtocol::drain(protocol.bind(py))?;
        }
        Ok(())
    }

    /// Close every connection now (the graceful timeout ran out).
    fn close_all(&self, py: Python<'_>) -> PyResult<()> {
        for protocol in self.snapshot(py) {
            HttpProtocol::force_close(protocol.bind(py))?;
        }
        Ok(())
    }
}

/// App code under way (`ServerState::app_call`), counted until dropped.
pub struct AppCall<'a>(&'a AtomicUsize);

impl Drop for AppCall<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ServerState {
    pub fn scope_template<'py>(&self, py: Python<'py>, websocket: bool) -> &Bound<'py, PyDict> {
        if websocket {
            self.ws_template.bind(py)
        } else {
            self.http_template.bind(py)
        }
    }

    /// The `extensions` every HTTP scope copies, when it holds more than a TLS entry.
    pub fn extensions_template<'py>(&self, py: Python<'py>) -> Option<&Bound<'py, PyDict>> {
        self.http_extensions.as_ref().map(|t| t.bind(py))
    }

    /// Run `f` with the default response header lines (date, server, then --header
    /// values) in pieces, so an app's response copies them once, into its head.
    pub fn with_default_lines<R>(&self, f: impl FnOnce(&[&[u8]]) -> R) -> R {
        let settings = &self.settings;
        if !settings.date_header {
            return f(&[&settings.server_line, &settings.extra_lines]);
        }
        DATE.with(|date| {
            let mut date = date.borrow_mut();
            f(&[
                date.header_line(),
                &settings.server_line,
                &settings.extra_lines,
            ])
        })
    }

    /// The default response header lines as one buffer, for the server's own responses.
    pub fn default_lines(&self) -> Vec<u8> {
        let mut lines = Vec::with_capacity(96);
        if self.settings.date_header {
            DATE.with(|date| lines.extend_from_slice(date.borrow_mut().header_line()));
        }
        lines.extend_from_slice(&self.settings.server_line);
        lines.extend_from_slice(&self.settings.extra_lines);
        lines
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        // The registry lock never calls into Python, so poisoning only follows a panic.
        self.connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn snapshot(&self, py: Python<'_>) -> Vec<Py<HttpProtocol>> {
        self.registry().values().map(|p| p.clone_ref(py)).collect()
    }

    pub fn register(&self, protocol: Py<HttpProtocol>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.registry().insert(id, protocol);
        id
    }

    /// Returns the protocol reference so the caller drops it outside the lock.
    pub fn unregister(&self, id: u64) -> Option<Py<HttpProtocol>> {
        self.registry().remove(&id)
    }

    pub fn count_request(&self, py: Python<'_>) {
        let served = self.requests_served.fetch_add(1, Ordering::Relaxed) + 1;
        if self.request_budget == 0 || served != self.request_budget {
            return;
        }
        // Retiring starts with the request that spends the budget, not on a later tick.
        let outcome = self.drain(py, true).and_then(|()| match &self.on_limit {
            Some(hook) => hook.call0(py).map(drop),
            None => Ok(()),
        });
        if let Err(err) = outcome {
            let line = format!("Retiring at --limit-max-requests failed: {err}");
            let _ = self
                .error_log
                .bind(py)
                .call_method1(crate::key!(py, "error"), (line,));
        }
    }

    /// An app Task started; an HTTP one is a request in flight.
    pub fn task_started(&self, websocket: bool) {
        self.running.fetch_add(1, Ordering::Relaxed);
        if let (Some(metrics), false) = (&self.metrics, websocket) {
            metrics.in_flight(true);
        }
    }

    pub fn task_ended(&self, websocket: bool) {
        self.running.fetch_sub(1, Ordering::Relaxed);
        if let (Some(metrics), false) = (&self.metrics, websocket) {
            metrics.in_flight(false);
        }
    }

    /// App code runs (one step of an app, or an ASGI call it made) until the returned
    /// guard is dropped.
    pub fn app_call(&self) -> AppCall<'_> {
        self.app_calls.fetch_add(1, Ordering::Relaxed);
        AppCall(&self.app_calls)
    }

    /// The context for a Task started now: None from a loop callback (the Task copies
    /// the current one), a fresh copy of the start-up context inside app code.
    pub fn context_for_task<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        if self.app_calls.load(Ordering::Relaxed) == 0 {
            return Ok(None);
        }
        Ok(Some(
            self.base_context
                .bind(py)
                .call_method0(crate::key!(py, "copy"))?,
        ))
    }

    /// A new request would go beyond `--limit-concurrency`: more connections than the
    /// limit are open, or as many app Tasks as the limit are still running.
    pub fn over_capacity(&self) -> bool {
        self.settings.limit_concurrency.is_some_and(|limit| {
            self.running.load(Ordering::Relaxed) >= limit || self.registry().len() > limit
        })
    }

    /// Count one 503 for overload; the warning to log, at most one a second.
    pub fn overload_warning(&self, now: Instant) -> Option<String> {
        let refused = self
            .overload_log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .note(now)?;
        let limit = self.settings.limit_concurrency.unwrap_or(0);
        Some(match refused {
            1 => format!("Exceeded --limit-concurrency {limit}: answering 503"),
            n => format!(
                "Exceeded --limit-concurrency {limit}: {n} requests answered 503 since the last warning"
            ),
        })
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Draining because a replacement worker takes over (not because the service stops).
    pub fn is_restarting(&self) -> bool {
        self.restarting.load(Ordering::Relaxed)
    }

    /// The close code and reason for WebSockets cut by a graceful stop.
    pub fn shutdown_close(&self) -> (u16, &'static str) {
        if self.restarting.load(Ordering::Relaxed) {
            (
                ruvicorn_core::ws::close_code::SERVICE_RESTART,
                "service restart",
            )
        } else {
            (ruvicorn_core::ws::close_code::GOING_AWAY, "going away")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_one_line_a_second_reporting_what_was_held_back() {
        let start = Instant::now();
        let mut count = RateLimitedCount::default();
        assert_eq!(count.note(start), Some(1));
        for ms in [1, 10, 500, 999] {
            assert_eq!(count.note(start + Duration::from_millis(ms)), None);
        }
        assert_eq!(count.note(start + Duration::from_millis(1000)), Some(5));
        assert_eq!(count.note(start + Duration::from_millis(1500)), None);
        assert_eq!(count.note(start + Duration::from_secs(60)), Some(2));
        // A clock read before the last line (another thread's) is not a new second.
        assert_eq!(count.note(start), None);
    }
}
