//! WebSocket reading and writing, with permessage-deflate.
//!
//! Input: a config byte, a split seed, then the rest. Config bits 6-7 pick
//! the mode, bits 0-2 the deflate parameters, bits 3-5 the size limit:
//! - 0, raw: the rest is what a client sent.
//! - 1, frames: the rest is a list of frames (flags byte, length byte,
//!   payload), masked and encoded before reading, so the fuzzer controls
//!   payloads (and so DEFLATE data) directly.
//! - 2, round trip: the rest is a list of messages, sent as a client would
//!   (compressed, fragmented, pings in between) and as the server does.
//! - 3, negotiation: the rest is `Sec-WebSocket-Extensions` values.
//!
//! Properties in modes 0-1: reading the stream whole and in pieces gives the
//! same events and the same error; an error is final; no message exceeds the
//! limit. Mode 2: every message reads back as sent. Mode 3: the response
//! value the server picks, offered back, negotiates the same parameters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ruvicorn_core::ws::deflate::{
    negotiate_deflate, parse_deflate_offers, DeflateParams, Deflater, Inflater,
};
use ruvicorn_core::ws::message::{Event, Message, MessageEncoder, WsReader};
use ruvicorn_core::ws::WsError;
use ruvicorn_fuzz::{split_ends, Input};

fn params(choice: u8) -> Option<DeflateParams> {
    let base = DeflateParams::default();
    Some(match choice % 8 {
        0 => return None,
        1 | 7 => base,
        2 => DeflateParams {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            ..base
        },
        3 => DeflateParams {
            server_max_window_bits: 9,
            client_max_window_bits: 8,
            ..base
        },
        4 => DeflateParams {
            server_no_context_takeover: true,
            client_max_window_bits: 9,
            ..base
        },
        5 => DeflateParams {
            server_max_window_bits: 12,
            client_max_window_bits: 10,
            ..base
        },
        _ => DeflateParams {
            client_no_context_takeover: true,
            ..base
        },
    })
}

/// Reads `stream` delivered in pieces ending at `ends`: the events, and the
/// error that ended the reading, if any.
fn read(
    stream: &[u8],
    ends: &[usize],
    max_size: usize,
    deflate: Option<&DeflateParams>,
) -> (Vec<Event>, Option<WsError>) {
    let mut reader = WsReader::new(max_size, deflate);
    let mut events = Vec::new();
    let mut start = 0;
    for &end in ends {
        reader.feed(&stream[start..end]);
        start = end;
        loop {
            match reader.next_event() {
                Ok(Some(event)) => {
                    if let Event::Message(Message::Text(m)) = &event {
                        assert!(m.len() <= max_size, "text message over the limit");
                    }
                    if let Event::Message(Message::Binary(m)) = &event {
                        assert!(m.len() <= max_size, "binary message over the limit");
                    }
                    events.push(event);
                }
                Ok(None) => break,
                Err(error) => {
                    assert_eq!(reader.next_event(), Err(error), "error not final");
                    return (events, Some(error));
                }
            }
        }
    }
    (events, None)
}

const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const PING: u8 = 0x9;
const FIN: u8 = 0x80;
const RSV1: u8 = 0x40;

/// Appends a client frame: `first` is the frame's first byte (FIN, RSV1,
/// opcode), the payload is masked with `key`.
fn client_frame(out: &mut Vec<u8>, first: u8, payload: &[u8], key: [u8; 4]) {
    out.push(first & !0x30);
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
}

/// Reads back what `MessageEncoder` wrote: whole, unmasked data frames,
/// compressed (RSV1) exactly when `deflate` is agreed. A reader written
/// apart from the core's, so the two check each other.
fn server_messages(mut stream: &[u8], deflate: Option<&DeflateParams>) -> Vec<Message> {
    // The server's compressor, seen from the other side.
    let mut inflater = deflate.map(|p| {
        Inflater::new(&DeflateParams {
            client_no_context_takeover: p.server_no_context_takeover,
            client_max_window_bits: p.server_max_window_bits,
            ..*p
        })
    });
    let mut messages = Vec::new();
    while let [b0, b1, rest @ ..] = stream {
        assert_eq!(b0 & (FIN | 0x30), FIN, "server frame first byte {b0:#x}");
        assert_eq!(b0 & RSV1 != 0, deflate.is_some(), "RSV1 iff deflate");
        assert_eq!(b1 & 0x80, 0, "server frame masked");
        let (len, rest) = match b1 & 0x7f {
            126 => match rest {
                [a, b, rest @ ..] => (usize::from(u16::from_be_bytes([*a, *b])), rest),
                _ => panic!("truncated length"),
            },
            127 => {
                let (len, rest) = rest.split_at(8.min(rest.len()));
                let len = u64::from_be_bytes(len.try_into().expect("8-byte length"));
                (usize::try_from(len).expect("length fits"), rest)
            }
            n => (usize::from(n), rest),
        };
        assert!(len <= rest.len(), "truncated payload");
        let (payload, rest) = rest.split_at(len);
        stream = rest;
        let data = match inflater.as_mut() {
            Some(inflater) => {
                let mut data = Vec::new();
                assert_eq!(
                    inflater.decompress(payload, &mut data, 1 << 24, true),
                    Ok(())
                );
                data
            }
            None => payload.to_vec(),
        };
        messages.push(match b0 & 0x0f {
            TEXT => Message::Text(String::from_utf8(data).expect("text is UTF-8")),
            BINARY => Message::Binary(data),
            other => panic!("server data frame with opcode {other:#x}"),
        });
    }
    assert!(
        stream.is_empty(),
        "trailing byte after the last server frame"
    );
    messages
}

