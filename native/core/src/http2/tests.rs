//! The interface driven with hand-built frames: what a client sends in, what comes out.

use super::check::{
    COMPRESSION_ERROR, CONTINUATION, DATA, END_HEADERS, END_STREAM, FLOW_CONTROL_ERROR,
    FRAME_SIZE_ERROR, GOAWAY, HEADERS, PING, PRIORITY, PROTOCOL_ERROR, REFUSED_STREAM, RST_STREAM,
    SETTINGS, STREAM_CLOSED, WINDOW_UPDATE,
};
use super::*;

pub(super) fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("small frame");
    let mut out = len.to_be_bytes()[1..].to_vec();
    out.extend([kind, flags]);
    out.extend(stream.to_be_bytes());
    out.extend(payload);
    out
}

/// HPACK literals without indexing, new names: enough for any request in these tests.
pub(super) fn block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0);
        out.push(u8::try_from(name.len()).expect("short name"));
        out.extend(name.as_bytes());
        out.push(u8::try_from(value.len()).expect("short value"));
        out.extend(value.as_bytes());
    }
    out
}

pub(super) fn get(path: &str) -> Vec<(&str, &str)> {
    vec![
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "example.test"),
        (":path", path),
    ]
}

pub(super) struct Frame {
    pub(super) kind: u8,
    pub(super) flags: u8,
    pub(super) stream: u32,
    pub(super) payload: Vec<u8>,
}

pub(super) fn frames(bytes: &[u8]) -> Vec<Frame> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 9 {
        let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        let stream = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]) & 0x7fff_ffff;
        out.push(Frame {
            kind: rest[3],
            flags: rest[4],
            stream,
            payload: rest[9..9 + len].to_vec(),
        });
        rest = &rest[9 + len..];
    }
    out
}

/// A connection past its preface and SETTINGS exchange.
pub(super) fn connected(settings: &Settings) -> Http2 {
    let mut conn = Http2::new(settings);
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(SETTINGS, 0, 0, &[]));
    conn.receive(&hello);
    let out = frames(&conn.take_output());
    assert_eq!(out[0].kind, SETTINGS, "the server's SETTINGS come first");
    conn
}

pub(super) fn request_stream(conn: &mut Http2, stream: u32, fields: &[(&str, &str)], end: bool) {
    let flags = END_HEADERS | if end { END_STREAM } else { 0 };
    conn.receive(&frame(HEADERS, flags, stream, &block(fields)));
}

#[test]
fn request_head_maps_authority_and_cookies() {
    let mut conn = connected(&Settings::default());
    let mut fields = get("/a?b=1");
    fields.extend([("cookie", "a=1"), ("x-y", "z"), ("cookie", "b=2")]);
    request_stream(&mut conn, 1, &fields, true);
    let events = conn.take_events();
    let Some(Event::Request { stream: 1, head }) = events.first() else {
        panic!("no request: {events:?}");
    };
    assert_eq!(head.method, "GET");
    assert_eq!(head.target, "/a?b=1");
    assert_eq!(head.scheme.as_deref(), Some("http"));
    assert!(head.end_stream);
    let names: Vec<&[u8]> = head.headers.iter().map(|(n, _)| n.as_slice()).collect();
    assert_eq!(names, [&b"host"[..], b"x-y", b"cookie"]);
    assert_eq!(head.headers[0].1, b"example.test");
    assert_eq!(head.headers[2].1, b"a=1; b=2");
}

