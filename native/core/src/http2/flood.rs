//! Frames that cost the server work and give the application none: PING and SETTINGS
//! (each must be answered), and empty DATA frames that do not end their stream. The engine
//! answers them without limit, so [`super::check::FrameCheck`] counts them here as their
//! headers arrive, and a client sending more than [`BUDGET`] of them within [`WINDOW`]
//! (beyond a few per request) is told to calm down.

use std::time::{Duration, Instant};

use super::check::{ACK, DATA, END_STREAM, PING, SETTINGS};

/// Such frames tolerated per window, plus [`PER_REQUEST`] for each request in it.
const BUDGET: u64 = 1000;
const PER_REQUEST: u64 = 10;
const WINDOW: Duration = Duration::from_secs(10);

pub(super) struct FloodGuard {
    since: Instant,
    frames: u64,
    requests: u64,
}

impl FloodGuard {
    pub(super) fn new() -> Self {
        Self {
            since: Instant::now(),
            frames: 0,
            requests: 0,
        }
    }

    /// A request was accepted: it earns a few more control frames.
    pub(super) fn request(&mut self) {
        self.requests += 1;
    }

    /// Count one frame header.
    pub(super) fn frame(&mut self, kind: u8, flags: u8, len: usize) {
        let costly = match kind {
            PING | SETTINGS => flags & ACK == 0,
            DATA => len == 0 && flags & END_STREAM == 0,
            _ => false,
        };
        if costly {
            self.frames += 1;
        }
    }

    /// True once the client floods (checked after each read).
    pub(super) fn flooding(&mut self) -> bool {
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
