//! The worker's settings, read from its `ruvicorn.config.Config` in one place.
//!
//! `Config` declares every setting and its default once; this module only reads the
//! resolved values (no default is written here) and turns them into the typed form the
//! connections use.

use std::sync::Arc;
use std::time::Duration;

use pyo3::conversion::FromPyObjectOwned;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::key;
use ruvicorn_core::http1::Limits;
use ruvicorn_core::http2::Settings as Http2Settings;
use ruvicorn_core::proxy::TrustedProxies;
use ruvicorn_core::syntax::{is_field_value, is_token};
use ruvicorn_core::tls::config::build;
use ruvicorn_core::tls::names::certificate_pem;
use ruvicorn_core::tls::rustls::ServerConfig;
use ruvicorn_core::tls::{alpn, ClientAuth, TlsOptions};
use ruvicorn_core::ws::session::WsSettings;

/// Longest an idle keep-alive connection of a retiring worker waits for a request that
/// may already be on its way (also capped by half the graceful timeout and by
/// `--timeout-keep-alive`). Shorter loses such requests; longer only delays the exit.
const DRAIN_LINGER: Duration = Duration::from_secs(1);

/// What every connection of a worker reads and nothing changes after start.
pub struct Settings {
    pub limits: Limits,
    pub root_path: String,
    /// Pre-serialised `server:` line (empty with --no-server-header).
    pub server_line: Vec<u8>,
    /// Pre-serialised --header lines.
    pub extra_lines: Vec<u8>,
    pub date_header: bool,
    /// Peers whose forwarding headers are honoured (None with --no-proxy-headers).
    pub proxies: Option<TrustedProxies>,
    /// With `--proxy-protocol`, the peers that may send a PROXY header (every connection
    /// must start with one): `--forwarded-allow-ips`.
    pub proxy_protocol: Option<TrustedProxies>,
    pub keep_alive_timeout: Duration,
    pub header_timeout: Duration,
    /// `--timeout-request-body`: longest a started request body may go without a byte
    /// from its client while the server reads (None = off).
    pub body_timeout: Option<Duration>,
    /// `--timeout-send`: longest the transport may stay paused writing (the client reads
    /// nothing that drains it) before the connection is aborted (None = off).
    pub send_timeout: Option<Duration>,
    /// While draining, how long an idle keep-alive connection waits for a request that may
    /// already be on its way before it half-closes.
    pub drain_linger: Duration,
    /// WebSocket settings; None with `--ws none` (upgrade requests then reach the app as
    /// plain HTTP).
    pub ws: Option<WsSettings>,
    /// `--limit-concurrency` (None = off).
    pub limit_concurrency: Option<usize>,
    /// TLS, when `--ssl-certfile` is set.
    pub tls: Option<TlsSettings>,
    /// HTTP/1.1 is served (`--http auto|1`).
    pub http1: bool,
    /// HTTP/2 is served (`--http auto|2`), with these limits.
    pub h2: Option<Http2Settings>,
    /// The `--h2-*` limits whatever `--http` says: HTTP/3 (`--http3`) takes its stream
    /// limits from them.
    pub streams: Http2Settings,
}

/// What a worker serves TLS with, loaded once after fork.
pub struct TlsSettings {
    pub config: Arc<ServerConfig>,
    /// The leaf certificate as PEM: the `tls` extension's `server_cert`.
    pub server_cert: String,
}

impl TlsSettings {
    /// Read the files and build the configuration: the one code path of the worker and of
    /// `check_tls`.
    fn load(options: &TlsOptions) -> PyResult<Self> {
        let built = build(options).map_err(|err| PyValueError::new_err(err.0))?;
        Ok(Self {
            config: built.config,
            server_cert: certificate_pem(&built.leaf),
        })
    }

    /// The same settings offering only the HTTP versions served over ALPN.
    fn offering(self, http1: bool, http2: bool) -> Self {
        let mut config = ServerConfig::clone(&self.config);
        config.alpn_protocols = alpn(http1, http2);
        Self {
            config: Arc::new(config),
            ..self
        }
    }

    fn from_config(config: &Bound<'_, PyAny>) -> PyResult<Option<Self>> {
        let py = config.py();
        let Some(certfile) = get::<Option<String>>(config, key!(py, "ssl_certfile"))? else {
            return Ok(None);
        };
        let options = TlsOptions {
            certfile,
            keyfile: get(config, key!(py, "ssl_keyfile"))?,
            password: get(config, key!(py, "ssl_keyfile_password"))?,
            ca_certs: get(config, key!(py, "ssl_ca_certs"))?,
            client_auth: client_auth(get(config, key!(py, "ssl_cert_reqs"))?)?,
            ciphers: get(config, key!(py, "ssl_ciphers"))?,
        };
        Self::load(&options).map(Some)
    }
}

fn client_auth(cert_reqs: i64) -> PyResult<ClientAuth> {
    ClientAuth::from_number(cert_reqs).map_err(|err| PyValueError::new_err(err.0))
}

