//! ruvicorn's native protocol: the pyo3 classes asyncio drives, over the
//! sans-IO `ruvicorn_core` crate.

use pyo3::prelude::*;

mod asgi;
mod awaitable;
mod protocol;
mod server;
mod websocket;

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
