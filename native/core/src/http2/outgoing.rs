//! The engine's output read frame by frame before it leaves, for what the engine does on
//! its own and does not tell: its stream resets.
//!
//! The engine refuses a stream past SETTINGS_MAX_CONCURRENT_STREAMS with RST_STREAM
//! REFUSED_STREAM, then forgets it and answers DATA the client had in flight on it with a
//! second RST_STREAM (STREAM_CLOSED), where RFC 9113 §5.1 says frames on a stream this side
//! reset are ignored: that second frame is dropped here. And it resets a malformed request
//! (PROTOCOL_ERROR) without reporting it: every reset for an error of the client's is
//! reported, for the log. Only frame headers (and a reset's code) are read; a frame split
//! across outputs is skipped whole (the engine writes whole frames, so it never is).

use std::collections::VecDeque;

use super::check::{REFUSED_STREAM, RST_STREAM, STREAM_CLOSED};

const HEADER_LEN: usize = 9;
const RST_LEN: usize = HEADER_LEN + 4;
/// Refused streams remembered, the most recent ones: an older one's late DATA is answered
/// as the engine does (only a client ignoring REFUSED_STREAM for long gets there).
const REMEMBERED: usize = 128;
/// Codes of resets that are no error of the client's (RFC 9113 §7): NO_ERROR,
/// INTERNAL_ERROR (the app failed), REFUSED_STREAM (over capacity), CANCEL.
const NOT_THE_CLIENTS: [u32; 4] = [0x0, 0x2, REFUSED_STREAM, 0x8];

#[derive(Default)]
pub(super) struct OutputScan {
    /// Bytes of a frame begun in an earlier output, still to come.
    skip: usize,
    /// The scan lost the frame boundaries (an output ended inside a frame header).
    lost: bool,
    refused: VecDeque<u32>,
}

impl OutputScan {
    /// Read `out`, drop the resets it must not carry, and add the streams reset for the
    /// client's errors, with their codes, to `errors`.
    pub(super) fn scan(&mut self, out: Vec<u8>, errors: &mut Vec<(u32, u32)>) -> Vec<u8> {
        let mut at = self.skip.min(out.len());
        self.skip -= at;
        let mut dropped: Vec<(usize, usize)> = Vec::new();
        while !self.lost && at < out.len() {
            let Some(header) = out.get(at..at + HEADER_LEN) else {
                self.lost = true;
                break;
            };
            let len =
                usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
            let end = at + HEADER_LEN + len;
            if end > out.len() {
                self.skip = end - out.len();
                break;
            }
            if header[3] == RST_STREAM && end == at + RST_LEN {
                let (stream, code) = (
                    be32(&out[at + 5..at + 9]) & 0x7fff_ffff,
                    be32(&out[at + 9..end]),
                );
                if self.late_reset(stream, code) {
                    dropped.push((at, end));
                } else if !NOT_THE_CLIENTS.contains(&code) {
                    errors.push((stream, code));
                }
            }
            at = end;
        }
        if dropped.is_empty() {
            return out;
        }
        let mut kept = Vec::with_capacity(out.len());
        let mut from = 0;
        for (start, end) in dropped {
            kept.extend_from_slice(&out[from..start]);
            from = end;
        }
        kept.extend_from_slice(&out[from..]);
        kept
    }

    /// Whether a reset is the engine's answer to frames on a stream it refused: remembers
    /// refusals, and tells the STREAM_CLOSED that follows one.
    fn late_reset(&mut self, stream: u32, code: u32) -> bool {
        match code {
            REFUSED_STREAM => {
                if self.refused.len() == REMEMBERED {
                    self.refused.pop_front();
                }
                self.refused.push_back(stream);
                false
            }
            STREAM_CLOSED => self.refused.contains(&stream),
            _ => false,
        }
    }
}

fn be32(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(0, |value, &byte| value << 8 | u32::from(byte))
}
