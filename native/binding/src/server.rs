//! `ServerState`: what every connection of one worker shares, and the worker-wide operations
//! (timeouts, graceful drain) that act on all of its connections.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::asgi::scope::{asgi_template, scope_template};
use crate::asgi::spawn::TaskSpawner;
use crate::awaitable::Ready;
use crate::protocol::HttpProtocol;
use ruvicorn_core::http1::response::{is_field_value, is_token};
use ruvicorn_core::http1::Limits;
use ruvicorn_core::proxy::TrustedProxies;
use ruvicorn_core::ws::session::WsSettings;

/// Shared by all connections of a worker; built once by the Python worker.
#[pyclass(frozen, module = "ruvicorn._native")]
pub struct ServerState {
    pub app: Py<PyAny>,
    /// How each app's Task is created.
    pub spawner: TaskSpawner,
    pub create_future: Py<PyAny>,
    pub limits: Limits,
    pub root_path: String,
    /// Pre-serialised `server:` line (empty with --no-server-header).
    pub server_line: Vec<u8>,
    /// Pre-serialised --header lines.
    pub extra_lines: Vec<u8>,
    pub date_header: bool,
    pub access_log: Option<Py<PyAny>>,
    pub error_log: Py<PyAny>,
    pub lifespan_state: Option<Py<PyDict>>,
    pub proxies: Option<TrustedProxies>,
    pub keep_alive_timeout: Duration,
    pub header_timeout: Duration,
    /// While draining, how long an idle keep-alive connection waits for a request that may
    /// already be on its way before it half-closes.
    pub drain_linger: Duration,
    pub pathsend: Option<Py<PyAny>>,
    /// WebSocket settings; None with `--ws none` (upgrade requests then reach the app as
    /// plain HTTP).
    pub ws: Option<WsSettings>,
    /// `await send(...)` needs no Future most of the time: this one is reused.
    pub ready_none: Py<Ready>,
    http_template: Py<PyDict>,
    ws_template: Py<PyDict>,
    asgi: Py<PyDict>,
    requests_served: AtomicU64,
    /// The request budget (0 = none): the request that spends it starts the drain and runs
    /// `on_limit` (the worker stops accepting), so no later connection is taken.
    limit_max_requests: u64,
    on_limit: Option<Py<PyAny>>,
    /// `--limit-concurrency` (None = off).
    limit_concurrency: Option<usize>,
    /// App Tasks (HTTP and WebSocket) that have not finished yet.
    running: AtomicUsize,
    overload_log: Mutex<RateLimitedCount>,
    draining: AtomicBool,
    restarting: AtomicBool,
    next_id: AtomicU64,
    connections: Mutex<HashMap<u64, Py<HttpProtocol>>>,
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

fn header_lines(pairs: &Bound<'_, PyList>) -> PyResult<Vec<u8>> {
    let mut lines = Vec::new();
    for pair in pairs.iter() {
        let (name, value): (Vec<u8>, Vec<u8>) = pair.extract()?;
        if !is_token(&name) || !is_field_value(&value) {
            return Err(PyValueError::new_err("invalid default header"));
        }
        lines.extend_from_slice(&name.to_ascii_lowercase());
        lines.extend_from_slice(b": ");
        lines.extend_from_slice(&value);
        lines.extend_from_slice(b"\r\n");
    }
    Ok(lines)
}

#[pymethods]
impl ServerState {
    #[new]
    #[pyo3(signature = (
        *, app, event_loop, error_log, access_log=None, lifespan_state=None,
        limit_request_line=8190, limit_request_fields=100, limit_request_field_size=8190,
        limit_request_body=0, root_path=None, server_header=true, date_header=true,
        default_headers=None, forwarded_allow_ips=None, timeout_keep_alive=5.0,
        timeout_request_header=10.0, drain_linger=1.0, limit_max_requests=0, on_limit=None,
        pathsend=None, ws="auto", ws_max_size=16777216,
        ws_max_queue=32, ws_ping_interval=20.0, ws_ping_timeout=20.0,
        ws_per_message_deflate=true, limit_concurrency=0,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        app: Py<PyAny>,
        event_loop: &Bound<'_, PyAny>,
        error_log: Py<PyAny>,
        access_log: Option<Py<PyAny>>,
        lifespan_state: Option<Py<PyDict>>,
        limit_request_line: usize,
        limit_request_fields: usize,
        limit_request_field_size: usize,
        limit_request_body: u64,
        root_path: Option<String>,
        server_header: bool,
        date_header: bool,
        default_headers: Option<Bound<'_, PyList>>,
        forwarded_allow_ips: Option<&str>,
        timeout_keep_alive: f64,
        timeout_request_header: f64,
        drain_linger: f64,
        limit_max_requests: u64,
        on_limit: Option<Py<PyAny>>,
        pathsend: Option<Py<PyAny>>,
        ws: &str,
        ws_max_size: usize,
        ws_max_queue: usize,
        ws_ping_interval: f64,
        ws_ping_timeout: f64,
        ws_per_message_deflate: bool,
        limit_concurrency: usize,
    ) -> PyResult<Self> {
        let extra_lines = match default_headers {
            Some(pairs) => header_lines(&pairs)?,
            None => Vec::new(),
        };
        let spawner = TaskSpawner::new(event_loop)?;
        let http_template = scope_template(
            py,
            root_path.as_deref().unwrap_or(""),
            lifespan_state.is_some(),
            false,
        )?
        .unbind();
        let ws_template = scope_template(
            py,
            root_path.as_deref().unwrap_or(""),
            lifespan_state.is_some(),
            true,
        )?
        .unbind();
        let seconds = |value: f64| Duration::try_from_secs_f64(value.max(0.0));
        // Zero (or less) turns pings, or the wait for their pong, off.
        let optional = |value: f64| -> PyResult<Option<Duration>> {
            if value > 0.0 {
                Duration::try_from_secs_f64(value)
                    .map(Some)
                    .map_err(|e| PyValueError::new_err(e.to_string()))
            } else {
                Ok(None)
            }
        };
        let ws = match ws {
            "auto" => Some(WsSettings {
                max_size: ws_max_size,
                max_queue: ws_max_queue.max(1),
                ping_interval: optional(ws_ping_interval)?,
                ping_timeout: optional(ws_ping_timeout)?,
                per_message_deflate: ws_per_message_deflate,
            }),
            "none" => None,
            other => {
                return Err(PyValueError::new_err(format!(
                    "ws must be 'auto' or 'none', not {other:?}"
                )))
            }
        };
        Ok(Self {
            app,
            spawner,
            create_future: event_loop.getattr("create_future")?.unbind(),
            limits: Limits {
                request_line: limit_request_line,
                fields: limit_request_fields,
                field_size: limit_request_field_size,
                body: (limit_request_body > 0).then_some(limit_request_body),
            },
            root_path: root_path.unwrap_or_default(),
            server_line: if server_header {
                b"server: ruvicorn\r\n".to_vec()
            } else {
                Vec::new()
            },
            extra_lines,
            date_header,
            access_log,
            error_log,
            lifespan_state,
            proxies: forwarded_allow_ips.map(TrustedProxies::parse),
            keep_alive_timeout: seconds(timeout_keep_alive)
                .map_err(|e| PyValueError::new_err(e.to_string()))?,
            header_timeout: seconds(timeout_request_header)
                .map_err(|e| PyValueError::new_err(e.to_string()))?,
            drain_linger: seconds(drain_linger)
                .map_err(|e| PyValueError::new_err(e.to_string()))?,
            pathsend,
            ws,
            ready_none: Py::new(py, Ready)?,
            http_template,
            ws_template,
            asgi: asgi_template(py)?.unbind(),
            requests_served: AtomicU64::new(0),
            limit_max_requests,
            on_limit,
            limit_concurrency: (limit_concurrency > 0).then_some(limit_concurrency),
            running: AtomicUsize::new(0),
            overload_log: Mutex::new(RateLimitedCount::default()),
            draining: AtomicBool::new(false),
            restarting: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            connections: Mutex::new(HashMap::new()),
        })
    }

