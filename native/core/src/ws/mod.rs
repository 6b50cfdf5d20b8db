//! WebSocket (RFC 6455) with permessage-deflate (RFC 7692), sans-IO.
//!
//! Nothing here touches a socket or Python: the HTTP/1.1 protocol feeds the
//! bytes it reads into a [`message::WsReader`] and writes the bytes that the
//! encoders produce, so every rule can be tested with plain byte slices.
//!
//! - [`handshake`]: validating the upgrade request, `Sec-WebSocket-Accept`,
//!   subprotocol lists and the `101 Switching Protocols` head.
//! - [`deflate`]: permessage-deflate negotiation and the per-connection
//!   compressor / decompressor.
//! - [`frame`]: the frame decoder (client frames, masked) and encoder (server
//!   frames, never masked).
//! - [`message`]: fragment assembly, decompression, UTF-8 and close-frame
//!   validation, and the message encoder.

pub mod deflate;
pub(crate) mod frame;
pub mod handshake;
pub mod message;
pub mod session;

use std::fmt;

/// Close status codes (RFC 6455 section 7.4.1, and the IANA registry).
pub mod close_code {
    /// The purpose of the connection has been fulfilled.
    pub const NORMAL: u16 = 1000;
    /// The server is going down or the client navigated away.
    pub const GOING_AWAY: u16 = 1001;
    /// The peer broke the protocol.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// Never sent: stands for "the close frame had no status code".
    pub const NO_STATUS_RCVD: u16 = 1005;
    /// Never sent: stands for "the connection dropped without a close frame".
    pub const ABNORMAL_CLOSURE: u16 = 1006;
    /// A text message that is not UTF-8, or a close reason that is not.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A message that violates the endpoint's policy.
    pub const POLICY_VIOLATION: u16 = 1008;
    /// A frame or message larger than the endpoint accepts.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: u16 = 1010;
    /// The server hit an unexpected condition.
    pub const INTERNAL_ERROR: u16 = 1011;
    /// The server is restarting.
    pub const SERVICE_RESTART: u16 = 1012;
    /// The server is overloaded; try again later.
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

/// A violation by the peer: the connection must be closed with `code`.
///
/// `reason` is short ASCII (well under the 123 bytes a close frame allows),
/// so it can go straight into [`frame::encode_close`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsError {
    /// The close code to send (1002, 1007 or 1009).
    pub code: u16,
    /// Why, in a few words.
    pub reason: &'static str,
}

impl WsError {
    pub(crate) const fn protocol(reason: &'static str) -> Self {
        Self {
            code: close_code::PROTOCOL_ERROR,
            reason,
        }
    }

    pub(crate) const fn invalid_payload(reason: &'static str) -> Self {
        Self {
            code: close_code::INVALID_PAYLOAD,
            reason,
        }
    }

    pub(crate) const fn too_big(reason: &'static str) -> Self {
        Self {
            code: close_code::MESSAGE_TOO_BIG,
            reason,
        }
    }
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason, self.code)
    }
}

impl std::error::Error for WsError {}
