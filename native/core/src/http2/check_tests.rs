//! [`FrameCheck`] on its own: what passes, where it stops, what a split changes (nothing).

use super::*;
use crate::http2::tests::frame;
use crate::http2::PREFACE;

fn hello() -> Vec<u8> {
    [PREFACE, &frame(SETTINGS, 0, 0, &[0, 4, 0, 1, 0, 0])].concat()
}

/// Everything forwarded and every stop, feeding `bytes` in pieces of `piece` bytes and
/// resuming each stream verdict with `pass`.
fn run(bytes: &[u8], piece: usize, pass: bool) -> (Vec<u8>, Vec<Verdict>) {
    let mut check = FrameCheck::new();
    let mut out = Vec::new();
    let mut stops = Vec::new();
    for chunk in bytes.chunks(piece) {
        let mut rest = chunk;
        while let Some(stop) = check.scan(rest, &mut |b| out.extend_from_slice(b)) {
            assert!(stop.at <= rest.len());
            stops.push(stop.verdict);
            rest = &rest[stop.at..];
            if !matches!(stop.verdict, Verdict::Stream { .. }) {
                break;
            }
            check.resume(pass, &mut |b| out.extend_from_slice(b));
        }
        assert!(check.held() < 9);
    }
    (out, stops)
}

fn same_in_any_pieces(bytes: &[u8], pass: bool) -> (Vec<u8>, Vec<Verdict>) {
    let whole = run(bytes, bytes.len(), pass);
    for piece in [1, 2, 5, 9, 10, 17] {
        assert_eq!(run(bytes, piece, pass), whole, "in pieces of {piece}");
    }
    whole
}

#[test]
fn valid_frames_pass_unchanged() {
    let mut bytes = hello();
    bytes.extend(frame(HEADERS, END_HEADERS, 1, b"\x82\x86\x84"));
    bytes.extend(frame(DATA, 0, 1, b"abc"));
    bytes.extend(frame(0x20, 0xff, 0, b"extension"));
    bytes.extend(frame(PRIORITY, 0, 7, &[0, 0, 0, 0, 16]));
    bytes.extend(frame(DATA, END_STREAM, 1, b""));
    bytes.extend(frame(RST_STREAM, 0, 1, &[0, 0, 0, 8]));
    bytes.extend(frame(PING, 0, 0, &[0; 8]));
    bytes.extend(frame(HEADERS, END_STREAM, 3, b"\x82"));
    bytes.extend(frame(CONTINUATION, END_HEADERS, 3, b"\x86\x84"));
    bytes.extend(frame(WINDOW_UPDATE, 0, 0, &[0, 0, 1, 0]));
    bytes.extend(frame(GOAWAY, 0, 0, &[0; 12]));
    assert_eq!(same_in_any_pieces(&bytes, true), (bytes, vec![]));
}

#[test]
fn the_first_frame_must_be_settings() {
    for first in [
        frame(PING, 0, 0, &[0; 8]),
        frame(SETTINGS, ACK, 0, &[]),
        frame(HEADERS, END_HEADERS, 1, b"\x82"),
    ] {
        let bytes = [PREFACE, &first].concat();
        let (out, stops) = same_in_any_pieces(&bytes, true);
        assert_eq!(out, PREFACE, "only the preface reaches the engine");
        assert_eq!(stops, [Verdict::Connection(PROTOCOL_ERROR)]);
    }
}

#[test]
fn sizes_per_frame_type() {
    let size = Verdict::Connection(FRAME_SIZE_ERROR);
    let cases = [
        (frame(DATA, PADDED, 1, &[]), size),
        (
            frame(HEADERS, PRIORITY_FLAG | END_HEADERS, 1, &[0; 4]),
            size,
        ),
        (
            frame(HEADERS, PADDED | PRIORITY_FLAG | END_HEADERS, 1, &[0; 5]),
            size,
        ),
        (frame(RST_STREAM, 0, 1, &[0; 5]), size),
        (frame(SETTINGS, ACK, 0, &[0; 6]), size),
        (frame(SETTINGS, 0, 0, &[0; 7]), size),
        (frame(PING, 0, 0, &[]), size),
        (frame(GOAWAY, 0, 0, &[0; 7]), size),
        (frame(WINDOW_UPDATE, 0, 1, &[0; 8]), size),
        (
            frame(PRIORITY, 0, 3, &[0; 6]),
            Verdict::Stream {
                stream: 3,
                code: FRAME_SIZE_ERROR,
                forward: false,
            },
        ),
    ];
    for (bad, verdict) in cases {
        let bytes = [hello(), bad].concat();
        let (out, stops) = same_in_any_pieces(&bytes, false);
        assert_eq!(out, hello());
        assert_eq!(stops, [verdict]);
    }
}

