//! ruvicorn's native core: the HTTP/1.1 protocol object that asyncio drives.

use pyo3::prelude::*;

mod asgi;
mod awaitable;
mod connection;
pub mod http1;
mod protocol;
mod proxy;
mod server;
mod websocket;
pub mod ws;

#[pymodule(gil_used = true)]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<server::ServerState>()?;
    m.add_class::<protocol::HttpProtocol>()?;
    m.add_class::<asgi::cycle::RequestCycle>()?;
    m.add_class::<asgi::runner::AppRunner>()?;
    m.add_class::<websocket::cycle::WebSocketCycle>()?;
    m.add_class::<awaitable::Ready>()?;
    m.add(
        "ClientDisconnected",
        m.py().get_type::<asgi::cycle::ClientDisconnected>(),
    )?;
    Ok(())
}