/// Frames from specs: a flags byte (FIN, RSV1, opcode: bits 7, 6, 0-3), a
/// length byte, then that many payload bytes, masked with a key that
/// depends on the flags byte.
fn frames(mut input: Input<'_>) -> Vec<u8> {
    let mut stream = Vec::new();
    loop {
        let flags = input.byte();
        let len = usize::from(input.byte());
        let payload = input.take(len);
        if flags == 0 && payload.is_empty() {
            return stream;
        }
        let key = [flags, flags.rotate_left(1), 0, 0x5a];
        client_frame(&mut stream, flags, payload, key);
    }
}

fn read_checked(stream: &[u8], seed: u8, max_size: usize, deflate: Option<&DeflateParams>) {
    let whole = read(stream, &[stream.len()], max_size, deflate);
    let split = read(stream, &split_ends(stream.len(), seed), max_size, deflate);
    assert_eq!(split, whole, "differs when split");
}

/// Messages from specs: a kind byte (bit 0: text, bits 1-3: fragments,
/// bit 4: a ping before the last fragment), a length byte, the bytes.
fn round_trip(seed: u8, deflate: Option<DeflateParams>, mut input: Input<'_>) {
    const MAX: usize = 1 << 20;
    let mut messages = Vec::new();
    let mut client_stream = Vec::new();
    let mut server_stream = Vec::new();
    // The client's compressor follows the client side of the parameters.
    let mut client = deflate.map(|p| {
        Deflater::new(&DeflateParams {
            server_no_context_takeover: p.client_no_context_takeover,
            server_max_window_bits: p.client_max_window_bits.max(9),
            ..p
        })
    });
    let mut server = MessageEncoder::new(deflate.as_ref());
    let mut want_client = Vec::new();
    loop {
        let kind = input.byte();
        let len = usize::from(input.byte());
        let bytes = input.take(len);
        if kind == 0 && bytes.is_empty() {
            break;
        }
        let (opcode, message) = if kind & 1 == 1 {
            let text = String::from_utf8_lossy(bytes).into_owned();
            (TEXT, Message::Text(text))
        } else {
            (BINARY, Message::Binary(bytes.to_vec()))
        };
        let plain = match &message {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) => b.as_slice(),
        };
        let mut payload = Vec::new();
        let compressed = match client.as_mut() {
            Some(deflater) => {
                assert_eq!(deflater.compress(plain, &mut payload), Ok(()));
                true
            }
            None => {
                payload.extend_from_slice(plain);
                false
            }
        };
        let parts = usize::from((kind >> 1) & 7) + 1;
        let size = payload.len().div_ceil(parts).max(1);
        let chunks: Vec<&[u8]> = if payload.is_empty() {
            vec![&[]]
        } else {
            payload.chunks(size).collect()
        };
        for (i, chunk) in chunks.iter().enumerate() {
            let last = i + 1 == chunks.len();
            if last && kind & 0x10 != 0 {
                client_frame(&mut client_stream, FIN | PING, b"p", [9; 4]);
                want_client.push(Event::Ping(b"p".to_vec()));
            }
            let mut first = if i == 0 { opcode } else { 0 };
            if last {
                first |= FIN;
            }
            if compressed && i == 0 {
                first |= RSV1;
            }
            let key = [kind, len as u8, i as u8, 0xa5];
            client_frame(&mut client_stream, first, chunk, key);
        }
        want_client.push(Event::Message(message.clone()));
        let encoded = match &message {
            Message::Text(t) => server.text(&mut server_stream, t),
            Message::Binary(b) => server.binary(&mut server_stream, b),
        };
        assert_eq!(encoded, Ok(()));
        messages.push(message);
    }

    let ends = split_ends(client_stream.len(), seed);
    let got = read(&client_stream, &ends, MAX, deflate.as_ref());
    assert_eq!(got, (want_client, None), "client messages");

    let got = server_messages(&server_stream, deflate.as_ref());
    assert_eq!(got, messages, "server messages");
}

fn negotiation(input: Input<'_>) {
    let values: Vec<&[u8]> = input.rest().split(|&b| b == b'\n').collect();
    let offers = parse_deflate_offers(&values);
    let Some((params, response)) = negotiate_deflate(&offers, true) else {
        return;
    };
    assert!(
        (9..=15).contains(&params.server_max_window_bits),
        "{params:?}"
    );
    assert!(
        (8..=15).contains(&params.client_max_window_bits),
        "{params:?}"
    );
    let again = negotiate_deflate(&parse_deflate_offers(&[response.as_bytes()]), true);
    assert_eq!(
        again,
        Some((params, response.clone())),
        "response {response:?}"
    );
    assert_eq!(negotiate_deflate(&offers, false), None);
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let cfg = input.byte();
    let seed = input.byte();
    let deflate = params(cfg);
    let max_size = [0, 1, 16, 125, 126, 1024, 65536, 1 << 20][usize::from((cfg >> 3) & 7)];
    match cfg >> 6 {
        0 => read_checked(input.rest(), seed, max_size, deflate.as_ref()),
        1 => read_checked(&frames(input), seed, max_size, deflate.as_ref()),
        2 => round_trip(seed, deflate, input),
        _ => negotiation(input),
    }
});
