//! HTTP/3 unidirectional streams the peer opens (`http3::uni::Uni`): the stream type, the
//! control stream's frames, the QPACK encoder and decoder streams' instructions, unknown
//! types.
//!
//! Input: a control byte (the size of the pieces the stream arrives in, 1 to 64), a second
//! one (bits 0-1: the buffer bound, one of four; bits 2-3: the control frame payload limit,
//! one of four), then the stream's bytes, its type first.
//! Properties: nothing panics; fed in pieces the stream gives the same frames and
//! instructions accepted, the same error code or status and the same bytes left unparsed
//! as fed whole, each feed taking what fits under the bound (a full buffer after parsing is
//! H3_EXCESSIVE_LOAD, as the connection says); the buffer never holds more than its bound;
//! on a control stream a SETTINGS frame comes first and only once: the first known frame
//! other than SETTINGS is H3_MISSING_SETTINGS (RFC 9114 §6.2.1), and a second SETTINGS,
//! or DATA, HEADERS or PUSH_PROMISE after it, is H3_FRAME_UNEXPECTED (§7.2.4, §7.2), as
//! is an HTTP/2 frame type anywhere (§7.2.8); an encoder or decoder stream fails with its
//! own QPACK error code (RFC 9204 §6) or on the bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ruvicorn_core::http3::codes;
use ruvicorn_core::http3::frame::{peek_varint, DATA, HEADERS, SETTINGS};
use ruvicorn_core::http3::uni::{Accepted, PeerStreams, Status, Uni, UNI_BUFFER};
use ruvicorn_fuzz::Input;

const BOUNDS: [usize; 4] = [UNI_BUFFER, 8, 32, 256];
const LIMITS: [u64; 4] = [64 * 1024, 0, 16, 1024];

const CANCEL_PUSH: u64 = 0x3;
const PUSH_PROMISE: u64 = 0x5;
const GOAWAY: u64 = 0x7;
const MAX_PUSH_ID: u64 = 0xd;
const HTTP2_ONLY: [u64; 4] = [0x2, 0x6, 0x8, 0x9];

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    accepted: Vec<Accepted>,
    result: Result<Status, u64>,
    /// Bytes buffered and not parsed at the end (none after an error or an unknown type).
    left: usize,
}

/// Feed `stream` `piece` bytes at a time, as the connection does with what QUIC delivers:
/// append what fits, parse, and give up on a buffer still full after parsing.
fn drive(stream: &[u8], piece: usize, bound: usize, limit: u64) -> Outcome {
    let mut uni = Uni::new(bound);
    let mut peers = PeerStreams::default();
    let mut accepted = Vec::new();
    let end = |accepted, result| Outcome {
        accepted,
        result,
        left: 0,
    };
    for chunk in stream.chunks(piece) {
        let mut rest = chunk;
        loop {
            let taken = uni.push(rest);
            rest = &rest[taken..];
            assert!(uni.buffered() <= bound, "the buffer outgrew its bound");
            match uni.parse(&mut peers, limit, |a| accepted.push(a)) {
                Ok(Status::Open) => {}
                other => return end(accepted, other),
            }
            assert!(uni.buffered() <= bound, "parsing grew the buffer");
            if uni.is_full() {
                return end(accepted, Err(codes::EXCESSIVE_LOAD));
            }
            if rest.is_empty() {
                break;
            }
        }
    }
    Outcome {
        accepted,
        result: Ok(Status::Open),
        left: uni.buffered(),
    }
}

/// The SETTINGS rule on a control stream's frames (after its type byte), walked apart from
/// the parser: the first frame that must fail for its type or place, its code, and how many
/// known frames precede it. `None` if no frame does (in the bytes given).
fn settings_rule(mut body: &[u8], limit: u64) -> Option<(u64, usize, u64)> {
    let mut settings = false;
    let mut known = 0;
    loop {
        let (ty, ty_len) = peek_varint(body)?;
        let (len, len_len) = peek_varint(&body[ty_len..])?;
        body = &body[ty_len + len_len..];
        if HTTP2_ONLY.contains(&ty) {
            return Some((codes::FRAME_UNEXPECTED, known, ty));
        }
        if ty == DATA {
            let code = if settings {
                codes::FRAME_UNEXPECTED
            } else {
                codes::MISSING_SETTINGS
            };
            return Some((code, known, ty));
        }
        let is_known = matches!(
            ty,
            HEADERS | CANCEL_PUSH | SETTINGS | PUSH_PROMISE | GOAWAY | MAX_PUSH_ID
        );
        if is_known && len > limit {
            return Some((codes::EXCESSIVE_LOAD, known, ty));
        }
        let len = usize::try_from(len).ok().filter(|&len| len <= body.len())?;
        body = &body[len..];
        if !is_known {
            continue;
        }
        if !settings && ty != SETTINGS {
            return Some((codes::MISSING_SETTINGS, known, ty));
        }
        if settings && matches!(ty, SETTINGS | HEADERS | PUSH_PROMISE) {
            return Some((codes::FRAME_UNEXPECTED, known, ty));
        }
        settings = true;
        known += 1;
    }
}

fn check_control(body: &[u8], limit: u64, outcome: &Outcome) {
    let settings = outcome
        .accepted
        .iter()
        .filter(|a| matches!(a, Accepted::Settings(_)))
        .count();
    assert!(settings <= 1, "SETTINGS accepted twice");
    if let Some(first) = outcome.accepted.first() {
        assert!(
            matches!(first, Accepted::Settings(_)),
            "{first:?} before SETTINGS"
        );
    }
    let Some((code, known, ty)) = settings_rule(body, limit) else {
        return;
    };
    if outcome.accepted.len() == known {
        // Every frame before it was accepted: this one is refused, with the rule's code.
        assert_eq!(outcome.result, Err(code), "frame type {ty:#x}");
    } else {
        // An earlier frame was refused for its payload.
        assert!(outcome.accepted.len() < known);
        assert!(
            matches!(
                outcome.result,
                Err(codes::FRAME_ERROR | codes::SETTINGS_ERROR)
            ),
            "{:?}",
            outcome.result
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let piece = usize::from(input.byte() % 64) + 1;
    let mode = input.byte();
    let bound = BOUNDS[usize::from(mode & 0b11)];
    let limit = LIMITS[usize::from((mode >> 2) & 0b11)];
    let stream = input.rest();
    let whole = drive(stream, stream.len().max(1), bound, limit);
    let pieces = drive(stream, piece, bound, limit);
    assert_eq!(whole, pieces, "the pieces changed the outcome");
    // The rule is walked over the whole stream, so only where nothing got stuck on the
    // bound first.
    // A QPACK stream fails with its own code, unless stuck on the bound.
    let own = match stream.first() {
        Some(0x02) => Some(codes::QPACK_ENCODER_STREAM_ERROR),
        Some(0x03) => Some(codes::QPACK_DECODER_STREAM_ERROR),
        _ => None,
    };
    if let (Some(own), Err(code)) = (own, whole.result) {
        assert!(code == own || code == codes::EXCESSIVE_LOAD, "{code:#x}");
    }
    if bound == UNI_BUFFER && stream.len() < UNI_BUFFER {
        if let Some((&0x00, body)) = stream.split_first() {
            check_control(body, limit, &whole);
        }
    }
});
