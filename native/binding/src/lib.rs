//! ruvicorn's native protocol: the pyo3 classes asyncio drives, over the
//! sans-IO `ruvicorn_core` crate.

use pyo3::prelude::*;

mod asgi;
mod awaitable;
mod conn;
mod server;
mod settings;

#[pymodule(gil_used = true)]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<server::ServerState>()?;
    m.add_class::<conn::HttpProtocol>()?;
    m.add_class::<asgi::cycle::RequestCycle>()?;
    m.add_class::<asgi::runner::AppRunner>()?;
    m.add_class::<asgi::websocket::WebSocketCycle>()?;
    m.add_class::<awaitable::Ready>()?;
    m.add(
        "ClientDisconnected",
        m.py().get_type::<asgi::cycle::ClientDisconnected>(),
    )?;
    Ok(())
}