    /// The protocol factory asyncio calls for each accepted connection.
    fn __call__(slf: Py<Self>) -> HttpProtocol {
        HttpProtocol::new(slf)
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

    /// Enforce keep-alive and request-head timeouts; the worker calls this about once a
    /// second, so no connection needs a timer of its own.
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

impl ServerState {
    pub fn scope_template<'py>(&self, py: Python<'py>, websocket: bool) -> &Bound<'py, PyDict> {
        if websocket {
            self.ws_template.bind(py)
        } else {
            self.http_template.bind(py)
        }
    }

    pub fn asgi_template<'py>(&self, py: Python<'py>, _websocket: bool) -> &Bound<'py, PyDict> {
        self.asgi.bind(py)
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Py<HttpProtocol>>> {
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
        if self.limit_max_requests == 0 || served != self.limit_max_requests {
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

    pub fn task_started(&self) {
        self.running.fetch_add(1, Ordering::Relaxed);
    }

    pub fn task_ended(&self) {
        self.running.fetch_sub(1, Ordering::Relaxed);
    }

    /// A new request would go beyond `--limit-concurrency`: more connections than the
    /// limit are open, or as many app Tasks as the limit are still running.
    pub fn over_capacity(&self) -> bool {
        self.limit_concurrency.is_some_and(|limit| {
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
        let limit = self.limit_concurrency.unwrap_or(0);
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
