//! What the engine refuses: a wrong ALPN, junk datagrams, and requests or streams that
//! break RFC 9114, each with its error code.

use std::time::Instant;

use super::client::{headers_frame, request_fields};
use super::{addr, Pair, Settings};
use crate::http3::{codes, frame, Endpoint, Event};

fn ignore(_: &mut Endpoint, _: Instant, _: &Event) {}

#[test]
fn wrong_alpn_is_refused() {
    let mut pair = Pair::with_alpn(&Settings::default(), b"h2");
    pair.settle(&|p| p.client.lost.is_some());
    assert!(!pair.client.connected);
    // TLS alert no_application_protocol (120) as a QUIC CRYPTO_ERROR (0x100 + alert).
    match &pair.client.lost {
        Some(quinn_proto::ConnectionError::ConnectionClosed(close)) => {
            assert_eq!(u64::from(close.error_code), 0x178);
        }
        other => panic!("expected a CRYPTO_ERROR close, got {other:?}"),
    }
    assert!(!pair.seen.iter().any(|e| matches!(e, Event::Request { .. })));
    pair.settle(&|p| p.server.connections() == 0);
    assert_eq!(pair.server.connections(), 0);
}

/// A small deterministic generator (xorshift), so the junk is the same every run.
fn junk(seed: &mut u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            *seed as u8
        })
        .collect()
}

#[test]
fn junk_datagrams_are_dropped_without_state() {
    let mut pair = Pair::new(&Settings::default());
    pair.settle(&|p| p.client.connected);
    let now = pair.now;
    let mut seed = 0x9e37_79b9_7f4a_7c15;
    for i in 0..1000u32 {
        let len = [1, 20, 200, 1200, 1350][i as usize % 5];
        let mut datagram = junk(&mut seed, len);
        if i % 3 == 0 {
            // Long header with QUIC v1: gets as far as the packet protection.
            datagram[0] |= 0xc0;
            if let Some(version) = datagram.get_mut(1..5) {
                version.copy_from_slice(&[0, 0, 0, 1]);
            }
        }
        let from = addr(&format!("10.0.{}.{}:{}", i % 7, i % 251, 1024 + i));
        pair.server.datagram_received(now, from, &datagram);
    }
    // One real connection, no new ones, no events; what the engine answered on its own
    // (version negotiation, stateless resets) stays bounded.
    assert_eq!(pair.server.connections(), 1);
    assert!(pair.server.take_events().is_empty());
    let mut answers = 0;
    while let Some(t) = pair.server.poll_transmit(now, &mut Vec::new()) {
        // The engine's own answers belong to no connection; the client's datagrams do.
        assert_eq!(t.conn.is_some(), t.destination == addr(super::CLIENT));
        if t.destination != addr(super::CLIENT) {
            answers += 1;
        }
        assert!(answers <= 64);
    }
    // The real connection still works.
    let id = pair.client.request(&request_fields("GET", "/"), b"", true);
    pair.run(&mut super::exchange::hello, &|p| {
        p.client.responses[&id].done
    });
    assert_eq!(pair.client.responses[&id].status(), Some(&b"200"[..]));
}

/// Send `raw` on a request stream; the connection must close with `code`.
fn connection_error(raw: Vec<u8>, code: u64) {
    let mut pair = Pair::new(&Settings::default());
    pair.settle(&|p| p.client.connected);
    pair.client.send_raw(raw, true);
    pair.run(&mut ignore, &|p| p.client.lost.is_some());
    assert_eq!(pair.client.close_code(), Some(code));
    assert!(pair
        .seen
        .iter()
        .any(|e| matches!(e, Event::Closed { error: Some(_), .. })));
}

#[test]
fn frame_errors_close_the_connection() {
    // DATA before HEADERS.
    connection_error(frame::frame(frame::DATA, b"x"), codes::FRAME_UNEXPECTED);
    // SETTINGS on a request stream.
    connection_error(frame::settings(&[]), codes::FRAME_UNEXPECTED);
    // An HTTP/2-only frame type (PING, 0x6).
    connection_error(frame::frame(0x6, b"12345678"), codes::FRAME_UNEXPECTED);
    // A frame cut short by the end of the stream.
    let mut truncated = headers_frame(&request_fields("GET", "/"));
    truncated.extend([0x00, 0x10, b'a']);
    connection_error(truncated, codes::FRAME_ERROR);
    // A dynamic table reference.
    connection_error(
        frame::frame(frame::HEADERS, b"\x00\x00\x80"),
        codes::QPACK_DECOMPRESSION_FAILED,
    );
}

