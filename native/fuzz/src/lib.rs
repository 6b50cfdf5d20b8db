//! Helpers shared by ruvicorn's fuzz targets (`fuzz_targets/`).
//!
//! Each target reads a few control bytes from the front of its input (which
//! limits to use, where to split the stream) and treats the rest as the bytes
//! a peer sent. Keeping the control bytes in front, rather than using a
//! structured input format, lets the seed corpus be plain protocol bytes with
//! a short prefix, written by hand.

use ruvicorn_core::http1::Limits;

/// Reads control bytes from the front of a fuzz input; past its end every
/// byte reads as 0, so any input is usable.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// The next control byte (0 once the input is exhausted).
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (now, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        now
    }

    /// Everything not read yet.
    pub fn rest(self) -> &'a [u8] {
        self.data
    }
}

/// The limits ruvicorn's settings default to.
pub const SERVER_DEFAULTS: Limits = Limits {
    request_line: 8190,
    fields: 100,
    field_size: 8190,
    body: None,
};

/// One of four limit sets: the server's defaults, and three small enough
/// for the fuzzer to reach every 414/431/413 path with short inputs.
pub fn limits(choice: u8) -> Limits {
    match choice % 4 {
        0 => SERVER_DEFAULTS,
        1 => Limits {
            request_line: 64,
            fields: 8,
            field_size: 64,
            body: Some(1024),
        },
        2 => Limits {
            request_line: 16,
            fields: 2,
            field_size: 16,
            body: Some(16),
        },
        _ => Limits {
            request_line: 1,
            fields: 0,
            field_size: 1,
            body: Some(0),
        },
    }
}

/// The ends of the pieces a stream of `len` bytes is delivered in, strictly
/// increasing and ending at `len` (nothing for an empty stream).
///
/// `seed` 0 means byte by byte; otherwise piece lengths come from a small
/// xorshift generator seeded with it, each between 1 and `seed % 32 + 1`.
pub fn split_ends(len: usize, seed: u8) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut state = u32::from(seed) | 0x9e37_7900;
    let max_piece = usize::from(seed % 32) + 1;
    let mut at = 0;
    while at < len {
        let piece = if seed == 0 {
            1
        } else {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state as usize % max_piece) + 1
        };
        at = (at + piece).min(len);
        ends.push(at);
    }
    ends
}
