//! HTTP/3 and QPACK error codes (RFC 9114 §8.1, RFC 9204 §6).

pub const NO_ERROR: u64 = 0x100;
pub const GENERAL_PROTOCOL_ERROR: u64 = 0x101;
pub const INTERNAL_ERROR: u64 = 0x102;
pub const STREAM_CREATION_ERROR: u64 = 0x103;
pub const CLOSED_CRITICAL_STREAM: u64 = 0x104;
pub const FRAME_UNEXPECTED: u64 = 0x105;
pub const FRAME_ERROR: u64 = 0x106;
pub const EXCESSIVE_LOAD: u64 = 0x107;
pub const ID_ERROR: u64 = 0x108;
pub const SETTINGS_ERROR: u64 = 0x109;
pub const MISSING_SETTINGS: u64 = 0x10a;
pub const REQUEST_REJECTED: u64 = 0x10b;
pub const REQUEST_CANCELLED: u64 = 0x10c;
pub const REQUEST_INCOMPLETE: u64 = 0x10d;
pub const MESSAGE_ERROR: u64 = 0x10e;
pub const QPACK_DECOMPRESSION_FAILED: u64 = 0x200;
pub const QPACK_ENCODER_STREAM_ERROR: u64 = 0x201;
pub const QPACK_DECODER_STREAM_ERROR: u64 = 0x202;
pub const CONNECT_ERROR: u64 = 0x10f;
pub const VERSION_FALLBACK: u64 = 0x110;

/// Whether a peer closing with `code` reports an error: a code this module names other
/// than `NO_ERROR`. Any other code, unknown or reserved, counts as `NO_ERROR` (RFC 9114
/// §8.1, §9).
pub fn signals_error(code: u64) -> bool {
    (GENERAL_PROTOCOL_ERROR..=VERSION_FALLBACK).contains(&code)
        || (QPACK_DECOMPRESSION_FAILED..=QPACK_DECODER_STREAM_ERROR).contains(&code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_named_error_codes_signal_an_error() {
        for code in [
            GENERAL_PROTOCOL_ERROR,
            MESSAGE_ERROR,
            VERSION_FALLBACK,
            QPACK_DECODER_STREAM_ERROR,
        ] {
            assert!(signals_error(code), "{code:#x}");
        }
        // NO_ERROR, an unknown code, a reserved one (0x1f * N + 0x21) and 0.
        for code in [NO_ERROR, 0x111, 0x1f * 7 + 0x21, 0, 0x1ff, 0x203] {
            assert!(!signals_error(code), "{code:#x}");
        }
    }
}
