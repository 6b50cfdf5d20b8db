//! ruvicorn's native protocol: the pyo3 classes asyncio drives, over the
//! sans-IO `ruvicorn_core` crate.

use pyo3::prelude::*;

mod asgi;
mod awaitable;
mod conn;
mod heap;
mod metrics;
mod server;
mod settings;
mod shared;

// The module needs the GIL: a connection's state sits behind a mutex taken with
// `try_lock`, and contention is reported as re-entrance ("protocol re-entered while
// busy"). That holds only while the GIL serialises the calls into one protocol; on a
// free-threaded interpreter the module keeps the GIL on rather than turn two threads
// that meet at one connection into errors.
#[pymodule(gil_used = true)]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("METRICS_LAYOUT", metrics::layout(m.py())?)?;
    m.add_class::<server::ServerState>()?;
    m.add_class::<server::Listener>()?;
    m.add_class::<conn::HttpProtocol>()?;
    m.add_class::<conn::QuicEndpoint>()?;
    m.add_class::<conn::QuicTransport>()?;
    m.add_class::<asgi::cycle::RequestCycle>()?;
    m.add_class::<asgi::runner::AppRunner>()?;
    m.add_class::<asgi::websocket::WebSocketCycle>()?;
    m.add_class::<asgi::task_registry::TaskRegistrar>()?;
    m.add_class::<awaitable::Ready>()?;
    m.add_class::<awaitable::ReadyValue>()?;
    awaitable::install_slots(m.py())?;
    m.add_function(wrap_pyfunction!(settings::check_tls, m)?)?;
    m.add_function(wrap_pyfunction!(heap::trim_heap, m)?)?;
    m.add(
        "ClientDisconnected",
        m.py().get_type::<asgi::cycle::ClientDisconnected>(),
    )?;
    Ok(())
}
