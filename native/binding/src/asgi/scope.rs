//! Building the ASGI connection scope from a parsed request head.

use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::asgi::keys::{common_header_name, method_str};
use crate::key;
use crate::server::ServerState;
use ruvicorn_core::http1::request::RequestHead;
use ruvicorn_core::http1::target::{percent_decode, Target};
use ruvicorn_core::http1::Version;
use ruvicorn_core::proxy::{read_forwarded, TrustedProxies};
use ruvicorn_core::tls::info::ConnectionInfo;

/// What the scope needs to know about the connection, computed once when it is made.
pub struct Peer {
    /// `(host, port)` of the client, or None on a unix socket.
    pub client: Option<Py<PyTuple>>,
    /// `(host, port)` or `(path, None)` of the listening socket.
    pub server: Option<Py<PyTuple>>,
    /// The peer is a trusted proxy (its forwarding headers are honoured).
    pub trusted: bool,
    /// An HTTP scope was built for this peer already (`http_template`).
    served: AtomicBool,
    /// The server's HTTP scope template with this peer's `client` and `server` in it.
    http_template: PyOnceLock<Py<PyDict>>,
}

/// A request head as the scope reads it, whichever protocol parsed it.
pub trait HeadFields {
    fn method(&self) -> &[u8];
    fn http_version<'py>(&self, py: Python<'py>) -> &Bound<'py, PyString>;
    fn field_count(&self) -> usize;
    fn field_name(&self, index: usize) -> &[u8];
    fn field_value(&self, index: usize) -> &[u8];
    /// The protocol encrypts whatever the listener is (QUIC): the scheme is https.
    fn encrypted(&self) -> bool {
        false
    }
}

impl HeadFields for RequestHead {
    fn method(&self) -> &[u8] {
        RequestHead::method(self)
    }
    fn http_version<'py>(&self, py: Python<'py>) -> &Bound<'py, PyString> {
        match self.version {
            Version::Http10 => key!(py, "1.0"),
            Version::Http11 => key!(py, "1.1"),
        }
    }
    fn field_count(&self) -> usize {
        self.headers.len()
    }
    fn field_name(&self, index: usize) -> &[u8] {
        self.header_name(index)
    }
    fn field_value(&self, index: usize) -> &[u8] {
        self.header_value(index)
    }
}

impl HeadFields for ruvicorn_core::http2::RequestHead {
    fn method(&self) -> &[u8] {
        self.method.as_bytes()
    }
    fn http_version<'py>(&self, py: Python<'py>) -> &Bound<'py, PyString> {
        key!(py, "2")
    }
    fn field_count(&self) -> usize {
        self.headers.len()
    }
    fn field_name(&self, index: usize) -> &[u8] {
        &self.headers[index].0
    }
    fn field_value(&self, index: usize) -> &[u8] {
        &self.headers[index].1
    }
}

/// An HTTP/3 request head: HTTP/2's mapping, over QUIC.
pub struct Http3Head<'a>(pub &'a ruvicorn_core::http2::RequestHead);

impl HeadFields for Http3Head<'_> {
    fn method(&self) -> &[u8] {
        self.0.method()
    }
    fn http_version<'py>(&self, py: Python<'py>) -> &Bound<'py, PyString> {
        key!(py, "3")
    }
    fn field_count(&self) -> usize {
        self.0.field_count()
    }
    fn field_name(&self, index: usize) -> &[u8] {
        self.0.field_name(index)
    }
    fn field_value(&self, index: usize) -> &[u8] {
        self.0.field_value(index)
    }
    fn encrypted(&self) -> bool {
        true
    }
}

impl Peer {
    /// `client` is the client's `(host, port)` (None on a unix socket); `proxies` the
    /// peers whose forwarding headers are honoured.
    pub fn new(
        py: Python<'_>,
        client: Option<Py<PyTuple>>,
        server: Option<Py<PyTuple>>,
        proxies: Option<&TrustedProxies>,
    ) -> PyResult<Self> {
        let mut peer = Self {
            client,
            server,
            trusted: false,
            served: AtomicBool::new(false),
            http_template: PyOnceLock::new(),
        };
        if let Some(proxies) = proxies {
            peer.trusted = peer.listed_in(py, proxies)?;
        }
        Ok(peer)
    }

    /// Whether `proxies` lists this peer (a unix socket as `unix` or `*`).
    pub fn listed_in(&self, py: Python<'_>, proxies: &TrustedProxies) -> PyResult<bool> {
        let Some(client) = &self.client else {
            return Ok(trusts_peer(proxies, None));
        };
        // Read in place: the host needs no copy of its own.
        let client = client.bind(py);
        let host = client.get_borrowed_item(0)?;
        if let Ok(text) = host.cast::<PyString>() {
            return Ok(trusts_peer(proxies, Some(text.to_str()?)));
        }
        Ok(trusts_peer(proxies, Some(host.str()?.to_str()?)))
    }

