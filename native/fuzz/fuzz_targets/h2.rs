//! HTTP/2: the frame check in front of the engine (`http2::check::FrameCheck`), then the
//! connection (`Http2`) on the same bytes.
//!
//! Input: a control byte (the size of the pieces the bytes arrive in, 1 to 64), a second
//! one (bit 0: stream errors are resumed with the frame passed on rather than dropped; bit 1:
//! the rest is one field block, which the target frames), then the bytes a client sends
//! after the preface (the target puts the preface in front).
//! Properties: nothing panics; the check forwards the same bytes and stops with the same
//! verdicts whatever the pieces; it never holds more than 8 bytes back; with every stream
//! error passed on and no connection error, it forwards the input unchanged (but for a partial
//! header at its end), and after a
//! connection error it forwards nothing more; a field block reaches the same verdicts
//! (HPACK's COMPRESSION_ERROR, a pseudo-header in trailers) in one HEADERS frame as split
//! over CONTINUATION frames of the piece size; the connection, fed the same pieces, never
//! panics and writes whole frames.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ruvicorn_core::http2::check::{FrameCheck, Verdict};
use ruvicorn_core::http2::{Http2, Settings, PREFACE};
use ruvicorn_fuzz::Input;

/// Everything the check forwards, every verdict, and the bytes of a partial header held at
/// the end, `bytes` fed `piece` bytes at a time.
fn check(bytes: &[u8], piece: usize, pass: bool) -> (Vec<u8>, Vec<Verdict>, usize) {
    let mut check = FrameCheck::new();
    let mut out = Vec::new();
    let mut verdicts = Vec::new();
    let mut ended = false;
    for chunk in bytes.chunks(piece) {
        let mut rest = chunk;
        let (before, was_ended) = (out.len(), ended);
        while let Some(stop) = check.scan(rest, &mut |b| out.extend_from_slice(b)) {
            assert!(!ended, "a verdict after a connection error");
            assert!(stop.at <= rest.len());
            verdicts.push(stop.verdict);
            rest = &rest[stop.at..];
            if let Verdict::Connection(_) = stop.verdict {
                ended = true;
                break;
            }
            check.resume(pass, &mut |b| out.extend_from_slice(b));
        }
        if was_ended {
            assert_eq!(
                out.len(),
                before,
                "bytes forwarded after a connection error"
            );
        }
        assert!(check.held() <= 8);
    }
    (out, verdicts, check.held())
}

/// A frame header and `payload`.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len().to_be_bytes();
    let mut out = vec![len[5], len[6], len[7], kind, flags];
    out.extend(stream.to_be_bytes());
    out.extend(payload);
    out
}

/// The client's SETTINGS, then `block` as a request head on stream 1 and again as its
/// trailers: each in one HEADERS frame, or with `split`, a HEADERS frame and CONTINUATION
/// frames of `split` bytes each.
fn field_blocks(block: &[u8], split: Option<usize>) -> Vec<u8> {
    const END_STREAM: u8 = 0x1;
    const END_HEADERS: u8 = 0x4;
    let mut out = frame(0x4, 0, 0, &[]);
    for end in [0, END_STREAM] {
        let Some(split) = split.filter(|&n| n < block.len()) else {
            out.extend(frame(0x1, end | END_HEADERS, 1, block));
            continue;
        };
        let mut pieces = block.chunks(split).peekable();
        let mut kind = 0x1;
        let mut flags = end;
        while let Some(piece) = pieces.next() {
            let last = if pieces.peek().is_none() {
                END_HEADERS
            } else {
                0
            };
            out.extend(frame(kind, flags | last, 1, piece));
            (kind, flags) = (0x9, 0);
        }
    }
    out
}

/// Frame headers in what the server wrote line up with its end.
fn whole_frames(mut out: &[u8]) {
    while !out.is_empty() {
        assert!(out.len() >= 9, "a partial frame header");
        let len = usize::from(out[0]) << 16 | usize::from(out[1]) << 8 | usize::from(out[2]);
        assert!(out.len() >= 9 + len, "a partial frame");
        out = &out[9 + len..];
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let piece = usize::from(input.byte() % 64) + 1;
    let control = input.byte();
    let pass = control & 1 == 1;
    let rest = input.rest();
    let bytes = if control & 2 == 0 {
        [PREFACE, rest].concat()
    } else {
        // At most a frame's worth (the default SETTINGS_MAX_FRAME_SIZE).
        let block = &rest[..rest.len().min(1 << 14)];
        let whole = [PREFACE, &field_blocks(block, None)].concat();
        let split = [PREFACE, &field_blocks(block, Some(piece))].concat();
        let verdicts = |bytes: &[u8]| check(bytes, bytes.len(), pass).1;
        assert_eq!(
            verdicts(&split),
            verdicts(&whole),
            "a field block over CONTINUATION frames of {piece}"
        );
        whole
    };
    let whole = check(&bytes, bytes.len(), pass);
    assert_eq!(check(&bytes, piece, pass), whole, "in pieces of {piece}");
    let (forwarded, verdicts, held) = &whole;
    let stopped = verdicts.iter().any(|v| matches!(v, Verdict::Connection(_)));
    if pass && !stopped {
        assert_eq!(forwarded[..], bytes[..bytes.len() - held]);
    } else {
        assert!(forwarded.len() <= bytes.len());
    }

    let mut conn = Http2::new(&Settings::default());
    let mut written = conn.take_output();
    for chunk in bytes.chunks(piece) {
        conn.receive(chunk);
        written.extend(conn.take_output());
        conn.take_events();
    }
    conn.receive(b"");
    written.extend(conn.take_output());
    whole_frames(&written);
});