#[test]
fn body_arrives_and_window_comes_back_only_when_released() {
    let mut conn = connected(&Settings::default());
    let mut fields = get("/");
    fields[0].1 = "POST";
    request_stream(&mut conn, 1, &fields, false);
    let chunk = vec![b'x'; 15_000];
    conn.receive(&frame(DATA, 0, 1, &chunk));
    conn.receive(&frame(DATA, 0, 1, &chunk));
    conn.receive(&frame(DATA, 0, 1, &chunk));
    let events = conn.take_events();
    let body: Vec<u8> = events
        .iter()
        .filter_map(|e| match e {
            Event::Data { data, .. } => Some(data.to_vec()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(body.len(), 45_000);
    let before = frames(&conn.take_output());
    assert!(before.iter().all(|f| f.kind != WINDOW_UPDATE));
    conn.release(1, 45_000);
    let after = frames(&conn.take_output());
    assert!(after
        .iter()
        .any(|f| f.kind == WINDOW_UPDATE && f.stream == 1));
    conn.receive(&frame(DATA, END_STREAM, 1, &[]));
    assert_eq!(conn.take_events(), [Event::End { stream: 1 }]);
}

#[test]
fn response_with_body_and_dropped_connection_fields() {
    let mut conn = connected(&Settings::default());
    request_stream(&mut conn, 1, &get("/"), true);
    conn.take_events();
    let fields = vec![
        (b"content-type".to_vec(), b"text/plain".to_vec()),
        (b"connection".to_vec(), b"keep-alive".to_vec()),
    ];
    conn.send_response(1, 200, &fields, false).expect("head");
    conn.send_data(1, Bytes::from_static(b"body"), true)
        .expect("body");
    assert_eq!(conn.take_events(), [Event::Sent { stream: 1 }]);
    let out = frames(&conn.take_output());
    let head = out.iter().find(|f| f.kind == HEADERS).expect("HEADERS");
    assert_eq!(head.payload[0], 0x88, ":status 200 from the static table");
    assert_eq!(head.flags & END_STREAM, 0);
    let data: Vec<&Frame> = out.iter().filter(|f| f.kind == DATA).collect();
    assert_eq!(
        data.iter()
            .flat_map(|f| f.payload.clone())
            .collect::<Vec<_>>(),
        b"body"
    );
    assert_ne!(data.last().expect("DATA").flags & END_STREAM, 0);
    assert_eq!(conn.open_streams(), 0, "a finished stream is forgotten");
}

#[test]
fn send_operations_of_several_streams_leave_in_one_flush() {
    let mut conn = connected(&Settings::default());
    request_stream(&mut conn, 1, &get("/a"), true);
    request_stream(&mut conn, 3, &get("/b"), true);
    conn.take_events();
    for stream in [1, 3] {
        conn.send_response(stream, 200, &[], false).expect("head");
        conn.send_data(stream, Bytes::from_static(b"body"), true)
            .expect("body");
    }
    assert_eq!(
        conn.take_events(),
        [Event::Sent { stream: 1 }, Event::Sent { stream: 3 }],
        "send() returns without waiting for the flush"
    );
    assert!(conn.needs_flush());
    let out = frames(&conn.take_output());
    assert!(!conn.needs_flush());
    for stream in [1, 3] {
        assert!(out.iter().any(|f| f.kind == HEADERS && f.stream == stream));
        let end = out.iter().rfind(|f| f.kind == DATA && f.stream == stream);
        assert_ne!(end.expect("DATA").flags & END_STREAM, 0);
    }
}

#[test]
fn head_and_no_content_responses_carry_no_data() {
    let mut conn = connected(&Settings::default());
    let mut fields = get("/");
    fields[0].1 = "HEAD";
    request_stream(&mut conn, 1, &fields, true);
    request_stream(&mut conn, 3, &get("/"), true);
    conn.send_response(1, 200, &[], false).expect("head");
    conn.send_data(1, Bytes::from_static(b"dropped"), true)
        .expect_err("the stream ended with its head");
    conn.send_response(3, 204, &[], false).expect("head");
    let out = frames(&conn.take_output());
    assert!(out.iter().all(|f| f.kind != DATA));
    let heads: Vec<&Frame> = out.iter().filter(|f| f.kind == HEADERS).collect();
    assert_eq!(heads.len(), 2);
    assert!(heads.iter().all(|f| f.flags & END_STREAM != 0));
}

#[test]
fn trailers_end_the_stream() {
    let mut conn = connected(&Settings::default());
    request_stream(&mut conn, 1, &get("/"), true);
    conn.send_response(1, 200, &[], false).expect("head");
    conn.send_data(1, Bytes::from_static(b"x"), false)
        .expect("body");
    conn.send_trailers(1, &[(b"grpc-status".to_vec(), b"0".to_vec())])
        .expect("trailers");
    let out = frames(&conn.take_output());
    let heads: Vec<&Frame> = out.iter().filter(|f| f.kind == HEADERS).collect();
    assert_eq!(heads.len(), 2, "response head and trailers");
    assert_ne!(heads[1].flags & END_STREAM, 0);
}

/// Stream 1 answered with `content-length: 4`; then `send` runs; returns the DATA bytes of
/// stream 1 on the wire and how the stream ended (END_STREAM or an RST_STREAM code).
fn declared_four(send: impl FnOnce(&mut Http2)) -> (Vec<u8>, Option<u32>) {
    let mut conn = connected(&Settings::default());
    request_stream(&mut conn, 1, &get("/"), true);
    conn.take_events();
    let fields = vec![(b"content-length".to_vec(), b"4".to_vec())];
    conn.send_response(1, 200, &fields, false).expect("head");
    send(&mut conn);
    let out = frames(&conn.take_output());
    let data = out
        .iter()
        .filter(|f| f.kind == DATA && f.stream == 1)
        .flat_map(|f| f.payload.clone())
        .collect();
    let ended = out.iter().find_map(|f| match f.kind {
        DATA if f.flags & END_STREAM != 0 => Some(0),
        RST_STREAM => Some(u32::from_be_bytes([
            f.payload[0],
            f.payload[1],
            f.payload[2],
            f.payload[3],
        ])),
        _ => None,
    });
    (data, ended)
}

#[test]
fn a_body_matching_its_content_length_ends_the_stream() {
    let (data, ended) = declared_four(|conn| {
        conn.send_data(1, Bytes::from_static(b"ab"), false)
            .expect("body");
        conn.send_data(1, Bytes::from_static(b"cd"), true)
            .expect("body");
    });
    assert_eq!((data, ended), (b"abcd".to_vec(), Some(0)));
}

#[test]
fn a_body_past_its_content_length_is_refused_and_reset() {
    let (data, ended) = declared_four(|conn| {
        conn.send_data(1, Bytes::from_static(b"ab"), false)
            .expect("body");
        let refused = conn.send_data(1, Bytes::from_static(b"cde"), true);
        assert!(matches!(refused, Err(SendError::Invalid(_))), "{refused:?}");
    });
    assert_eq!(
        (data, ended),
        (b"ab".to_vec(), Some(INTERNAL_ERROR)),
        "what went before leaves, then the reset"
    );
}

#[test]
fn a_body_short_of_its_content_length_is_reset() {
    let (data, ended) = declared_four(|conn| {
        conn.send_data(1, Bytes::from_static(b"ab"), true)
            .expect("the app is not told, as on HTTP/1.1");
        assert_eq!(conn.take_events(), [Event::Sent { stream: 1 }]);
        conn.forget(1);
    });
    assert_eq!((data, ended), (b"ab".to_vec(), Some(INTERNAL_ERROR)));
    let (_, ended) = declared_four(|conn| {
        conn.send_trailers(1, &[]).expect("trailers");
    });
    assert_eq!(ended, Some(INTERNAL_ERROR), "trailers after a short body");
}

#[test]
fn a_head_ending_a_declared_body_is_reset() {
    let mut conn = connected(&Settings::default());
    request_stream(&mut conn, 1, &get("/"), true);
    let fields = vec![(b"content-length".to_vec(), b"4".to_vec())];
    conn.send_response(1, 200, &fields, true).expect("head");
    let out = frames(&conn.take_output());
    let kinds: Vec<(u8, u8)> = out
        .iter()
        .filter(|f| f.stream == 1)
        .map(|f| (f.kind, f.flags & END_STREAM))
        .collect();
    assert_eq!(
        kinds,
        [(HEADERS, 0), (RST_STREAM, 0)],
        "the head, then the reset"
    );
}

#[test]
fn client_reset_is_an_event() {
    let mut conn = connected(&Settings::default());
    request_stream(&mut conn, 1, &get("/"), false);
    conn.take_events();
    conn.receive(&frame(RST_STREAM, 0, 1, &8u32.to_be_bytes()));
    assert_eq!(conn.take_events(), [Event::Reset { stream: 1, code: 8 }]);
    assert_eq!(conn.send_response(1, 200, &[], true), Err(SendError::Gone));
}

#[test]
fn body_waits_for_the_client_window() {
    let mut conn = connected(&Settings::default());
    request_stream(&mut conn, 1, &get("/"), true);
    conn.take_events();
    conn.send_response(1, 200, &[], false).expect("head");
    conn.send_data(1, Bytes::from(vec![b'x'; 100_000]), true)
        .expect("body");
    let sent = |out: &[Frame]| {
        out.iter()
            .filter(|f| f.kind == DATA)
            .map(|f| f.payload.len())
            .sum::<usize>()
    };
    assert_eq!(sent(&frames(&conn.take_output())), 65_535);
    assert!(conn.take_events().is_empty(), "send() must keep waiting");
    let more = 40_000u32.to_be_bytes();
    conn.receive(&frame(WINDOW_UPDATE, 0, 0, &more));
    conn.receive(&frame(WINDOW_UPDATE, 0, 1, &more));
    assert_eq!(sent(&frames(&conn.take_output())), 100_000 - 65_535);
    assert_eq!(conn.take_events(), [Event::Sent { stream: 1 }]);
}

#[test]
fn graceful_shutdown_sends_goaway_and_finishes_open_streams() {
    let mut conn = connected(&Settings::default());
    request_stream(&mut conn, 1, &get("/"), true);
    conn.graceful_shutdown();
    let out = frames(&conn.take_output());
    assert!(
        out.iter().any(|f| f.kind == GOAWAY),
        "the first GOAWAY announces it"
    );
    let ping = out
        .iter()
        .find(|f| f.kind == PING)
        .expect("PING before the final GOAWAY");
    conn.receive(&frame(PING, 0x1, 0, &ping.payload));
    let out = frames(&conn.take_output());
    let goaway = out.iter().find(|f| f.kind == GOAWAY).expect("final GOAWAY");
    assert_eq!(goaway.payload[..4], 1u32.to_be_bytes(), "last stream id");
    request_stream(&mut conn, 3, &get("/late"), true);
    assert!(
        !conn
            .take_events()
            .iter()
            .any(|e| matches!(e, Event::Request { stream: 3, .. })),
        "no new stream after GOAWAY"
    );
    conn.send_response(1, 200, &[], true)
        .expect("in-flight stream still answers");
    let out = frames(&conn.take_output());
    assert!(out.iter().any(|f| f.kind == HEADERS && f.stream == 1));
    assert!(conn.is_closed(), "closes once the last stream is done");
}

#[test]
fn rapid_reset_gets_enhance_your_calm() {
    let settings = Settings {
        max_pending_accept_reset_streams: 5,
        ..Settings::default()
    };
    let mut conn = connected(&settings);
    let mut burst = Vec::new();
    for i in 0..20u32 {
        let id = 2 * i + 1;
        burst.extend(frame(HEADERS, END_HEADERS, id, &block(&get("/"))));
        burst.extend(frame(RST_STREAM, 0, id, &8u32.to_be_bytes()));
    }
    conn.receive(&burst);
    let out = frames(&conn.take_output());
    let goaway = out.iter().find(|f| f.kind == GOAWAY).expect("GOAWAY");
    assert_eq!(
        goaway.payload[4..8],
        11u32.to_be_bytes(),
        "ENHANCE_YOUR_CALM"
    );
}

#[test]
fn streams_reset_after_acceptance_past_the_floor_get_enhance_your_calm() {
    let mut conn = connected(&Settings::default());
    let mut goaway = None;
    for i in 0..400u32 {
        let id = 2 * i + 1;
        request_stream(&mut conn, id, &get("/"), false);
        conn.receive(&frame(RST_STREAM, 0, id, &8u32.to_be_bytes()));
        let out = frames(&conn.take_output());
        if let Some(frame) = out.into_iter().find(|f| f.kind == GOAWAY) {
            goaway = Some((i, frame));
            break;
        }
    }
    let (at, frame) = goaway.expect("GOAWAY before 400 reset streams");
    assert!(
        at >= 100,
        "ordinary cancellations are tolerated (got GOAWAY at {at})"
    );
    assert_eq!(frame.payload[4..8], ENHANCE_YOUR_CALM.to_be_bytes());
}

#[test]
fn ping_settings_and_empty_data_floods_get_enhance_your_calm() {
    for kind in ["ping", "settings", "empty-data"] {
        let mut conn = connected(&Settings::default());
        request_stream(&mut conn, 1, &get("/"), false);
        let one = match kind {
            "ping" => frame(PING, 0, 0, &[0; 8]),
            "settings" => frame(SETTINGS, 0, 0, &[]),
            _ => frame(DATA, 0, 1, &[]),
        };
        let mut goaway = None;
        for _ in 0..30 {
            conn.receive(&one.repeat(100));
            let out = frames(&conn.take_output());
            if let Some(frame) = out.into_iter().find(|f| f.kind == GOAWAY) {
                goaway = Some(frame);
                break;
            }
        }
        let frame = goaway.unwrap_or_else(|| panic!("no GOAWAY for a {kind} flood"));
        assert_eq!(
            frame.payload[4..8],
            ENHANCE_YOUR_CALM.to_be_bytes(),
            "{kind}"
        );
    }
}

#[test]
fn a_few_pings_are_answered() {
    let mut conn = connected(&Settings::default());
    for _ in 0..50 {
        conn.receive(&frame(PING, 0, 0, &[1; 8]));
    }
    let out = frames(&conn.take_output());
    assert_eq!(
        out.iter()
            .filter(|f| f.kind == PING && f.flags == 1)
            .count(),
        50
    );
    assert!(out.iter().all(|f| f.kind != GOAWAY));
}

#[test]
fn answered_streams_do_not_count_as_resets() {
    let mut conn = connected(&Settings::default());
    for i in 0..300u32 {
        let id = 2 * i + 1;
        request_stream(&mut conn, id, &get("/"), true);
        conn.send_response(id, 200, &[], true).expect("answered");
        conn.receive(&frame(RST_STREAM, 0, id, &8u32.to_be_bytes()));
    }
    let out = frames(&conn.take_output());
    assert!(out.iter().all(|f| f.kind != GOAWAY));
}

#[test]
fn oversized_header_list_is_refused() {
    let settings = Settings {
        max_header_list_size: 1024,
        ..Settings::default()
    };
    let mut conn = connected(&settings);
    let big = "v".repeat(120);
    let mut fields = get("/");
    for _ in 0..20 {
        fields.push(("x-big", &big));
    }
    request_stream(&mut conn, 1, &fields, true);
    let events = conn.take_events();
    assert!(
        !events.iter().any(|e| matches!(e, Event::Request { .. })),
        "{events:?}"
    );
    let out = frames(&conn.take_output());
    assert!(out
        .iter()
        .any(|f| f.kind == HEADERS || f.kind == RST_STREAM || f.kind == GOAWAY));
}

/// Whether stream `stream` was answered with a response head ending the stream, and its
/// request never reached the application.
fn answered_without_request(conn: &mut Http2, stream: u32) -> bool {
    let events = conn.take_events();
    let out = frames(&conn.take_output());
    !events.iter().any(|e| matches!(e, Event::Request { .. }))
        && out
            .iter()
            .any(|f| f.kind == HEADERS && f.stream == stream && f.flags & END_STREAM != 0)
}

#[test]
fn too_many_fields_are_answered_without_reaching_the_application() {
    let settings = Settings {
        max_fields: 3,
        ..Settings::default()
    };
    let mut conn = connected(&settings);
    let mut fields = get("/");
    fields.extend([("a", "1"), ("b", "2"), ("c", "3")]);
    request_stream(&mut conn, 1, &fields, true);
    let events = conn.take_events();
    assert!(
        matches!(events[..], [Event::Request { stream: 1, .. }]),
        "{events:?}"
    );
    fields.push(("d", "4"));
    request_stream(&mut conn, 3, &fields, true);
    assert!(answered_without_request(&mut conn, 3));
}

#[test]
fn a_field_too_long_is_answered_without_reaching_the_application() {
    let settings = Settings {
        max_field_size: 10,
        ..Settings::default()
    };
    let mut conn = connected(&settings);
    let mut fields = get("/");
    // `x-a: 12345` is 10 bytes as an HTTP/1.1 line: within the limit.
    fields.push(("x-a", "12345"));
    request_stream(&mut conn, 1, &fields, true);
    let events = conn.take_events();
    assert!(
        matches!(events[..], [Event::Request { stream: 1, .. }]),
        "{events:?}"
    );
    fields.push(("x-b", "123456"));
    // With a body still to come: the stream is answered all the same.
    request_stream(&mut conn, 3, &fields, false);
    assert!(answered_without_request(&mut conn, 3));
}

#[test]
fn malformed_requests_are_reset_with_protocol_error() {
    let with = |name, value| {
        let mut fields = get("/");
        fields.push((name, value));
        fields
    };
    let mut userinfo = get("/");
    userinfo[2].1 = "user:pw@example.test";
    // No :authority: the host fields name the authority, and one at most may.
    let hosts = |second| {
        let mut fields = get("/");
        fields.remove(2);
        fields.extend([("host", "a.example"), ("host", second)]);
        fields
    };
    let cases = [
        ("leading SP", with("x-a", " v")),
        ("trailing SP", with("x-a", "v ")),
        ("leading HTAB", with("x-a", "\tv")),
        ("userinfo in :authority", userinfo),
        ("invalid host", with("host", "a b")),
        ("two hosts without :authority", hosts("b.example")),
        ("the same host twice without :authority", hosts("a.example")),
        ("CONNECT without :authority", vec![(":method", "CONNECT")]),
    ];
    for (what, fields) in cases {
        let mut conn = connected(&Settings::default());
        request_stream(&mut conn, 1, &fields, true);
        let events = conn.take_events();
        assert!(
            !events.iter().any(|e| matches!(e, Event::Request { .. })),
            "{what}: {events:?}"
        );
        let out = frames(&conn.take_output());
        assert_eq!(rst_code(&out, 1), Some(PROTOCOL_ERROR), "{what}");
        assert_eq!(conn.take_stream_errors(), [(1, PROTOCOL_ERROR)], "{what}");
    }
    let mut conn = connected(&Settings::default());
    request_stream(&mut conn, 1, &with("x-a", "inner SP ok"), true);
    let events = conn.take_events();
    assert!(
        matches!(events[..], [Event::Request { stream: 1, .. }]),
        "{events:?}"
    );
}

#[test]
fn a_well_formed_connect_is_answered_501_without_reaching_the_application() {
    let mut connect = get("/");
    connect.retain(|(name, _)| !matches!(*name, ":scheme" | ":path"));
    connect[0].1 = "CONNECT";
    for end in [true, false] {
        let mut conn = connected(&Settings::default());
        request_stream(&mut conn, 1, &connect, end);
        let events = conn.take_events();
        assert!(
            !events.iter().any(|e| matches!(e, Event::Request { .. })),
            "{events:?}"
        );
        let out = frames(&conn.take_output());
        let head = out
            .iter()
            .find(|f| f.kind == HEADERS && f.stream == 1)
            .expect("a response head on stream 1");
        assert_ne!(head.flags & END_STREAM, 0);
        // Not :status 200 (0x88 in the static table); its 501 is read in the pytest case.
        assert_ne!(head.payload.first(), Some(&0x88));
        assert!(!conn.is_closed());
    }
}

#[test]
fn a_bad_preface_closes_the_connection() {
    let mut conn = Http2::new(&Settings::default());
    conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(conn.is_closed());
    assert!(matches!(
        conn.take_events().last(),
        Some(Event::Closed { .. })
    ));
}

#[test]
fn eof_closes_and_resets_open_streams() {
    let mut conn = connected(&Settings::default());
    request_stream(&mut conn, 1, &get("/"), false);
    conn.take_events();
    conn.receive(b"");
    let events = conn.take_events();
    assert!(events.contains(&Event::Reset { stream: 1, code: 0 }));
    assert!(matches!(events.last(), Some(Event::Closed { .. })));
}

#[test]
fn sniffing_waits_for_enough_bytes() {
    assert_eq!(sniff(b""), None);
    assert_eq!(sniff(b"P"), None, "POST and PRI share their first byte");
    assert_eq!(sniff(b"PRI * HTTP/2.0\r\n"), None);
    assert_eq!(sniff(b"PO"), Some(false));
    assert_eq!(sniff(b"GET / HTTP/1.1\r\n"), Some(false));
    assert_eq!(sniff(PREFACE), Some(true));
    let mut more = PREFACE.to_vec();
    more.extend_from_slice(b"\0\0\0\x04");
    assert_eq!(sniff(&more), Some(true));
}

/// The GOAWAY in `out`, with its error code; fails if there is none.
fn goaway_code(out: &[Frame]) -> u32 {
    let goaway = out.iter().find(|f| f.kind == GOAWAY).expect("GOAWAY");
    u32::from_be_bytes(goaway.payload[4..8].try_into().expect("GOAWAY payload"))
}

fn rst_code(out: &[Frame], stream: u32) -> Option<u32> {
    let rst = out
        .iter()
        .find(|f| f.kind == RST_STREAM && f.stream == stream)?;
    Some(u32::from_be_bytes(rst.payload[..4].try_into().ok()?))
}

/// The connection still answers a PING.
fn answers_ping(conn: &mut Http2) -> bool {
    conn.receive(&frame(PING, 0, 0, b"stillok?"));
    let out = frames(&conn.take_output());
    out.iter()
        .any(|f| f.kind == PING && f.flags == 1 && f.payload == b"stillok?")
}

#[test]
fn a_frame_before_the_clients_settings_is_a_protocol_error() {
    let mut conn = Http2::new(&Settings::default());
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(PING, 0, 0, &[0; 8]));
    hello.extend(frame(SETTINGS, 0, 0, &[]));
    conn.receive(&hello);
    let out = frames(&conn.take_output());
    assert_eq!(out[0].kind, SETTINGS, "the server's preface still goes out");
    assert_eq!(goaway_code(&out), PROTOCOL_ERROR);
    assert!(
        out.iter().all(|f| f.kind != PING),
        "the PING is not answered"
    );
    assert!(conn.is_closed());
}

#[test]
fn frames_of_the_wrong_size_are_frame_size_errors() {
    let open = frame(HEADERS, END_HEADERS, 1, &block(&get("/")));
    let cases: [(&str, Vec<u8>); 9] = [
        ("short ping", frame(PING, 0, 0, &[0; 7])),
        ("long ping", frame(PING, 0, 0, &[0; 9])),
        (
            "short rst_stream",
            [open.clone(), frame(RST_STREAM, 0, 1, &[0; 3])].concat(),
        ),
        (
            "long rst_stream",
            [open, frame(RST_STREAM, 0, 1, &[0; 5])].concat(),
        ),
        ("settings ack with payload", frame(SETTINGS, 1, 0, &[0; 6])),
        ("settings of 5 bytes", frame(SETTINGS, 0, 0, &[0; 5])),
        (
            "short window_update",
            frame(WINDOW_UPDATE, 0, 0, &[0, 0, 1]),
        ),
        ("short goaway", frame(GOAWAY, 0, 0, &[0; 7])),
        (
            "padded headers without room",
            frame(HEADERS, 0x8 | END_HEADERS, 1, &[]),
        ),
    ];
    for (name, bytes) in cases {
        let mut conn = connected(&Settings::default());
        conn.receive(&bytes);
        let out = frames(&conn.take_output());
        assert_eq!(goaway_code(&out), FRAME_SIZE_ERROR, "{name}");
        assert!(conn.is_closed(), "{name}");
    }
}

#[test]
fn a_header_split_across_reads_is_checked_whole() {
    let mut conn = connected(&Settings::default());
    for byte in frame(PING, 0, 0, &[0; 7]) {
        conn.receive(&[byte]);
    }
    let out = frames(&conn.take_output());
    assert_eq!(goaway_code(&out), FRAME_SIZE_ERROR);
    assert!(out.iter().all(|f| f.kind != PING));
}

#[test]
fn priority_of_the_wrong_size_resets_an_open_stream() {
    let mut conn = connected(&Settings::default());
    request_stream(&mut conn, 1, &get("/"), true);
    conn.take_events();
    conn.receive(&frame(PRIORITY, 0, 1, &[0, 0, 0, 0]));
    assert_eq!(
        rst_code(&frames(&conn.take_output()), 1),
        Some(FRAME_SIZE_ERROR)
    );
    assert_eq!(
        conn.take_events(),
        [Event::Reset {
            stream: 1,
            code: FRAME_SIZE_ERROR
        }]
    );
    assert!(
        answers_ping(&mut conn),
        "a stream error spares the connection"
    );
    // On an idle stream no RST_STREAM may be sent (§6.4): the connection ends instead.
    conn.receive(&frame(PRIORITY, 0, 9, &[0; 6]));
    assert_eq!(goaway_code(&frames(&conn.take_output())), FRAME_SIZE_ERROR);
}

/// The error the connection's [`Event::Closed`] carries, once it closed.
fn closed_error(conn: &mut Http2) -> Option<Option<String>> {
    conn.take_events().into_iter().find_map(|e| match e {
        Event::Closed { error } => Some(error),
        _ => None,
    })
}

#[test]
fn connection_errors_say_why_and_stream_errors_are_counted() {
    let mut conn = connected(&Settings::default());
    conn.receive(&frame(DATA, 0, 0, b"x"));
    let error = closed_error(&mut conn).flatten().expect("a reason");
    assert!(error.starts_with("HTTP/2 PROTOCOL_ERROR"), "{error}");

    let mut conn = connected(&Settings::default());
    for _ in 0..30 {
        conn.receive(&frame(PING, 0, 0, &[0; 8]).repeat(100));
    }
    let error = closed_error(&mut conn).flatten().expect("a reason");
    assert!(error.starts_with("HTTP/2 ENHANCE_YOUR_CALM"), "{error}");

    let mut conn = connected(&Settings::default());
    request_stream(&mut conn, 1, &get("/"), true);
    conn.receive(&frame(PRIORITY, 0, 1, &[0, 0, 0, 0]));
    conn.take_output();
    assert_eq!(conn.take_stream_errors(), [(1, FRAME_SIZE_ERROR)]);
    assert_eq!(conn.take_stream_errors(), []);
    conn.abort(0);
    assert_eq!(
        closed_error(&mut conn),
        Some(None),
        "closing idle is no error"
    );
}

#[test]
fn settings_initial_window_above_the_maximum_is_a_flow_control_error() {
    let mut conn = connected(&Settings::default());
    let mut settings = frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]);
    settings.extend([0, 4, 0x80, 0, 0, 0]);
    settings[2] = 12;
    let (a, b) = settings.split_at(13);
    conn.receive(a);
    conn.receive(b);
    let out = frames(&conn.take_output());
    assert_eq!(goaway_code(&out), FLOW_CONTROL_ERROR);
}