#[test]
fn a_dropped_frame_is_skipped_whole_and_the_next_one_passes() {
    let after = frame(PING, 0, 0, b"12345678");
    let bytes = [hello(), frame(PRIORITY, 0, 3, &[9; 40]), after.clone()].concat();
    let (out, stops) = same_in_any_pieces(&bytes, false);
    assert_eq!(out, [hello(), after].concat());
    assert_eq!(stops.len(), 1);
}

#[test]
fn field_blocks_are_contiguous() {
    let open = frame(HEADERS, END_STREAM, 1, b"\x82");
    for next in [
        frame(PING, 0, 0, &[0; 8]),
        frame(CONTINUATION, END_HEADERS, 3, b"\x86"),
        frame(DATA, 0, 1, b"x"),
    ] {
        let bytes = [hello(), open.clone(), next].concat();
        let (out, stops) = same_in_any_pieces(&bytes, true);
        assert_eq!(out, [hello(), open.clone()].concat());
        assert_eq!(stops, [Verdict::Connection(PROTOCOL_ERROR)]);
    }
    let stray = [hello(), frame(CONTINUATION, END_HEADERS, 1, b"\x82")].concat();
    assert_eq!(
        same_in_any_pieces(&stray, true).1,
        [Verdict::Connection(PROTOCOL_ERROR)]
    );
}

#[test]
fn frames_on_a_stream_the_client_ended_are_stream_closed() {
    let closed = |stream| Verdict::Stream {
        stream,
        code: STREAM_CLOSED,
        forward: true,
    };
    let ended = [
        frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x82"),
        frame(HEADERS, END_HEADERS, 3, b"\x82"),
        frame(DATA, END_STREAM, 3, b"body"),
        frame(HEADERS, END_HEADERS, 5, b"\x82"),
        frame(RST_STREAM, 0, 5, &[0, 0, 0, 8]),
        frame(HEADERS, END_HEADERS, 7, b"\x82"),
        frame(HEADERS, END_HEADERS | END_STREAM, 7, b"\x10\x01a\x01b"),
    ]
    .concat();
    let late = [
        frame(DATA, 0, 1, b"x"),
        frame(HEADERS, END_HEADERS | END_STREAM, 3, b"\x10\x01a\x01b"),
        frame(DATA, END_STREAM, 5, b""),
        frame(DATA, 0, 7, b"x"),
    ]
    .concat();
    let bytes = [hello(), ended, late].concat();
    let (out, stops) = same_in_any_pieces(&bytes, true);
    assert_eq!(
        out, bytes,
        "each goes on to the engine once its stream is reset"
    );
    assert_eq!(stops, [closed(1), closed(3), closed(5), closed(7)]);
}

#[test]
fn older_and_skipped_streams_are_left_to_the_engine() {
    let mut bytes = hello();
    // Stream 1 ended, then more streams than are tracked: 1 is forgotten.
    for id in 0..=u32::try_from(TRACKED_STREAMS).expect("small") {
        bytes.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            2 * id + 1,
            b"\x82",
        ));
    }
    bytes.extend(frame(DATA, 0, 1, b"x"));
    // Stream 1001 opens, 999 was never used: its frames are the engine's to judge.
    bytes.extend(frame(HEADERS, END_HEADERS, 1001, b"\x82"));
    bytes.extend(frame(DATA, 0, 999, b"x"));
    let (out, stops) = same_in_any_pieces(&bytes, true);
    assert_eq!(out, bytes);
    assert!(stops.is_empty());
}

#[test]
fn initial_window_above_the_maximum_is_a_flow_control_error() {
    let good = frame(SETTINGS, 0, 0, &[0, 4, 0x7f, 0xff, 0xff, 0xff]);
    let bad = frame(SETTINGS, 0, 0, &[0, 1, 0, 0, 0, 0, 0, 4, 0x80, 0, 0, 0]);
    let bytes = [hello(), good, bad].concat();
    let (out, stops) = same_in_any_pieces(&bytes, true);
    assert_eq!(
        out,
        bytes[..bytes.len() - 1],
        "the bad SETTINGS never arrives whole"
    );
    assert_eq!(stops, [Verdict::Connection(FLOW_CONTROL_ERROR)]);
}

#[test]
fn nothing_passes_after_a_connection_error() {
    let bytes = [
        hello(),
        frame(PING, 0, 0, &[0; 3]),
        frame(PING, 0, 0, &[0; 8]),
    ]
    .concat();
    let (out, stops) = same_in_any_pieces(&bytes, true);
    assert_eq!(out, hello());
    assert_eq!(stops.len(), 1);
}

