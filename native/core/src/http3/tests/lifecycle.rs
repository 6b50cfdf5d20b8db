//! Connection and stream lifecycles: idle timeout, Retry, refusal at the connection limit,
//! a client's reset, trailers, and HEAD.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::client::{headers_frame, request_fields};
use super::exchange::hello;
use super::{Pair, Settings};
use crate::http3::{codes, Endpoint, Event, SendError};

#[test]
fn idle_connections_time_out() {
    let settings = Settings {
        idle_timeout: Duration::from_secs(5),
        ..Settings::default()
    };
    let mut pair = Pair::new(&settings);
    pair.settle(&|p| p.client.connected);
    let quiet_from = pair.now;
    pair.settle(&|p| p.server.connections() == 0 && p.client.lost.is_some());
    assert_eq!(pair.server.connections(), 0);
    assert!(pair.now - quiet_from >= Duration::from_secs(5));
    assert!(matches!(
        pair.client.lost,
        Some(quinn_proto::ConnectionError::TimedOut)
    ));
    assert!(pair
        .seen
        .iter()
        .any(|e| matches!(e, Event::Closed { error: None, .. })));
}

#[test]
fn retry_validates_the_address_then_serves() {
    let settings = Settings {
        retry: true,
        ..Settings::default()
    };
    let mut pair = Pair::new(&settings);
    let id = {
        pair.settle(&|p| p.client.connected);
        pair.client.request(&request_fields("GET", "/r"), b"", true)
    };
    pair.run(&mut hello, &|p| p.client.responses[&id].done);
    assert_eq!(pair.client.responses[&id].body, b"hello /r");
    // The server's first word was a Retry packet (long header, type 3).
    assert_eq!(pair.first_reply.map(|b| b & 0xb0), Some(0xb0));
}

#[test]
fn connections_beyond_the_limit_are_refused() {
    let settings = Settings {
        max_connections: 0,
        ..Settings::default()
    };
    let mut pair = Pair::new(&settings);
    assert_refused(&mut pair);
}

/// The client's connection attempt ends in CONNECTION_REFUSED, and the server keeps no
/// connection.
pub(super) fn assert_refused(pair: &mut Pair) {
    pair.settle(&|p| p.client.lost.is_some());
    assert!(!pair.client.connected);
    match &pair.client.lost {
        Some(quinn_proto::ConnectionError::ConnectionClosed(close)) => {
            assert_eq!(
                close.error_code,
                quinn_proto::TransportErrorCode::CONNECTION_REFUSED
            );
        }
        other => panic!("expected CONNECTION_REFUSED, got {other:?}"),
    }
    assert_eq!(pair.server.connections(), 0);
}

/// The client abandons a request: RESET_STREAM, and STOP_SENDING too if `both`.
fn cancel(pair: &mut Pair, id: quinn_proto::StreamId, both: bool) {
    let code = quinn_proto::VarInt::from_u32(codes::REQUEST_CANCELLED as u32);
    let _ = pair.client.conn.send_stream(id).reset(code);
    if both {
        let _ = pair.client.conn.recv_stream(id).stop(code);
    }
}

#[test]
fn a_client_reset_reaches_the_application() {
    let mut pair = Pair::new(&Settings::default());
    pair.settle(&|p| p.client.connected);
    let id = pair
        .client
        .send_raw(headers_frame(&request_fields("POST", "/upload")), false);
    pair.settle(&|p| p.seen.iter().any(|e| matches!(e, Event::Request { .. })));
    cancel(&mut pair, id, false);
    pair.settle(&|p| p.seen.iter().any(|e| matches!(e, Event::Reset { .. })));
    let reset = pair.seen.iter().find_map(|e| match e {
        Event::Reset { conn, stream, code } => Some((*conn, *stream, *code)),
        _ => None,
    });
    let Some((conn, stream, code)) = reset else {
        panic!("no reset event");
    };
    assert_eq!((stream, code), (u64::from(id), codes::REQUEST_CANCELLED));
    assert_eq!(pair.server.open_streams(conn), 0);
    // The stream is gone for sending too.
    let now = pair.now;
    let sent = pair.server.send_response(now, conn, stream, 200, &[], true);
    assert_eq!(sent, Err(SendError::Gone));
}