#[test]
fn a_field_block_must_be_contiguous() {
    let mut conn = connected(&Settings::default());
    let head = block(&get("/"));
    let mut bytes = frame(HEADERS, END_STREAM, 1, &head[..3]);
    bytes.extend(frame(PING, 0, 0, &[0; 8]));
    bytes.extend(frame(CONTINUATION, END_HEADERS, 1, &head[3..]));
    conn.receive(&bytes);
    let out = frames(&conn.take_output());
    assert_eq!(goaway_code(&out), PROTOCOL_ERROR);
    assert!(out.iter().all(|f| f.kind != PING));
}

/// A request head adding `x-t: 1` to the HPACK dynamic table (literal with incremental
/// indexing, new name): the next block can refer to it as index 62.
fn indexing_block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = block(fields);
    out.extend([0x40, 3, b'x', b'-', b't', 1, b'1']);
    out
}

#[test]
fn data_and_trailers_after_end_stream_reset_the_stream_with_stream_closed() {
    for late in [
        frame(DATA, END_STREAM, 1, b"late"),
        frame(HEADERS, END_STREAM | END_HEADERS, 1, &indexing_block(&[])),
    ] {
        let mut conn = connected(&Settings::default());
        request_stream(&mut conn, 1, &get("/"), true);
        conn.take_events();
        conn.receive(&late);
        let out = frames(&conn.take_output());
        assert_eq!(rst_code(&out, 1), Some(STREAM_CLOSED));
        assert!(out.iter().all(|f| f.kind != GOAWAY));
        assert_eq!(
            conn.take_events(),
            [Event::Reset {
                stream: 1,
                code: STREAM_CLOSED
            }]
        );
        // The engine still decoded the late field block: index 62 is `x-t: 1` on both sides.
        let dynamic = late[3] == HEADERS;
        let mut next = block(&get("/next"));
        if dynamic {
            next.push(0x80 | 62);
        }
        conn.receive(&frame(HEADERS, END_STREAM | END_HEADERS, 3, &next));
        let events = conn.take_events();
        let Some(Event::Request { stream: 3, head }) = events.first() else {
            panic!("no request on stream 3: {events:?}");
        };
        let last = head
            .headers
            .last()
            .map(|(n, v)| (n.as_slice(), v.as_slice()));
        assert_eq!(last == Some((b"x-t", b"1")), dynamic, "{events:?}");
    }
}