/// Send `raw` on a request stream; that stream alone must be reset with `code`, and the
/// application hears of it only if its head was valid (`announced`).
fn stream_error(raw: Vec<u8>, code: u64, announced: bool) {
    let mut pair = Pair::new(&Settings::default());
    pair.settle(&|p| p.client.connected);
    let id = pair.client.send_raw(raw, true);
    pair.run(&mut ignore, &|p| p.client.responses[&id].reset.is_some());
    assert_eq!(pair.client.responses[&id].reset, Some(code));
    assert!(pair.client.lost.is_none());
    let requested = pair.seen.iter().any(|e| matches!(e, Event::Request { .. }));
    let reset = pair
        .seen
        .iter()
        .any(|e| matches!(e, Event::Reset { code: c, .. } if *c == code));
    assert_eq!((requested, reset), (announced, announced));
}

#[test]
fn malformed_requests_reset_their_stream() {
    stream_error(
        headers_frame(&[(":method", "GET"), (":path", "/")]),
        codes::MESSAGE_ERROR,
        false,
    );
    let mut fields = request_fields("GET", "/");
    fields.push(("Upper", "x"));
    stream_error(headers_frame(&fields), codes::MESSAGE_ERROR, false);
    // No :authority and two host fields, differing or not (HTTP/1.1 takes one Host).
    for second in ["other.example", "localhost"] {
        let mut fields = request_fields("GET", "/");
        fields.retain(|(name, _)| *name != ":authority");
        fields.extend([("host", "localhost"), ("host", second)]);
        stream_error(headers_frame(&fields), codes::MESSAGE_ERROR, false);
    }
    // A request stream that ends before its HEADERS.
    stream_error(
        frame::frame(0x21, b"grease"),
        codes::REQUEST_INCOMPLETE,
        false,
    );
    // Body longer than its content-length.
    let mut fields = request_fields("POST", "/");
    fields.push(("content-length", "1"));
    let mut raw = headers_frame(&fields);
    raw.extend(frame::frame(frame::DATA, b"too long"));
    stream_error(raw, codes::MESSAGE_ERROR, true);
}

#[test]
fn field_sections_over_the_limit_are_refused() {
    let settings = Settings {
        max_header_list_size: 1024,
        ..Settings::default()
    };
    let mut pair = Pair::new(&settings);
    pair.settle(&|p| p.client.connected);
    let big = "v".repeat(1000);
    let mut fields = request_fields("GET", "/");
    fields.push(("x-big", &big));
    let id = pair.client.send_raw(headers_frame(&fields), true);
    pair.run(&mut ignore, &|p| {
        p.client.responses[&id].reset.is_some() || p.client.lost.is_some()
    });
    assert_eq!(
        pair.client.responses[&id].reset,
        Some(codes::EXCESSIVE_LOAD)
    );
}

#[test]
fn control_stream_rules_are_enforced() {
    for (raw, code) in [
        // A second control stream.
        (vec![0x00], codes::STREAM_CREATION_ERROR),
        // A push stream from a client.
        (vec![0x01], codes::STREAM_CREATION_ERROR),
        // An encoder stream that tries to give the dynamic table a capacity.
        (vec![0x02, 0x3f, 0x01], codes::QPACK_ENCODER_STREAM_ERROR),
    ] {
        let mut pair = Pair::new(&Settings::default());
        pair.settle(&|p| p.client.server_settings.is_some());
        pair.client.send_uni(raw);
        pair.run(&mut ignore, &|p| p.client.lost.is_some());
        assert_eq!(pair.client.close_code(), Some(code));
    }
    // Unknown stream types are ignored: the connection goes on.
    let mut pair = Pair::new(&Settings::default());
    pair.settle(&|p| p.client.server_settings.is_some());
    pair.client.send_uni(vec![0x21, 1, 2, 3]);
    let id = pair.client.request(&request_fields("GET", "/"), b"", true);
    pair.run(&mut super::exchange::hello, &|p| {
        p.client.responses[&id].done
    });
    assert!(pair.client.lost.is_none());
}

