//! Requests and responses end to end: handshake, GET, a 1 MiB echo across flow control,
//! 50 concurrent streams, and a graceful GOAWAY.

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use sha1::{Digest, Sha1};

use super::client::{data_frames, request_fields};
use super::{Pair, Settings};
use crate::http3::{codes, Endpoint, Event};

/// Answers every request at once with "hello <path>".
pub(super) fn hello(server: &mut Endpoint, now: Instant, event: &Event) {
    if let Event::Request { conn, stream, head } = event {
        let body = format!("hello {}", head.target);
        let headers = [(b"content-type".to_vec(), b"text/plain".to_vec())];
        server
            .send_response(now, *conn, *stream, 200, &headers, false)
            .expect("head");
        server
            .send_data(now, *conn, *stream, Bytes::from(body), true)
            .expect("body");
    }
}

/// Echoes request bodies as they arrive, releasing each chunk only once the response
/// took it (so the client's sending is paced by the server's sending).
#[derive(Default)]
struct Echo {
    unreleased: HashMap<u64, u64>,
}

impl Echo {
    fn on(&mut self, server: &mut Endpoint, now: Instant, event: &Event) {
        match event {
            Event::Request { conn, stream, .. } => {
                server
                    .send_response(now, *conn, *stream, 200, &[], false)
                    .expect("head");
            }
            Event::Data { conn, stream, data } => {
                *self.unreleased.entry(*stream).or_default() += data.len() as u64;
                server
                    .send_data(now, *conn, *stream, data.clone(), false)
                    .expect("echo");
            }
            Event::Sent { conn, stream } => {
                let len = self.unreleased.remove(stream).unwrap_or(0);
                server.release(now, *conn, *stream, len);
            }
            Event::End { conn, stream } => {
                server
                    .send_data(now, *conn, *stream, Bytes::new(), true)
                    .expect("end");
            }
            _ => {}
        }
    }
}

#[test]
fn handshake_negotiates_h3_and_exchanges_settings() {
    let mut pair = Pair::new(&Settings::default());
    pair.settle(&|p| p.client.server_settings.is_some());
    assert!(pair.client.connected);
    let alpn = pair
        .client
        .conn
        .crypto_session()
        .handshake_data()
        .and_then(|d| {
            d.downcast::<quinn_proto::crypto::rustls::HandshakeData>()
                .ok()
        })
        .and_then(|d| d.protocol);
    assert_eq!(alpn.as_deref(), Some(&b"h3"[..]));
    let settings = pair.client.server_settings.clone().expect("settings");
    assert!(
        settings.contains(&(0x1, 0)),
        "dynamic table capacity 0: {settings:?}"
    );
    assert!(
        settings.contains(&(0x7, 0)),
        "no blocked streams: {settings:?}"
    );
    assert!(matches!(pair.seen.first(), Some(Event::Connected { .. })));
    // Without Retry, the server answers with an Initial packet (long header, type 0; the
    // fixed bit may be greased, RFC 9287).
    assert_eq!(pair.first_reply.map(|b| b & 0xb0), Some(0x80));
}

#[test]
fn get_is_answered() {
    let mut pair = Pair::new(&Settings::default());
    pair.settle(&|p| p.client.connected);
    let mut fields = request_fields("GET", "/hi?x=1");
    fields.push(("cookie", "a=1"));
    fields.push(("cookie", "b=2"));
    let id = pair.client.request(&fields, b"", true);
    pair.run(&mut hello, &|p| p.client.responses[&id].done);
    let response = &pair.client.responses[&id];
    assert_eq!(response.status(), Some(&b"200"[..]));
    assert_eq!(response.body, b"hello /hi?x=1");
    let head = pair
        .seen
        .iter()
        .find_map(|e| match e {
            Event::Request { head, .. } => Some(head.clone()),
            _ => None,
        })
        .expect("request event");
    assert_eq!(head.method, "GET");
    assert_eq!(head.scheme.as_deref(), Some("https"));
    assert!(head.end_stream);
    assert_eq!(
        head.headers,
        vec![
            (b"host".to_vec(), b"localhost".to_vec()),
            (b"cookie".to_vec(), b"a=1; b=2".to_vec()),
        ]
    );
}

#[test]
fn post_echo_of_one_mebibyte_crosses_flow_control() {
    let settings = Settings {
        stream_receive_window: 64 * 1024,
        ..Settings::default()
    };
    let mut pair = Pair::new(&settings);
    pair.settle(&|p| p.client.connected);
    let body: Vec<u8> = (0..1024 * 1024u32)
        .map(|i| (i * 7 + i / 13) as u8)
        .collect();
    let id = pair
        .client
        .request(&request_fields("POST", "/echo"), &body, true);
    let mut echo = Echo::default();
    pair.run(&mut |s, now, e| echo.on(s, now, e), &|p| {
        p.client.responses[&id].done
    });
    let response = &pair.client.responses[&id];
    assert_eq!(response.status(), Some(&b"200"[..]));
    assert_eq!(response.body.len(), body.len());
    assert_eq!(Sha1::digest(&response.body), Sha1::digest(&body));
    // The body came in many pieces, each released before more was read.
    let pieces = pair
        .seen
        .iter()
        .filter(|e| matches!(e, Event::Data { .. }))
        .count();
    assert!(pieces > 16, "{pieces} pieces");
}

