//! The ASGI side of the protocol: scope building and the receive/send callables.

pub mod cycle;
pub mod keys;
pub mod runner;
pub mod scope;
pub mod spawn;