#[test]
fn random_stream_contents_end_in_an_http3_error_or_nothing() {
    let mut seed = 0x2545_f491_4f6c_dd1d;
    for case in 0..24 {
        let mut pair = Pair::new(&Settings::default());
        pair.settle(&|p| p.client.server_settings.is_some());
        let len = 1 + case * 13;
        if case % 2 == 0 {
            // After a valid head, on a request stream.
            let mut raw = headers_frame(&request_fields("POST", "/"));
            raw.extend(junk(&mut seed, len));
            pair.client.send_raw(raw, true);
        } else {
            // On a unidirectional stream of a random type.
            pair.client.send_uni(junk(&mut seed, len));
        }
        pair.run(&mut ignore, &|p| {
            p.client.lost.is_some() || p.client.responses.values().any(|r| r.reset.is_some())
        });
        if let Some(code) = pair.client.close_code() {
            assert!(
                (0x100..=0x202).contains(&code),
                "case {case}: code {code:#x}"
            );
        }
    }
}

/// Send `fields` (with a body still to come if `open`); whether the stream was answered
/// `status` without the application hearing of it.
fn answered(settings: &Settings, fields: &[(&str, &str)], open: bool, status: &[u8]) -> bool {
    let mut pair = Pair::new(settings);
    pair.settle(&|p| p.client.connected);
    let id = pair.client.send_raw(headers_frame(fields), !open);
    pair.run(&mut super::exchange::hello, &|p| {
        p.client.responses[&id].done || p.client.responses[&id].reset.is_some()
    });
    let requested = pair.seen.iter().any(|e| matches!(e, Event::Request { .. }));
    let response = &pair.client.responses[&id];
    let answered = response.done && response.status() == Some(status);
    assert!(pair.client.lost.is_none());
    assert_eq!(answered, !requested, "{:?}", response.status());
    answered
}

fn answered_431(settings: &Settings, fields: &[(&str, &str)], open: bool) -> bool {
    answered(settings, fields, open, b"431")
}

#[test]
fn too_many_fields_are_answered_431_without_reaching_the_application() {
    let settings = Settings {
        max_fields: 3,
        ..Settings::default()
    };
    let mut fields = request_fields("GET", "/");
    // Each field line counts, cookie crumbs too; pseudo-headers do not.
    fields.extend([("a", "1"), ("cookie", "x=1"), ("cookie", "y=2")]);
    assert!(!answered_431(&settings, &fields, false));
    fields.push(("d", "4"));
    assert!(answered_431(&settings, &fields, false));
    assert!(answered_431(&settings, &fields, true));
}

#[test]
fn a_field_too_long_is_answered_431_without_reaching_the_application() {
    let settings = Settings {
        max_field_size: 10,
        ..Settings::default()
    };
    let mut fields = request_fields("GET", "/");
    // `x-a: 12345` is 10 bytes as an HTTP/1.1 line: within the limit.
    fields.push(("x-a", "12345"));
    assert!(!answered_431(&settings, &fields, false));
    fields.push(("x-b", "123456"));
    assert!(answered_431(&settings, &fields, false));
    // With a body still to come: answered all the same, the rest refused.
    assert!(answered_431(&settings, &fields, true));
}

#[test]
fn a_well_formed_connect_is_answered_501_without_reaching_the_application() {
    let connect = [(":method", "CONNECT"), (":authority", "example.com:443")];
    // Ended, and with tunnel bytes still to come (refused with the rest of the stream).
    assert!(answered(&Settings::default(), &connect, false, b"501"));
    assert!(answered(&Settings::default(), &connect, true, b"501"));
}

#[test]
fn a_malformed_connect_resets_its_stream_with_message_error() {
    let connect = [(":method", "CONNECT"), (":authority", "example.com:443")];
    for fields in [
        vec![(":method", "CONNECT")],
        [&connect[..], &[(":scheme", "https"), (":path", "/")]].concat(),
        [&connect[..], &[(":path", "/")]].concat(),
    ] {
        stream_error(headers_frame(&fields), codes::MESSAGE_ERROR, false);
    }
}