#[test]
fn fifty_concurrent_streams_on_one_connection() {
    let mut pair = Pair::new(&Settings::default());
    pair.settle(&|p| p.client.connected);
    let ids: Vec<_> = (0..50)
        .map(|i| {
            let path = format!("/{i}");
            pair.client
                .request(&request_fields("GET", &path), b"", true)
        })
        .collect();
    // Hold every response until all 50 requests are open at once on the server.
    let mut waiting = Vec::new();
    let mut most_open = 0;
    pair.run(
        &mut |server, now, event| {
            if let Event::Request { conn, .. } = event {
                waiting.push(event.clone());
                most_open = most_open.max(server.open_streams(*conn));
                if waiting.len() == 50 {
                    for held in waiting.drain(..) {
                        hello(server, now, &held);
                    }
                }
            }
        },
        &|p| ids.iter().all(|id| p.client.responses[id].done),
    );
    assert_eq!(most_open, 50);
    for (i, id) in ids.iter().enumerate() {
        let body = format!("hello /{i}");
        assert_eq!(pair.client.responses[id].body, body.as_bytes());
    }
}

#[test]
fn goaway_lets_the_in_flight_request_finish_then_closes() {
    let mut pair = Pair::new(&Settings::default());
    pair.settle(&|p| p.client.connected);
    let first = pair
        .client
        .request(&request_fields("POST", "/slow"), b"part one, ", false);
    let mut echo = Echo::default();
    pair.run(&mut |s, now, e| echo.on(s, now, e), &|p| {
        p.seen.iter().any(|e| matches!(e, Event::Data { .. }))
    });
    let now = pair.now;
    pair.server.goaway(now);
    pair.run(&mut |s, now, e| echo.on(s, now, e), &|p| {
        p.client.goaway.is_some()
    });
    assert_eq!(
        pair.client.goaway,
        Some(4),
        "GOAWAY names the first request not taken"
    );
    // A request sent after GOAWAY is refused unprocessed.
    let late = pair
        .client
        .request(&request_fields("GET", "/late"), b"", true);
    pair.run(&mut |s, now, e| echo.on(s, now, e), &|p| {
        p.client.responses[&late].reset.is_some()
    });
    assert_eq!(
        pair.client.responses[&late].reset,
        Some(codes::REQUEST_REJECTED)
    );
    // The in-flight one completes, then the connection closes without error.
    pair.client.write(first, &data_frames(b"part two"), true);
    pair.run(&mut |s, now, e| echo.on(s, now, e), &|p| {
        p.client.lost.is_some()
    });
    assert_eq!(pair.client.responses[&first].body, b"part one, part two");
    assert!(pair.client.responses[&first].done);
    assert_eq!(pair.client.close_code(), Some(codes::NO_ERROR));
    assert!(pair
        .seen
        .iter()
        .any(|e| matches!(e, Event::Closed { error: None, .. })));
    // Draining ends; the server forgets the connection.
    pair.settle(&|p| p.server.connections() == 0);
    assert_eq!(pair.server.connections(), 0);
}

/// The server drains while `pair`'s client sends a request: the two cross.
fn goaway_crossing_a_request(mut pair: Pair) {
    let crossing = pair
        .client
        .request(&request_fields("POST", "/crossing"), b"body", true);
    let now = pair.now;
    pair.server.goaway(now);
    let mut echo = Echo::default();
    pair.run(&mut |s, now, e| echo.on(s, now, e), &|p| {
        p.client.lost.is_some()
    });
    // The client learns the request was not processed (so it may send it again).
    assert_eq!(
        pair.client.goaway,
        Some(0),
        "the GOAWAY never reached the client"
    );
    assert!(pair.client.server_settings.is_some());
    assert_eq!(
        pair.client.responses[&crossing].reset,
        Some(codes::REQUEST_REJECTED)
    );
    assert_eq!(pair.client.close_code(), Some(codes::NO_ERROR));
    pair.settle(&|p| p.server.connections() == 0);
    assert_eq!(pair.server.connections(), 0);
}

#[test]
fn goaway_on_an_idle_connection_goes_out_before_the_close() {
    let mut pair = Pair::new(&Settings::default());
    pair.settle(&|p| p.client.server_settings.is_some());
    goaway_crossing_a_request(pair);
}

#[test]
fn goaway_during_the_handshake_follows_the_settings() {
    let mut pair = Pair::new(&Settings::default());
    // The client is connected before the server is (its handshake ends first).
    pair.settle(&|p| p.client.connected);
    goaway_crossing_a_request(pair);
}

