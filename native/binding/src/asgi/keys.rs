//! Python strings and bytes every request uses, created once per process.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyString};

/// An interned `str` constant: `key!(py, "type")`.
#[macro_export]
macro_rules! key {
    ($py:expr, $text:literal) => {
        pyo3::intern!($py, $text)
    };
}

macro_rules! common_header_names {
    ($($name:literal),* $(,)?) => {
        /// The request header names most clients send, as shared `bytes` objects.
        pub fn common_header_name<'py>(py: Python<'py>, name: &[u8]) -> Option<Bound<'py, PyBytes>> {
            const NAMES: &[&[u8]] = &[$($name as &[u8]),*];
            static CELLS: [PyOnceLock<Py<PyBytes>>; NAMES.len()] =
                [const { PyOnceLock::new() }; NAMES.len()];
            let index = NAMES.iter().position(|candidate| *candidate == name)?;
            Some(CELLS[index].get_or_init(py, || PyBytes::new(py, NAMES[index]).unbind()).bind(py).clone())
        }
    };
}

common_header_names!(
    b"host",
    b"user-agent",
    b"accept",
    b"accept-encoding",
    b"accept-language",
    b"connection",
    b"content-length",
    b"content-type",
    b"cookie",
    b"authorization",
    b"cache-control",
    b"origin",
    b"referer",
    b"upgrade",
    b"transfer-encoding",
    b"expect",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-request-id",
    b"forwarded",
    b"if-none-match",
    b"if-modified-since",
    b"pragma",
    b"sec-websocket-key",
    b"sec-websocket-version",
    b"sec-websocket-extensions",
    b"sec-websocket-protocol",
);

/// Methods as shared `str` objects; others are created per request.
pub fn method_str<'py>(py: Python<'py>, method: &[u8]) -> Bound<'py, PyString> {
    match method {
        b"GET" => key!(py, "GET").clone(),
        b"POST" => key!(py, "POST").clone(),
        b"PUT" => key!(py, "PUT").clone(),
        b"DELETE" => key!(py, "DELETE").clone(),
        b"HEAD" => key!(py, "HEAD").clone(),
        b"PATCH" => key!(py, "PATCH").clone(),
        b"OPTIONS" => key!(py, "OPTIONS").clone(),
        other => PyString::new(py, &String::from_utf8_lossy(other)),
    }
}