#[test]
fn undecodable_field_blocks_are_compression_errors_however_split() {
    let compression = vec![Verdict::Connection(COMPRESSION_ERROR)];
    let cases = [
        // Index 0, in a HEADERS frame with padding and priority fields around it.
        frame(
            HEADERS,
            END_HEADERS | PADDED | PRIORITY_FLAG,
            1,
            &[2, 0, 0, 0, 0, 16, 0x80, 0, 0],
        ),
        // A literal cut short by END_HEADERS on an empty CONTINUATION.
        [
            frame(HEADERS, END_STREAM, 1, b"\x82\x40"),
            frame(CONTINUATION, END_HEADERS, 1, b""),
        ]
        .concat(),
        // A string running past the end of a block split over CONTINUATION frames.
        [
            frame(HEADERS, END_STREAM, 1, b"\x82\x00"),
            frame(CONTINUATION, 0, 1, b"\x0aab"),
            frame(CONTINUATION, END_HEADERS, 1, b"cd"),
        ]
        .concat(),
        // A truncated field followed by padding only.
        frame(HEADERS, END_HEADERS | PADDED, 1, &[3, 0x82, 0x40, 0, 0, 0]),
    ];
    for case in cases {
        let bytes = [hello(), case.clone()].concat();
        let (out, stops) = same_in_any_pieces(&bytes, true);
        assert_eq!(stops, compression, "{case:?}");
        assert!(
            out.len() < bytes.len(),
            "the frame never reaches the engine whole"
        );
    }
}

#[test]
fn a_pseudo_header_in_trailers_resets_the_stream() {
    let bytes = [
        hello(),
        frame(HEADERS, END_HEADERS, 1, b"\x83\x86\x84"),
        frame(DATA, 0, 1, b"body"),
        frame(HEADERS, END_STREAM, 1, b"\x10\x01a\x01b"),
        frame(CONTINUATION, END_HEADERS, 1, b"\x84\x10\x01a\x01b"),
        frame(HEADERS, END_HEADERS | END_STREAM, 3, b"\x82\x86\x84"),
    ]
    .concat();
    let (out, stops) = same_in_any_pieces(&bytes, true);
    let reset = Verdict::Stream {
        stream: 1,
        code: PROTOCOL_ERROR,
        forward: true,
    };
    assert_eq!(stops, [reset]);
    assert_eq!(
        out, bytes,
        "the trailers go on to the engine after the reset"
    );
}

#[test]
fn a_self_dependent_stream_s_block_is_not_decoded() {
    // The engine resets such a stream without decoding its block (index 0 here).
    let bytes = [
        hello(),
        frame(
            HEADERS,
            END_HEADERS | PRIORITY_FLAG,
            1,
            &[0, 0, 0, 1, 16, 0x80],
        ),
    ]
    .concat();
    assert_eq!(same_in_any_pieces(&bytes, true), (bytes, vec![]));
}

/// The streams refused when `bytes` arrive in pieces of `piece` bytes, after a graceful
/// shutdown began.
fn refused_going_away(bytes: &[u8], piece: usize) -> Vec<u32> {
    let mut check = FrameCheck::new();
    check.going_away();
    for chunk in bytes.chunks(piece) {
        assert_eq!(check.scan(chunk, &mut |_| {}), None);
    }
    check.take_refused()
}

#[test]
fn streams_opened_after_the_shutdown_ping_ack_are_refused() {
    let mut bytes = hello();
    bytes.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x82\x86\x84"));
    // Another PING's acknowledgement changes nothing; streams opened before the engine's
    // own one is acknowledged are served.
    bytes.extend(frame(PING, ACK, 0, &[1; 8]));
    bytes.extend(frame(HEADERS, END_HEADERS, 3, b"\x83\x86\x84"));
    bytes.extend(frame(PING, ACK, 0, &SHUTDOWN_PING));
    bytes.extend(frame(HEADERS, END_HEADERS | END_STREAM, 5, b"\x82\x86\x84"));
    bytes.extend(frame(DATA, END_STREAM, 3, b""));
    bytes.extend(frame(HEADERS, END_HEADERS, 9, b"\x82\x86\x84"));
    for piece in [1, 3, 9, 10, bytes.len()] {
        assert_eq!(
            refused_going_away(&bytes, piece),
            [5, 9],
            "in pieces of {piece}"
        );
    }
}

#[test]
fn without_a_graceful_shutdown_nothing_is_refused() {
    let mut bytes = hello();
    bytes.extend(frame(PING, ACK, 0, &SHUTDOWN_PING));
    bytes.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x82\x86\x84"));
    let mut check = FrameCheck::new();
    assert_eq!(check.scan(&bytes, &mut |_| {}), None);
    assert!(check.take_refused().is_empty());
}
