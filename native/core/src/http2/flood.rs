//! Frames that cost the server work and give the application none: PING and SETTINGS
//! (each must be answered), and empty DATA frames that do not end their stream. The engine
//! answers them without limit, so their headers are counted here as bytes arrive, and a
//! client sending more than [`BUDGET`] of them within [`WINDOW`] (beyond a few per request)
//! is told to calm down.

use std::time::{Duration, Instant};

/// Such frames tolerated per window, plus [`PER_REQUEST`] for each request in it.
const BUDGET: u64 = 1000;
const PER_REQUEST: u64 = 10;
const WINDOW: Duration = Duration::from_secs(10);

const PREFACE_LEN: usize = 24;
/// Frame types and flags (RFC 9113 §6), shared with the unit tests.
pub(super) const DATA: u8 = 0x0;
pub(super) const SETTINGS: u8 = 0x4;
pub(super) const PING: u8 = 0x6;
pub(super) const ACK: u8 = 0x1;
pub(super) const END_STREAM: u8 = 0x1;

pub(super) struct FloodGuard {
    /// Preface bytes still to skip.
    preface: usize,
    header: [u8; 9],
    have: usize,
    /// Payload bytes of the current frame still to skip.
    skip: usize,
    since: Instant,
    frames: u64,
    requests: u64,
}

impl FloodGuard {
    pub(super) fn new() -> Self {
        Self {
            preface: PREFACE_LEN,
            header: [0; 9],
            have: 0,
            skip: 0,
            since: Instant::now(),
            frames: 0,
            requests: 0,
        }
    }

    /// A request was accepted: it earns a few more control frames.
    pub(super) fn request(&mut self) {
        self.requests += 1;
    }

    /// Count the frame headers in `data`; true once the client floods.
    pub(super) fn scan(&mut self, mut data: &[u8]) -> bool {
        let skip = self.preface.min(data.len());
        self.preface -= skip;
        data = &data[skip..];
        while !data.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(data.len());
                self.skip -= n;
                data = &data[n..];
                continue;
            }
            let n = (9 - self.have).min(data.len());
            self.header[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            if self.have == 9 {
                self.have = 0;
                let h = self.header;
                let len = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
                self.skip = len;
                let costly = match h[3] {
                    PING | SETTINGS => h[4] & ACK == 0,
                    DATA => len == 0 && h[4] & END_STREAM == 0,
                    _ => false,
                };
                if costly {
                    self.frames += 1;
                }
            }
        }
        let now = Instant::now();
        if now.duration_since(self.since) > WINDOW {
            self.since = now;
            self.frames = 0;
            self.requests = 0;
            return false;
        }
        self.frames > BUDGET + PER_REQUEST * self.requests
    }
}
