//! A rolling restart: the old worker's endpoint and its replacement share one UDP socket,
//! so datagrams of the old worker's connections can reach the new one.

use std::sync::Arc;

use bytes::BytesMut;
use quinn_proto::{DatagramEvent, EndpointConfig, RandomConnectionIdGenerator};

use super::client::request_fields;
use super::exchange::hello;
use super::lifecycle::assert_refused;
use super::{addr, cert, server_tls, Pair, Settings, CLIENT, SERVER};
use crate::http3::{config, forward, Endpoint, NewConnections, Verdict};

/// The client's next datagrams, which the kernel hands to the other worker.
fn divert(pair: &mut Pair) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        pair.buf.clear();
        let Some(t) = pair.client.conn.poll_transmit(pair.now, 1, &mut pair.buf) else {
            return out;
        };
        out.push(pair.buf[..t.size].to_vec());
    }
}

/// A connection with one request answered (so the client's datagrams now carry
/// short-header packets only) and a second one, to `path`, not sent yet.
fn second_request(path: &str) -> (Pair, quinn_proto::StreamId) {
    let mut pair = Pair::new(&Settings::default());
    pair.settle(&|p| p.client.connected);
    let first = pair.client.request(&request_fields("GET", "/"), b"", true);
    pair.run(&mut hello, &|p| p.client.responses[&first].done);
    let id = pair.client.request(&request_fields("GET", path), b"", true);
    (pair, id)
}

/// The first datagram a fresh client sends (its first Initial).
fn first_datagram(pair: &mut Pair) -> Vec<u8> {
    pair.buf.clear();
    let t = pair
        .client
        .conn
        .poll_transmit(pair.now, 1, &mut pair.buf)
        .expect("an Initial");
    pair.buf[..t.size].to_vec()
}

fn replacement() -> Endpoint {
    Endpoint::new(server_tls(&cert()), &Settings::default()).expect("endpoint")
}

/// The client's next datagrams reach a replacement, which hands every one over (not its
/// connection id: no stateless reset, no connection, nothing sent), and the channel takes
/// them to the old worker.
fn handed_back(pair: &mut Pair) {
    let diverted = divert(pair);
    assert!(!diverted.is_empty());
    let mut replacement = replacement();
    for datagram in &diverted {
        let verdict = replacement.datagram_received(pair.now, addr(CLIENT), datagram);
        assert_eq!(verdict, Verdict::Forward);
    }
    assert_eq!(replacement.poll_transmit(pair.now, &mut Vec::new()), None);
    assert_eq!(replacement.connections(), 0);
    for datagram in &diverted {
        pair.server
            .forwarded_received(pair.now, addr(CLIENT), datagram);
    }
}

#[test]
fn the_replacement_forwards_the_old_workers_packets_and_the_request_completes() {
    let (mut pair, id) = second_request("/during-roll");
    handed_back(&mut pair);
    // Served without any retransmission (the clock does not move).
    pair.exchange(&mut hello);
    assert!(pair.client.responses[&id].done);
    assert_eq!(pair.client.responses[&id].body, b"hello /during-roll");
}

#[test]
fn a_forwarded_datagram_that_is_not_ours_is_dropped_never_sent_back() {
    let (mut pair, id) = second_request("/bounced");
    let mut replacement = replacement();
    for datagram in divert(&mut pair) {
        // It came through the channel already: no Forward, no reset, no connection.
        replacement.forwarded_received(pair.now, addr(CLIENT), &datagram);
    }
    assert_eq!(replacement.poll_transmit(pair.now, &mut Vec::new()), None);
    assert_eq!(replacement.connections(), 0);
    // Lost for the old worker; QUIC's loss recovery sends the request again.
    pair.run(&mut hello, &|p| p.client.responses[&id].done);
    assert_eq!(pair.client.responses[&id].body, b"hello /bounced");
}

#[test]
fn a_handshake_the_other_worker_answered_is_forwarded_not_taken_as_new() {
    // Under keys from the wrong id, header protection comes off as noise: a quarter of
    // the time the packet looks valid until its payload fails to decrypt. Every try must
    // be handed over; sixteen meet that case but for 1 in 100.
    for _ in 0..16 {
        let mut pair = Pair::new(&Settings::default());
        let first = first_datagram(&mut pair);
        pair.server
            .datagram_received(pair.now, addr(CLIENT), &first);
        pair.exchange_server_to_client();
        // The client's answer (Initial acknowledgement + Handshake) names the server's id.
        handed_back(&mut pair);
        pair.settle(&|p| p.client.connected);
        assert!(pair.client.connected);
    }
}

