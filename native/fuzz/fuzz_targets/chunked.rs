//! Request-body decoder: chunked (sizes, extensions, trailers) and
//! Content-Length.
//!
//! Input: a config byte, a split seed, then body bytes. Config bit 7 picks
//! the mode:
//! - raw: the bytes go to the decoder as they are. Decoding them in one call,
//!   and in pieces, gives the same payload, `consumed`, completion and error;
//!   the payload never exceeds the body limit; `received()` counts it.
//! - round trip: the bytes are a payload, which is chunk-encoded (sizes in
//!   either case and with leading zeros, extensions, trailers) and followed by
//!   the start of a pipelined request. Decoding must return the payload,
//!   stop exactly at the end of the body, or fail with 413 exactly when the
//!   payload is over the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ruvicorn_core::http1::body::BodyDecoder;
use ruvicorn_core::http1::request::Framing;
use ruvicorn_core::http1::{Limits, RequestError};
use ruvicorn_fuzz::{split_ends, Input, SERVER_DEFAULTS};

#[derive(Debug, PartialEq)]
struct Outcome {
    payload: Vec<u8>,
    consumed: usize,
    complete: bool,
    error: Option<RequestError>,
}

/// Feeds `input` in pieces ending at `ends`, as a connection would: the
/// bytes a call leaves unconsumed are offered again with the next piece.
fn decode(framing: Framing, limits: &Limits, input: &[u8], ends: &[usize]) -> Outcome {
    let mut decoder = BodyDecoder::new(framing, limits);
    let mut outcome = Outcome {
        payload: Vec::new(),
        consumed: 0,
        complete: false,
        error: None,
    };
    for &end in ends {
        let piece = &input[outcome.consumed..end];
        match decoder.decode(piece, &mut outcome.payload) {
            Ok(n) => {
                assert!(
                    n <= piece.len(),
                    "consumed {n} of a {}-byte piece",
                    piece.len()
                );
                assert!(
                    n == piece.len() || decoder.is_complete(),
                    "stopped at {n} of {} bytes before the end of the body",
                    piece.len()
                );
                outcome.consumed += n;
            }
            Err(error) => {
                outcome.error = Some(error);
                break;
            }
        }
        assert_eq!(decoder.received(), outcome.payload.len() as u64);
        if let Some(max) = limits.body {
            assert!(
                outcome.payload.len() as u64 <= max,
                "payload over the body limit"
            );
        }
        if decoder.is_complete() {
            break;
        }
    }
    outcome.complete = decoder.is_complete();
    if outcome.complete {
        // Nothing more is read once the body is complete.
        let mut more = Vec::new();
        assert_eq!(decoder.decode(b"0\r\n\r\n", &mut more), Ok(0));
        assert!(more.is_empty());
    }
    outcome
}

fn raw(cfg: u8, seed: u8, mut input: Input<'_>) {
    let limits = Limits {
        request_line: 8190,
        fields: [0, 1, 4, 100][usize::from(cfg & 3)],
        field_size: [4, 16, 64, 8190][usize::from((cfg >> 2) & 3)],
        body: [None, Some(0), Some(16), Some(1000)][usize::from((cfg >> 4) & 3)],
    };
    let framing = if cfg & 0x40 == 0 {
        Framing::Chunked
    } else {
        Framing::Length(u64::from(input.byte()))
    };
    let bytes = input.rest();
    let whole = decode(framing, &limits, bytes, &[bytes.len()]);
    let split = decode(framing, &limits, bytes, &split_ends(bytes.len(), seed));
    if whole.error.is_none() {
        assert_eq!(split, whole, "differs when split");
    } else {
        // After an error the bytes consumed before it are unspecified; the
        // payload handed on before it, and the error, are not.
        assert_eq!(split.error, whole.error, "different error when split");
        assert_eq!(
            split.payload, whole.payload,
            "different payload before the error"
        );
    }
}

/// A valid chunked encoding of `payload`, then the start of the next request.
fn encode(payload: &[u8], seed: u8, mut style: Input<'_>) -> Vec<u8> {
    let mut body = Vec::new();
    let mut start = 0;
    for end in split_ends(payload.len(), seed) {
        let s = style.byte();
        let size = end - start;
        let zeros = usize::from(s & 3);
        let hex = if s & 4 == 0 {
            format!("{size:x}")
        } else {
            format!("{size:X}")
        };
        body.extend_from_slice("0".repeat(zeros).as_bytes());
        body.extend_from_slice(hex.as_bytes());
        match (s >> 3) & 7 {
            1 => body.extend_from_slice(b";a"),
            2 => body.extend_from_slice(b";name=value"),
            3 => body.extend_from_slice(b";q=\"quoted; \\\"string\\\"\""),
            4 => body.extend_from_slice(b" \t;a=1;b"),
            _ => {}
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(&payload[start..end]);
        body.extend_from_slice(b"\r\n");
        start = end;
    }
    body.extend_from_slice(b"0\r\n");
    for _ in 0..style.byte() % 4 {
        body.extend_from_slice(b"x-checksum: abc, def\r\n");
    }
    body.extend_from_slice(b"\r\n");
    body
}

fn round_trip(cfg: u8, seed: u8, mut input: Input<'_>) {
    let limit = match cfg & 3 {
        0 => None,
        n => Some(u64::from(n - 1) * 64),
    };
    let limits = Limits {
        body: limit,
        ..SERVER_DEFAULTS
    };
    let style_len = usize::from(input.byte() % 16);
    let style = Input::new(input.take(style_len));
    let payload = input.rest();
    let body = encode(payload, seed, style);
    let mut stream = body.clone();
    stream.extend_from_slice(b"GET / HTTP/1.1\r\n");
    let over = limit.is_some_and(|max| payload.len() as u64 > max);
    for ends in [
        vec![stream.len()],
        split_ends(stream.len(), seed.rotate_left(3)),
    ] {
        let got = decode(Framing::Chunked, &limits, &stream, &ends);
        if over {
            assert_eq!(got.error, Some(RequestError::PayloadTooLarge));
        } else {
            let want = Outcome {
                payload: payload.to_vec(),
                consumed: body.len(),
                complete: true,
                error: None,
            };
            assert_eq!(
                got,
                want,
                "round trip of {:?}",
                String::from_utf8_lossy(&body)
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let cfg = input.byte();
    let seed = input.byte();
    if cfg & 0x80 == 0 {
        raw(cfg, seed, input);
    } else {
        round_trip(cfg, seed, input);
    }
});