fn with_trailers(server: &mut Endpoint, now: Instant, event: &Event) {
    if let Event::Request { conn, stream, head } = event {
        let headers = [(b"content-length".to_vec(), b"4".to_vec())];
        server
            .send_response(now, *conn, *stream, 200, &headers, false)
            .expect("head");
        let body = server.send_data(now, *conn, *stream, Bytes::from_static(b"body"), false);
        let trailers = [(b"x-checksum".to_vec(), head.method.as_bytes().to_vec())];
        let trailers = server.send_trailers(now, *conn, *stream, &trailers);
        if head.method == "HEAD" {
            // The response ended with its head.
            assert_eq!(
                (body, trailers),
                (Err(SendError::Gone), Err(SendError::Gone))
            );
        } else {
            assert_eq!((body, trailers), (Ok(()), Ok(())));
        }
    }
}

#[test]
fn trailers_follow_the_body_and_head_responses_have_none() {
    let mut pair = Pair::new(&Settings::default());
    pair.settle(&|p| p.client.connected);
    let get = pair.client.request(&request_fields("GET", "/"), b"", true);
    let head = pair.client.request(&request_fields("HEAD", "/"), b"", true);
    pair.run(&mut with_trailers, &|p| {
        p.client.responses[&get].done && p.client.responses[&head].done
    });
    let get = &pair.client.responses[&get];
    assert_eq!(get.body, b"body");
    assert_eq!(
        get.trailers,
        Some(vec![(b"x-checksum".to_vec(), b"GET".to_vec())])
    );
    let head = &pair.client.responses[&head];
    assert_eq!(head.status(), Some(&b"200"[..]));
    assert!(head.body.is_empty() && head.trailers.is_none());
}

#[test]
fn rapid_resets_close_the_connection() {
    let mut pair = Pair::new(&Settings::default());
    pair.settle(&|p| p.client.connected);
    for round in 0..300 {
        if pair.client.lost.is_some() {
            break;
        }
        let id = pair
            .client
            .send_raw(headers_frame(&request_fields("GET", "/")), false);
        let stream = u64::from(id);
        pair.settle(&|p| {
            p.client.lost.is_some()
                || p.seen
                    .iter()
                    .any(|e| matches!(e, Event::Request { stream: s, .. } if *s == stream))
        });
        cancel(&mut pair, id, true);
        assert!(round < 250, "still open after {round} resets");
    }
    pair.settle(&|p| p.client.lost.is_some());
    assert_eq!(pair.client.close_code(), Some(codes::EXCESSIVE_LOAD));
}

#[test]
fn close_all_ends_in_flight_requests() {
    let mut pair = Pair::new(&Settings::default());
    pair.settle(&|p| p.client.connected);
    let id = pair
        .client
        .send_raw(headers_frame(&request_fields("POST", "/never-ends")), false);
    pair.settle(&|p| p.seen.iter().any(|e| matches!(e, Event::Request { .. })));
    let now = pair.now;
    pair.server.close_all(now, codes::NO_ERROR);
    pair.settle(&|p| p.client.lost.is_some());
    assert_eq!(pair.client.close_code(), Some(codes::NO_ERROR));
    let ends: Vec<_> = pair
        .seen
        .iter()
        .filter(|e| matches!(e, Event::Reset { .. } | Event::Closed { .. }))
        .collect();
    assert!(matches!(
        ends[..],
        [Event::Reset { stream, code: 0, .. }, Event::Closed { error: None, .. }]
            if *stream == u64::from(id)
    ));
}