    /// The template of this peer's HTTP scopes from its second request on: the server's,
    /// with `client` and `server` stored once. A keep-alive connection then copies them
    /// with the template instead of storing both per request; a connection that serves
    /// one request builds none (None: use the server's template).
    fn http_template<'py>(
        &self,
        py: Python<'py>,
        state: &ServerState,
    ) -> PyResult<Option<&Bound<'py, PyDict>>> {
        if !self.served.swap(true, Ordering::Relaxed) {
            return Ok(None);
        }
        let template = self.http_template.get_or_try_init(py, || {
            let template = state.scope_template(py, false).copy()?;
            template.set_item(key!(py, "client"), self.client.as_ref().map(|c| c.bind(py)))?;
            template.set_item(key!(py, "server"), self.server.as_ref().map(|s| s.bind(py)))?;
            PyResult::Ok(template.unbind())
        })?;
        Ok(Some(template.bind(py)))
    }

    /// The client's host as text, for log lines; None on a unix socket.
    pub fn client_host(&self, py: Python<'_>) -> Option<String> {
        let host = self.client.as_ref()?.bind(py).get_item(0).ok()?;
        Some(host.str().ok()?.to_string_lossy().into_owned())
    }
}

/// Whether `proxies` lists the peer `host` (None: a unix socket, listed as `unix` or `*`).
fn trusts_peer(proxies: &TrustedProxies, host: Option<&str>) -> bool {
    match host {
        Some(host) => proxies.trusts(host),
        None => proxies.trusts("unix") || proxies.trusts("*"),
    }
}

/// The ASGI `tls` extension (asgiref `specs/tls.rst`) of one connection.
pub fn tls_extension<'py>(
    py: Python<'py>,
    server_cert: &str,
    info: ConnectionInfo,
) -> PyResult<Bound<'py, PyDict>> {
    let ext = PyDict::new(py);
    ext.set_item(key!(py, "server_cert"), server_cert)?;
    ext.set_item(
        key!(py, "client_cert_chain"),
        PyList::new(py, info.client_cert_chain)?,
    )?;
    ext.set_item(key!(py, "client_cert_name"), info.client_cert_name)?;
    ext.set_item(key!(py, "client_cert_error"), py.None())?;
    ext.set_item(key!(py, "tls_version"), info.tls_version)?;
    ext.set_item(key!(py, "cipher_suite"), info.cipher_suite)?;
    Ok(ext)
}

/// Build the scope of an HTTP request (or of a WebSocket handshake when `websocket`);
/// `tls` is the connection's `tls` extension on a TLS connection.
pub fn build_scope<'py>(
    py: Python<'py>,
    state: &ServerState,
    peer: &Peer,
    head: &impl HeadFields,
    target: &Target<'_>,
    websocket: bool,
    tls: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    // Copying a template that already holds every key avoids growing a new dict, and its
    // values are the usual ones (`scope_template`): only those that differ are set.
    let peer_template = if websocket {
        None
    } else {
        peer.http_template(py, state)?
    };
    let scope = match peer_template {
        Some(template) => template.copy()?,
        None => state.scope_template(py, websocket).copy()?,
    };
    if !websocket && head.method() != b"GET" {
        scope.set_item(key!(py, "method"), method_str(py, head.method()))?;
    }
    let http_version = head.http_version(py);
    if !http_version.is(key!(py, "1.1")) {
        scope.set_item(key!(py, "http_version"), http_version)?;
    }

    // Built straight into the list: no intermediate Vec per request. An absolute-form
    // target names the host, and the Host header is ignored (RFC 9112 3.2.2): the app
    // sees the target's authority as its Host.
    let host_of = |name: &[u8]| {
        target
            .authority
            .filter(|_| name.eq_ignore_ascii_case(b"host"))
    };
    let headers = PyList::new(
        py,
        (0..head.field_count()).map(|index| {
            let name = head.field_name(index);
            let value = host_of(name).unwrap_or_else(|| head.field_value(index));
            let name = match common_header_name(py, name) {
                Some(shared) => shared,
                None => PyBytes::new(py, name),
            };
            (name, PyBytes::new(py, value))
        }),
    )?;
    if let Some(authority) = target.authority {
        if !(0..head.field_count()).any(|index| host_of(head.field_name(index)).is_some()) {
            headers.append((PyBytes::new(py, b"host"), PyBytes::new(py, authority)))?;
        }
    }

    let mut secure = tls.is_some() || head.encrypted();
    let mut client = peer.client.as_ref().map(|c| c.bind(py).clone().into_any());
    let mut forwarded_client = false;
    if peer.trusted {
        if let Some(proxies) = &state.settings.proxies {
            let pairs = (0..head.field_count()).map(|i| (head.field_name(i), head.field_value(i)));
            let forwarded = read_forwarded(proxies, pairs);
            if let Some(proto) = forwarded.scheme {
                secure = matches!(proto, "https" | "wss");
            }
            if let Some(host) = forwarded.client {
                client = Some((host, 0u16).into_pyobject(py)?.into_any());
                forwarded_client = true;
            }
        }
    }
    if secure {
        scope.set_item(key!(py, "scheme"), scheme_str(py, websocket, secure))?;
    }

    let decoded = percent_decode(target.raw_path);
    if state.settings.root_path.is_empty() {
        scope.set_item(key!(py, "path"), PyString::new(py, &decoded))?;
        scope.set_item(key!(py, "raw_path"), PyBytes::new(py, target.raw_path))?;
    } else {
        let path = format!("{}{}", state.settings.root_path, decoded);
        let mut raw = state.settings.root_path.as_bytes().to_vec();
        raw.extend_from_slice(target.raw_path);
        scope.set_item(key!(py, "path"), PyString::new(py, &path))?;
        scope.set_item(key!(py, "raw_path"), PyBytes::new(py, &raw))?;
    }
    if !target.query.is_empty() {
        scope.set_item(key!(py, "query_string"), PyBytes::new(py, target.query))?;
    }
    scope.set_item(key!(py, "headers"), headers)?;
    if peer_template.is_none() || forwarded_client {
        scope.set_item(key!(py, "client"), client)?;
    }
    if peer_template.is_none() {
        scope.set_item(key!(py, "server"), peer.server.as_ref().map(|s| s.bind(py)))?;
    }
    if let Some(lifespan_state) = &state.lifespan_state {
        scope.set_item(key!(py, "state"), lifespan_state.bind(py).copy()?)?;
    }
    let extensions = match state.extensions_template(py) {
        Some(template) if !websocket => template.copy()?,
        _ => PyDict::new(py),
    };
    if let Some(tls) = tls {
        extensions.set_item(key!(py, "tls"), tls)?;
    }
    scope.set_item(key!(py, "extensions"), extensions)?;
    Ok(scope)
}