/// Check TLS settings the way a worker loads them (files read, key decrypted and matched
/// to the certificate, chain order, cipher names, client CA): `ValueError` with one line
/// naming the problem, never a secret.
#[pyfunction]
#[pyo3(signature = (certfile, keyfile, password, ca_certs, cert_reqs, ciphers))]
pub fn check_tls(
    certfile: String,
    keyfile: Option<String>,
    password: Option<String>,
    ca_certs: Option<String>,
    cert_reqs: i64,
    ciphers: Option<String>,
) -> PyResult<()> {
    let options = TlsOptions {
        certfile,
        keyfile,
        password,
        ca_certs,
        client_auth: client_auth(cert_reqs)?,
        ciphers,
    };
    TlsSettings::load(&options).map(drop)
}

fn get<'py, T: FromPyObjectOwned<'py>>(
    config: &Bound<'py, PyAny>,
    name: &Bound<'py, PyString>,
) -> PyResult<T> {
    config
        .getattr(name)?
        .extract()
        .map_err(|_| PyValueError::new_err(format!("config.{name} has the wrong type")))
}

fn seconds(value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value.max(0.0)).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// Zero turns a WebSocket ping, the wait for its pong, the request body timeout or the send
/// timeout off.
fn optional_seconds(value: f64) -> PyResult<Option<Duration>> {
    if value > 0.0 {
        seconds(value).map(Some)
    } else {
        Ok(None)
    }
}

fn header_lines(pairs: Vec<(Vec<u8>, Vec<u8>)>) -> PyResult<Vec<u8>> {
    let mut lines = Vec::new();
    for (name, value) in pairs {
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

/// The decoded header-list bound of an HTTP/2 request: what the HTTP/1.1 limits allow a
/// request head (request line, then each field at its largest).
fn header_list_size(limits: &Limits) -> u32 {
    let total = limits
        .fields
        .saturating_mul(limits.field_size)
        .saturating_add(limits.request_line);
    u32::try_from(total).unwrap_or(u32::MAX)
}

impl Settings {
    /// Read every setting the connections use from a `Config`.
    pub fn from_config(config: &Bound<'_, PyAny>) -> PyResult<Self> {
        let py = config.py();
        // `--ws none` hands upgrades to the app as plain HTTP; every other choice (the
        // names of other implementations included) is served natively.
        let ws = if get::<String>(config, key!(py, "ws"))? == "none" {
            None
        } else {
            Some(WsSettings {
                max_size: get(config, key!(py, "ws_max_size"))?,
                max_queue: get::<usize>(config, key!(py, "ws_max_queue"))?.max(1),
                ping_interval: optional_seconds(get(config, key!(py, "ws_ping_interval"))?)?,
                ping_timeout: optional_seconds(get(config, key!(py, "ws_ping_timeout"))?)?,
                per_message_deflate: get(config, key!(py, "ws_per_message_deflate"))?,
            })
        };
        let spec: String = get(config, key!(py, "forwarded_allow_ips"))?;
        let trusted = |on: bool| on.then(|| TrustedProxies::parse(&spec));
        let proxies = trusted(get(config, key!(py, "proxy_headers"))?);
        let proxy_protocol = trusted(get(config, key!(py, "proxy_protocol"))?);
        let body: u64 = get(config, key!(py, "limit_request_body"))?;
        let concurrency: usize = get(config, key!(py, "limit_concurrency"))?;
        let http: String = get(config, key!(py, "http"))?;
        let limits = Limits {
            request_line: get(config, key!(py, "limit_request_line"))?,
            fields: get(config, key!(py, "limit_request_fields"))?,
            field_size: get(config, key!(py, "limit_request_field_size"))?,
            body: (body > 0).then_some(body),
        };
        let streams = Http2Settings {
            max_concurrent_streams: get(config, key!(py, "h2_max_concurrent_streams"))?,
            initial_window_size: get(config, key!(py, "h2_initial_window_size"))?,
            max_frame_size: get(config, key!(py, "h2_max_frame_size"))?,
            max_requests: get(config, key!(py, "h2_max_requests"))?,
            max_header_list_size: header_list_size(&limits),
            max_fields: limits.fields,
            max_field_size: limits.field_size,
            ..Http2Settings::default()
        };
        let h2 = (http == "auto" || http == "2").then_some(streams);
        let graceful: f64 = get(config, key!(py, "timeout_graceful_shutdown"))?;
        Ok(Self {
            limits,
            root_path: get(config, key!(py, "root_path"))?,
            server_line: if get(config, key!(py, "server_header"))? {
                b"server: ruvicorn\r\n".to_vec()
            } else {
                Vec::new()
            },
            extra_lines: header_lines(get(config, key!(py, "default_headers"))?)?,
            date_header: get(config, key!(py, "date_header"))?,
            proxies,
            proxy_protocol,
            keep_alive_timeout: seconds(get(config, key!(py, "timeout_keep_alive"))?)?,
            header_timeout: seconds(get(config, key!(py, "timeout_request_header"))?)?,
            body_timeout: optional_seconds(get(config, key!(py, "timeout_request_body"))?)?,
            send_timeout: optional_seconds(get(config, key!(py, "timeout_send"))?)?,
            drain_linger: DRAIN_LINGER.min(seconds(graceful / 2.0)?),
            ws,
            limit_concurrency: (concurrency > 0).then_some(concurrency),
            tls: TlsSettings::from_config(config)?
                .map(|tls| tls.offering(http != "2", h2.is_some())),
            http1: http != "2",
            h2,
            streams,
        })
    }
}