#[test]
fn a_draining_worker_forwards_new_connections_to_the_replacement() {
    let mut pair = Pair::new(&Settings::default());
    pair.server.set_new_connections(NewConnections::Forward);
    let first = first_datagram(&mut pair);
    let verdict = pair
        .server
        .datagram_received(pair.now, addr(CLIENT), &first);
    assert_eq!(verdict, Verdict::Forward);
    // Back from the replacement (were it draining too): ignored, not bounced.
    pair.server
        .forwarded_received(pair.now, addr(CLIENT), &first);
    assert_eq!(pair.server.poll_transmit(pair.now, &mut Vec::new()), None);
    assert_eq!(pair.server.connections(), 0);
    // The replacement, reading it from the channel, accepts it.
    let mut replacement = replacement();
    replacement.forwarded_received(pair.now, addr(CLIENT), &first);
    assert_eq!(replacement.connections(), 1);
    assert!(replacement
        .poll_transmit(pair.now, &mut Vec::new())
        .is_some());
}

#[test]
fn a_draining_worker_keeps_the_handshakes_it_accepted() {
    let mut pair = Pair::new(&Settings::default());
    let first = first_datagram(&mut pair);
    pair.server
        .datagram_received(pair.now, addr(CLIENT), &first);
    assert_eq!(pair.server.connections(), 1);
    pair.server.set_new_connections(NewConnections::Forward);
    // The client's retransmission of its first Initial is this connection's.
    let verdict = pair
        .server
        .datagram_received(pair.now, addr(CLIENT), &first);
    assert_eq!(verdict, Verdict::Used);
    pair.settle(&|p| p.client.connected);
    assert!(pair.client.connected);
}

#[test]
fn forwarded_datagrams_carry_the_client_address() {
    for remote in ["127.0.0.1:50000", "[::1]:443", "[2001:db8::7]:65535"] {
        let message = forward::encode(addr(remote), b"datagram");
        assert_eq!(
            forward::decode(&message),
            Some((addr(remote), &b"datagram"[..]))
        );
    }
    let message = forward::encode(addr(CLIENT), b"");
    assert_eq!(forward::decode(&message), Some((addr(CLIENT), &b""[..])));
    for bad in [&b""[..], b"\x05abcdefg", b"\x04\x7f\x00", b"\x06\x00\x01"] {
        assert_eq!(forward::decode(bad), None);
    }
}

#[test]
fn a_stateless_reset_under_another_key_is_ignored_by_the_client() {
    let (mut pair, id) = second_request("/reset");
    // An endpoint whose connection ids cannot be told from others' (random ones) takes a
    // packet for an unknown id as one for a connection it forgot, and answers with a
    // stateless reset whose token is made with its own key.
    let tls = server_tls(&cert());
    let server_config = config::server_config(tls, &Settings::default()).expect("config");
    let mut endpoint_config = EndpointConfig::default();
    endpoint_config.cid_generator(|| Box::new(RandomConnectionIdGenerator::new(8)));
    let mut other =
        quinn_proto::Endpoint::new(Arc::new(endpoint_config), Some(server_config), false, None);
    let mut resets = Vec::new();
    for datagram in divert(&mut pair) {
        let mut buf = Vec::new();
        let event = other.handle(
            pair.now,
            addr(CLIENT),
            None,
            None,
            BytesMut::from(&datagram[..]),
            &mut buf,
        );
        if let Some(DatagramEvent::Response(t)) = event {
            resets.push(buf[..t.size].to_vec());
        }
    }
    assert!(!resets.is_empty(), "no stateless reset was sent");
    for reset in resets {
        let mut buf = Vec::new();
        let event = pair.client_endpoint.handle(
            pair.now,
            addr(SERVER),
            None,
            None,
            BytesMut::from(&reset[..]),
            &mut buf,
        );
        if let Some(DatagramEvent::ConnectionEvent(_, event)) = event {
            pair.client.conn.handle_event(event);
        }
    }
    pair.client.poll();
    assert!(pair.client.lost.is_none(), "the client took the reset");
    pair.run(&mut hello, &|p| p.client.responses[&id].done);
    assert_eq!(pair.client.responses[&id].body, b"hello /reset");
}

#[test]
fn while_a_replacement_takes_over_new_connections_are_left_to_it() {
    let mut pair = Pair::new(&Settings::default());
    pair.server.set_new_connections(NewConnections::Ignore);
    pair.exchange(&mut |_, _, _| {});
    assert_eq!(pair.first_reply, None, "an ignored Initial is not answered");
    assert_eq!(pair.server.connections(), 0);
    // The client sends its Initial again; an endpoint that accepts (here: the same one,
    // standing for the replacement) takes it.
    pair.server.set_new_connections(NewConnections::Accept);
    pair.settle(&|p| p.client.connected);
    assert!(pair.client.connected);
}

#[test]
fn while_the_service_stops_new_connections_are_refused() {
    let mut pair = Pair::new(&Settings::default());
    pair.server.set_new_connections(NewConnections::Refuse);
    assert_refused(&mut pair);
}