#[test]
fn frames_after_a_finished_stream_end_the_connection_with_stream_closed() {
    for late in [
        frame(DATA, END_STREAM, 1, b"late"),
        frame(
            HEADERS,
            END_STREAM | END_HEADERS,
            1,
            &block(&[("x-t", "1")]),
        ),
    ] {
        let mut conn = connected(&Settings::default());
        request_stream(&mut conn, 1, &get("/"), true);
        conn.send_response(1, 200, &[], true).expect("answered");
        conn.take_output();
        conn.receive(&late);
        assert_eq!(goaway_code(&frames(&conn.take_output())), STREAM_CLOSED);
    }
}

#[test]
fn frames_after_a_client_reset_end_the_connection_with_stream_closed() {
    let mut conn = connected(&Settings::default());
    request_stream(&mut conn, 1, &get("/"), false);
    let mut bytes = frame(RST_STREAM, 0, 1, &8u32.to_be_bytes());
    bytes.extend(frame(
        HEADERS,
        END_STREAM | END_HEADERS,
        1,
        &block(&[("x-t", "1")]),
    ));
    conn.receive(&bytes);
    assert_eq!(goaway_code(&frames(&conn.take_output())), STREAM_CLOSED);
}

/// A connection with a POST on stream 1 whose body is followed by `trailers`, each byte
/// read on its own.
fn post_with_trailers(trailers: &[(&str, &str)]) -> Http2 {
    let mut conn = connected(&Settings::default());
    let mut fields = get("/");
    fields[0].1 = "POST";
    request_stream(&mut conn, 1, &fields, false);
    let mut bytes = frame(DATA, 0, 1, b"body");
    bytes.extend(frame(
        HEADERS,
        END_STREAM | END_HEADERS,
        1,
        &block(trailers),
    ));
    for byte in bytes {
        conn.receive(&[byte]);
    }
    conn
}

