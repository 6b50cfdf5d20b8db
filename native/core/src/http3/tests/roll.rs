//! A rolling restart: the old worker's endpoint and its replacement share one UDP socket,
//! so datagrams of the old worker's connections can reach the new one.

use std::sync::Arc;

use bytes::BytesMut;
use quinn_proto::{DatagramEvent, EndpointConfig, RandomConnectionIdGenerator};

use super::client::request_fields;
use super::exchange::hello;
use super::lifecycle::assert_refused;
use super::{addr, cert, server_tls, Pair, Settings, CLIENT, SERVER};
use crate::http3::{config, Endpoint, NewConnections};

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

#[test]
fn the_replacement_drops_the_old_workers_packets_and_the_request_completes() {
    let (mut pair, id) = second_request("/during-roll");
    let diverted = divert(&mut pair);
    assert!(!diverted.is_empty());
    let mut replacement =
        Endpoint::new(server_tls(&cert()), &Settings::default()).expect("endpoint");
    for datagram in &diverted {
        replacement.datagram_received(pair.now, addr(CLIENT), datagram);
    }
    // Not its connection id: no stateless reset, no connection, nothing at all.
    assert_eq!(replacement.poll_transmit(pair.now), None);
    assert_eq!(replacement.connections(), 0);
    // The old worker never saw the request; the client's loss recovery sends it again.
    pair.run(&mut hello, &|p| p.client.responses[&id].done);
    assert_eq!(pair.client.responses[&id].body, b"hello /during-roll");
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
