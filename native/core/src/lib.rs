//! ruvicorn's sans-IO protocol core.
//!
//! Bytes in, events and bytes out: nothing here touches a socket, an event
//! loop or Python, so every rule is tested with plain byte slices and the
//! crate builds and tests without an interpreter. The pyo3 binding crate
//! (`native/binding`) drives it from asyncio.

pub mod http1;
pub mod http2;
pub mod http3;
pub mod ids;
pub mod proxy;
pub mod proxy_protocol;
mod rapid_reset;
pub mod syntax;
pub mod tls;
pub mod ws;