#[test]
fn body_and_trailers_on_an_open_stream_are_served() {
    let mut conn = post_with_trailers(&[("x-t", "1")]);
    let events = conn.take_events();
    assert!(events.contains(&Event::End { stream: 1 }), "{events:?}");
    assert!(answers_ping(&mut conn));
}

#[test]
fn a_connection_is_asked_to_go_after_max_requests() {
    let settings = Settings {
        max_requests: 3,
        ..Settings::default()
    };
    let mut conn = connected(&settings);
    for id in [1, 3] {
        request_stream(&mut conn, id, &get("/"), true);
    }
    assert!(frames(&conn.take_output()).iter().all(|f| f.kind != GOAWAY));
    request_stream(&mut conn, 5, &get("/"), true);
    let out = frames(&conn.take_output());
    assert_eq!(goaway_code(&out), 0, "NO_ERROR: a graceful GOAWAY");
    let requests = conn
        .take_events()
        .iter()
        .filter(|e| matches!(e, Event::Request { .. }))
        .count();
    assert_eq!(requests, 3, "the requests up to the cap are all served");
    assert!(!conn.is_closed(), "open streams finish first");
}

/// The last stream id of each GOAWAY in `out`.
fn goaway_last_streams(out: &[Frame]) -> Vec<u32> {
    out.iter()
        .filter(|f| f.kind == GOAWAY)
        .map(|f| {
            let id = [f.payload[0], f.payload[1], f.payload[2], f.payload[3]];
            u32::from_be_bytes(id) & 0x7fff_ffff
        })
        .collect()
}