#[test]
fn max_requests_sends_goaway_after_the_last_one() {
    let settings = Settings {
        max_requests: 2,
        ..Settings::default()
    };
    let mut pair = Pair::new(&settings);
    pair.settle(&|p| p.client.connected);
    let first = pair.client.request(&request_fields("GET", "/1"), b"", true);
    pair.run(&mut hello, &|p| p.client.responses[&first].done);
    assert_eq!(pair.client.goaway, None);
    let second = pair.client.request(&request_fields("GET", "/2"), b"", true);
    pair.run(&mut hello, &|p| p.client.lost.is_some());
    assert_eq!(pair.client.responses[&second].body, b"hello /2");
    assert_eq!(
        pair.client.goaway,
        Some(8),
        "GOAWAY names the request after the second"
    );
    assert_eq!(pair.client.close_code(), Some(codes::NO_ERROR));
}

#[test]
fn tls_info_reports_tls13_and_the_negotiated_suite() {
    let mut pair = Pair::new(&Settings::default());
    pair.settle(&|p| p.client.connected);
    let conn = pair
        .seen
        .iter()
        .find_map(|e| match e {
            Event::Connected { conn, .. } => Some(*conn),
            _ => None,
        })
        .expect("connected");
    let info = pair.server.tls_info(conn).expect("tls info");
    assert_eq!(info.tls_version, Some(0x0304));
    // The test client (rustls with *ring*) prefers AES-256-GCM, and the server follows the
    // client's order.
    assert_eq!(info.cipher_suite, Some(0x1302));
    assert!(info.client_cert_chain.is_empty());
    assert_eq!(info.client_cert_name, None);
    assert_eq!(pair.server.tls_info(conn + 1), None);
}

#[test]
fn sent_waits_for_a_client_that_does_not_read() {
    let mut pair = Pair::with_client(&Settings::default(), crate::http3::ALPN, 64 * 1024);
    pair.settle(&|p| p.client.connected);
    pair.client.paused = true;
    let id = pair
        .client
        .request(&request_fields("GET", "/big"), b"", true);
    let body: Vec<u8> = (0..512 * 1024u32).map(|i| (i % 251) as u8).collect();
    let big = Bytes::from(body.clone());
    let mut respond = |server: &mut Endpoint, now: Instant, event: &Event| {
        if let Event::Request { conn, stream, .. } = event {
            server
                .send_response(now, *conn, *stream, 200, &[], false)
                .expect("head");
            server
                .send_data(now, *conn, *stream, big.clone(), true)
                .expect("body");
        }
    };
    pair.exchange(&mut respond);
    // The client's 64 KiB window holds most of the body back: not all of it is sent.
    assert!(pair.seen.iter().any(|e| matches!(e, Event::Request { .. })));
    assert!(!pair.seen.iter().any(|e| matches!(e, Event::Sent { .. })));
    pair.client.resume();
    pair.run(&mut respond, &|p| p.client.responses[&id].done);
    assert!(pair.seen.iter().any(|e| matches!(e, Event::Sent { .. })));
    assert_eq!(
        Sha1::digest(&pair.client.responses[&id].body),
        Sha1::digest(&body)
    );
}

/// A 100 Continue is an interim HEADERS frame before the final one (RFC 9114 4.1); the
/// client then sends its body, which reaches the app as usual. None once the head went.
#[test]
fn an_interim_100_continue_precedes_the_response_head() {
    let mut pair = Pair::new(&Settings::default());
    pair.settle(&|p| p.client.connected);
    let mut fields = request_fields("POST", "/");
    fields.push(("expect", "100-continue"));
    let id = pair.client.request(&fields, b"", false);
    pair.settle(&|p| p.seen.iter().any(|e| matches!(e, Event::Request { .. })));
    let (conn, stream, head) = pair
        .seen
        .iter()
        .find_map(|e| match e {
            Event::Request { conn, stream, head } => Some((*conn, *stream, head.clone())),
            _ => None,
        })
        .expect("request event");
    assert!(head.expects_continue());
    let now = pair.now;
    pair.server
        .send_continue(now, conn, stream)
        .expect("100 Continue");
    pair.settle(&|p| !p.client.responses[&id].interim.is_empty());
    let response = &pair.client.responses[&id];
    assert_eq!(
        response.interim,
        [vec![(b":status".to_vec(), b"100".to_vec())]]
    );
    assert!(response.head.is_none());
    pair.client.write(id, &data_frames(b"body"), true);
    let mut body = Vec::new();
    pair.run(
        &mut |server, now, event| match event {
            Event::Data { data, .. } => body.extend_from_slice(data),
            Event::End { conn, stream } => {
                server
                    .send_response(now, *conn, *stream, 200, &[], true)
                    .expect("head");
                assert_eq!(
                    server.send_continue(now, *conn, *stream),
                    Err(crate::http3::SendError::Gone),
                    "no 100 after the final head"
                );
            }
            _ => {}
        },
        &|p| p.client.responses[&id].done,
    );
    assert_eq!(body, b"body");
    let response = &pair.client.responses[&id];
    assert_eq!(response.status(), Some(&b"200"[..]));
    assert_eq!(response.interim.len(), 1);
}
