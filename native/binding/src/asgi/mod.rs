//! The ASGI side: scopes, the `receive`/`send` callables of HTTP requests and
//! WebSockets, and the coroutine that runs an app in its Task.

pub mod cycle;
pub mod keys;
pub mod runner;
pub mod scope;
pub mod spawn;
pub mod task_registry;
pub mod websocket;