#[test]
fn the_final_goaway_does_not_wait_forever_for_the_ping_ack() {
    let settings = Settings {
        max_requests: 1,
        ..Settings::default()
    };
    let mut conn = connected(&settings);
    request_stream(&mut conn, 1, &get("/"), true);
    let out = frames(&conn.take_output());
    assert_eq!(goaway_last_streams(&out), [0x7fff_ffff], "the first GOAWAY");
    assert!(
        out.iter().any(|f| f.kind == PING),
        "its PING, never acknowledged"
    );
    let began = Instant::now();
    assert!(!conn.expire(began), "not before the wait is over");
    request_stream(&mut conn, 3, &get("/"), true);
    conn.take_output();
    assert!(conn.expire(began + SHUTDOWN_PING_WAIT + Duration::from_millis(1)));
    let out = frames(&conn.take_output());
    assert_eq!(goaway_last_streams(&out), [3], "the final GOAWAY");
    assert!(!conn.expire(began + SHUTDOWN_PING_WAIT * 2), "sent once");
    conn.take_events();
    request_stream(&mut conn, 5, &get("/"), true);
    let events = conn.take_events();
    assert!(
        !events.iter().any(|e| matches!(e, Event::Request { .. })),
        "{events:?}"
    );
    let out = frames(&conn.take_output());
    assert!(out.iter().any(|f| f.kind == RST_STREAM && f.stream == 5));
    // The client's late acknowledgement changes nothing.
    let late = [0x0b, 0x7b, 0xa2, 0xf0, 0x8b, 0x9b, 0xfe, 0x54];
    conn.receive(&frame(PING, 1, 0, &late));
    assert!(frames(&conn.take_output()).iter().all(|f| f.kind != GOAWAY));
}

