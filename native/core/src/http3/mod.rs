//! HTTP/3 (RFC 9114) and QPACK (RFC 9204): the grammar layer. The server engine that uses
//! it lands next.
#![allow(dead_code)]

pub mod codes;
mod frame;
mod head;
mod qpack;