/// The scope's scheme as a shared string: one of the four it can hold.
fn scheme_str(py: Python<'_>, websocket: bool, secure: bool) -> &Bound<'_, PyString> {
    match (websocket, secure) {
        (false, false) => key!(py, "http"),
        (false, true) => key!(py, "https"),
        (true, false) => key!(py, "ws"),
        (true, true) => key!(py, "wss"),
    }
}

/// The scope's keys in their usual order, with the values that never change per server
/// and, where a request usually has the same one, that value: HTTP/1.1, `GET`, no TLS, no
/// query string. `build_scope` sets a key of these only when its request differs, which
/// saves a dict store per key on most requests. `asgi` is the one `scope["asgi"]` every
/// scope of the worker shares (documented as read-only): it never differs.
pub fn scope_template<'py>(
    py: Python<'py>,
    asgi: &Bound<'py, PyDict>,
    root_path: &str,
    with_state: bool,
    websocket: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let scope = PyDict::new(py);
    let none = py.None();
    let kind = if websocket {
        key!(py, "websocket")
    } else {
        key!(py, "http")
    };
    scope.set_item(key!(py, "type"), kind)?;
    scope.set_item(key!(py, "asgi"), asgi)?;
    scope.set_item(key!(py, "http_version"), key!(py, "1.1"))?;
    if !websocket {
        scope.set_item(key!(py, "method"), key!(py, "GET"))?;
    }
    scope.set_item(key!(py, "scheme"), scheme_str(py, websocket, false))?;
    for name in [key!(py, "path"), key!(py, "raw_path")] {
        scope.set_item(name, &none)?;
    }
    scope.set_item(key!(py, "query_string"), PyBytes::new(py, b""))?;
    scope.set_item(key!(py, "root_path"), PyString::new(py, root_path))?;
    for name in [key!(py, "headers"), key!(py, "client"), key!(py, "server")] {
        scope.set_item(name, &none)?;
    }
    if websocket {
        scope.set_item(key!(py, "subprotocols"), &none)?;
    }
    if with_state {
        scope.set_item(key!(py, "state"), &none)?;
    }
    scope.set_item(key!(py, "extensions"), &none)?;
    Ok(scope)
}

/// `scope["asgi"]`. Spec version 2.4 is the newest implemented in full (`send()` after the
/// client left raises `OSError`).
pub fn asgi_dict(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let asgi = PyDict::new(py);
    asgi.set_item(key!(py, "version"), key!(py, "3.0"))?;
    asgi.set_item(key!(py, "spec_version"), key!(py, "2.4"))?;
    Ok(asgi)
}

/// An HTTP scope's `extensions` when `http.response.pathsend` is served: each request
/// gets a copy (an app may add to its own), which shares the empty capability dict.
pub fn http_extensions_template(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let extensions = PyDict::new(py);
    extensions.set_item(key!(py, "http.response.pathsend"), PyDict::new(py))?;
    Ok(extensions)
}