#[test]
fn an_undecodable_field_block_is_a_compression_error() {
    let mut conn = connected(&Settings::default());
    let mut head = block(&get("/"));
    head.push(0x80);
    for byte in frame(HEADERS, END_STREAM | END_HEADERS, 1, &head) {
        conn.receive(&[byte]);
    }
    let out = frames(&conn.take_output());
    assert_eq!(goaway_code(&out), COMPRESSION_ERROR);
    let events = conn.take_events();
    assert!(
        !events.iter().any(|e| matches!(e, Event::Request { .. })),
        "no request is made of it: {events:?}"
    );
    assert!(conn.is_closed());
}

#[test]
fn a_pseudo_header_in_trailers_resets_the_stream() {
    let mut conn = post_with_trailers(&[("x-t", "1"), (":path", "/x")]);
    let out = frames(&conn.take_output());
    assert_eq!(rst_code(&out, 1), Some(PROTOCOL_ERROR));
    let events = conn.take_events();
    assert!(!events.contains(&Event::End { stream: 1 }), "{events:?}");
    request_stream(&mut conn, 3, &get("/"), true);
    assert!(
        conn.take_events()
            .iter()
            .any(|e| matches!(e, Event::Request { .. })),
        "the connection goes on"
    );
}

#[test]
fn late_data_on_a_stream_refused_over_capacity_is_ignored() {
    let settings = Settings {
        max_concurrent_streams: 2,
        ..Settings::default()
    };
    let mut conn = connected(&settings);
    for stream in [1, 3] {
        request_stream(&mut conn, stream, &get("/"), true);
    }
    request_stream(&mut conn, 5, &get("/"), false);
    assert_eq!(
        rst_code(&frames(&conn.take_output()), 5),
        Some(REFUSED_STREAM)
    );
    // DATA the client had in flight when the refusal went out.
    conn.receive(&frame(DATA, END_STREAM, 5, b"late"));
    let out = frames(&conn.take_output());
    assert!(out.iter().all(|f| f.stream != 5), "no second RST_STREAM");
    assert_eq!(conn.take_stream_errors(), [], "a refusal is no error");
    assert!(answers_ping(&mut conn), "the connection goes on");
}

