//! The interim `100 Continue`: an informational HEADERS frame before the response head.

use super::check::{END_STREAM, HEADERS};
use super::tests::{connected, frames, get, request_stream, Frame};
use super::*;
use crate::http3::qpack::huffman;

/// The `:status` a response block opens with when the static table holds only its name
/// (a literal naming entry 8, its value Huffman-coded or not), as the engine writes a 100.
fn literal_status(block: &[u8]) -> Option<Vec<u8>> {
    let [first, len, rest @ ..] = block else {
        return None;
    };
    if !matches!(first, 0x48 | 0x08 | 0x18) {
        return None;
    }
    let value = rest.get(..usize::from(len & 0x7f))?;
    if len & 0x80 == 0 {
        Some(value.to_vec())
    } else {
        huffman::decode(value)
    }
}

fn heads(out: &[Frame], stream: u32) -> Vec<&Frame> {
    out.iter()
        .filter(|f| f.kind == HEADERS && f.stream == stream)
        .collect()
}

fn expecting(conn: &mut Http2, end: bool) -> RequestHead {
    let mut fields = get("/");
    fields[0].1 = "POST";
    fields.push(("expect", "100-Continue"));
    request_stream(conn, 1, &fields, end);
    match conn.take_events().as_slice() {
        [Event::Request { stream: 1, head }] => head.clone(),
        events => panic!("{events:?}"),
    }
}

#[test]
fn expects_continue_reads_the_field_as_http1_does() {
    let mut conn = connected(&Settings::default());
    assert!(expecting(&mut conn, false).expects_continue());
    // No body to come: nothing to wait for.
    let mut conn = connected(&Settings::default());
    assert!(!expecting(&mut conn, true).expects_continue());
    let mut conn = connected(&Settings::default());
    let mut fields = get("/");
    fields.push(("expect", "100-continue, x"));
    request_stream(&mut conn, 1, &fields, false);
    let events = conn.take_events();
    let Some(Event::Request { head, .. }) = events.first() else {
        panic!("{events:?}");
    };
    assert!(!head.expects_continue());
}

#[test]
fn a_100_continue_goes_before_the_head_and_never_after_it() {
    let mut conn = connected(&Settings::default());
    expecting(&mut conn, false);
    conn.send_continue(1).expect("100 Continue");
    let out = frames(&conn.take_output());
    let interim = heads(&out, 1);
    assert_eq!(interim.len(), 1);
    assert_eq!(
        interim[0].flags & END_STREAM,
        0,
        "an interim head ends nothing"
    );
    assert_eq!(
        literal_status(&interim[0].payload).as_deref(),
        Some(&b"100"[..])
    );
    conn.send_response(1, 200, &[], true).expect("head");
    let out = frames(&conn.take_output());
    let last = heads(&out, 1);
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].payload.first(), Some(&0x88), ":status 200");
    assert_eq!(conn.send_continue(1), Err(SendError::Gone));
    assert!(heads(&frames(&conn.take_output()), 1).is_empty());
}