#[test]
fn malformed_requests_the_engine_resets_are_reported() {
    let mut conn = connected(&Settings::default());
    let mut fields = get("/");
    fields.push(("connection", "close"));
    request_stream(&mut conn, 1, &fields, true);
    assert_eq!(
        rst_code(&frames(&conn.take_output()), 1),
        Some(PROTOCOL_ERROR)
    );
    assert_eq!(conn.take_stream_errors(), [(1, PROTOCOL_ERROR)]);
}

#[test]
fn a_hash_in_the_path_is_malformed_however_encoded() {
    let pseudo = |path: &[u8]| {
        let mut fields = get("/");
        fields.retain(|(name, _)| *name != ":path");
        let mut out = block(&fields);
        out.extend(path);
        out
    };
    // `:path` by static index 4, its value a literal, added to the dynamic table (62).
    let mut indexed = vec![0x44, 4];
    indexed.extend(b"/x#y");
    let cases: [(&str, Vec<u8>); 3] = [
        ("literal name", block(&[(":path", "/a#b")])),
        ("static name, indexed value", indexed),
        ("dynamic table reference", vec![0xbe]),
    ];
    let mut conn = connected(&Settings::default());
    let mut stream = 1;
    for (what, path) in cases {
        let head = frame(HEADERS, END_HEADERS | END_STREAM, stream, &pseudo(&path));
        conn.receive(&head);
        let events = conn.take_events();
        assert!(
            !events.iter().any(|e| matches!(e, Event::Request { .. })),
            "{what}: {events:?}"
        );
        let out = frames(&conn.take_output());
        assert_eq!(rst_code(&out, stream), Some(PROTOCOL_ERROR), "{what}");
        stream += 2;
    }
    request_stream(&mut conn, stream, &get("/a?b"), true);
    let events = conn.take_events();
    assert!(matches!(events[..], [Event::Request { .. }]), "{events:?}");
}

#[test]
fn a_hash_in_the_path_is_malformed_when_its_block_ends_in_a_later_read() {
    // `:path` first, in the HEADERS frame; the rest of the block in a CONTINUATION frame
    // that arrives in a read of its own.
    let mut fields = vec![(":path", "/a#b")];
    fields.extend(get("/").into_iter().filter(|(name, _)| *name != ":path"));
    let whole = block(&fields);
    let path_field = block(&fields[..1]).len();
    let mut conn = connected(&Settings::default());
    conn.receive(&frame(HEADERS, END_STREAM, 1, &whole[..path_field]));
    let _ = conn.take_output();
    conn.receive(&frame(CONTINUATION, END_HEADERS, 1, &whole[path_field..]));
    let events = conn.take_events();
    assert!(
        !events.iter().any(|e| matches!(e, Event::Request { .. })),
        "{events:?}"
    );
    assert_eq!(
        rst_code(&frames(&conn.take_output()), 1),
        Some(PROTOCOL_ERROR)
    );
    request_stream(&mut conn, 3, &get("/a"), true);
    let events = conn.take_events();
    assert!(matches!(events[..], [Event::Request { .. }]), "{events:?}");
}
