//! A response body never goes past, nor ends short of, its `content-length`: the stream is
//! reset with H3_INTERNAL_ERROR instead of finished, as HTTP/2 resets it.

use std::time::Instant;

use bytes::Bytes;

use super::client::request_fields;
use super::{Pair, Settings};
use crate::http3::{codes, Endpoint, Event, SendError};

/// What the application does once the request came, in order (`true`: the end).
enum Step {
    Head(&'static str, bool),
    Body(&'static [u8], bool),
    Trailers,
}

/// Run `steps` for one `method` request; each send's outcome, and the response seen.
fn respond(method: &str, steps: Vec<Step>) -> (Vec<Result<(), SendError>>, Pair, u64) {
    let mut pair = Pair::new(&Settings::default());
    pair.settle(&|p| p.client.connected);
    let id = pair.client.request(&request_fields(method, "/"), b"", true);
    let mut outcomes = Vec::new();
    let mut steps = Some(steps);
    let mut app = |server: &mut Endpoint, now: Instant, event: &Event| {
        let Event::Request { conn, stream, .. } = event else {
            return;
        };
        for step in steps.take().unwrap_or_default() {
            outcomes.push(match step {
                Step::Head(length, end) => {
                    let headers = [(b"Content-Length".to_vec(), length.as_bytes().to_vec())];
                    server.send_response(now, *conn, *stream, 200, &headers, end)
                }
                Step::Body(data, end) => {
                    server.send_data(now, *conn, *stream, Bytes::from_static(data), end)
                }
                Step::Trailers => {
                    server.send_trailers(now, *conn, *stream, &[(b"x".to_vec(), b"1".to_vec())])
                }
            });
        }
    };
    pair.run(&mut app, &|p| {
        let r = &p.client.responses[&id];
        r.done || r.reset.is_some()
    });
    // Let anything that would follow arrive.
    pair.exchange(&mut |_, _, _| {});
    let sent = pair
        .seen
        .iter()
        .filter(|e| matches!(e, Event::Sent { .. }))
        .count() as u64;
    (outcomes, pair, sent)
}

fn assert_reset(pair: &Pair) {
    let response = pair.client.responses.values().next().expect("a response");
    assert_eq!(response.reset, Some(codes::INTERNAL_ERROR));
    assert!(!response.done, "a cut body ended as complete");
    assert!(response.body.len() <= 4);
    assert!(response.trailers.is_none());
    assert!(pair.client.lost.is_none());
}

#[test]
fn a_body_past_its_content_length_is_refused_and_reset() {
    let (outcomes, pair, _) = respond(
        "GET",
        vec![
            Step::Head("4", false),
            Step::Body(b"ab", false),
            Step::Body(b"cde", true),
            Step::Body(b"f", true),
        ],
    );
    assert_eq!(outcomes[..2], [Ok(()), Ok(())]);
    assert!(
        matches!(&outcomes[2], Err(SendError::Invalid(why)) if why.contains("longer")),
        "{outcomes:?}"
    );
    // Nothing more is taken once the stream was cut.
    assert_eq!(outcomes[3], Err(SendError::Gone));
    assert_reset(&pair);
}

#[test]
fn a_body_short_of_its_content_length_is_reset() {
    let (outcomes, pair, sent) =
        respond("GET", vec![Step::Head("4", false), Step::Body(b"ab", true)]);
    assert_eq!(outcomes, [Ok(()), Ok(())]);
    // The application's send still hears its bytes went.
    assert_eq!(sent, 1);
    assert_reset(&pair);
}

#[test]
fn trailers_after_a_short_body_are_a_reset() {
    let (outcomes, pair, _) = respond(
        "GET",
        vec![
            Step::Head("4", false),
            Step::Body(b"abc", false),
            Step::Trailers,
        ],
    );
    assert_eq!(outcomes, [Ok(()), Ok(()), Ok(())]);
    assert_reset(&pair);
}

#[test]
fn a_head_ending_a_declared_body_is_reset() {
    let (outcomes, pair, _) = respond("GET", vec![Step::Head("4", true)]);
    assert_eq!(outcomes, [Ok(())]);
    assert_reset(&pair);
}

#[test]
fn a_body_matching_its_content_length_ends_the_stream() {
    for steps in [
        vec![
            Step::Head("4", false),
            Step::Body(b"ab", false),
            Step::Body(b"cd", true),
        ],
        vec![
            Step::Head("4", false),
            Step::Body(b"abcd", false),
            Step::Trailers,
        ],
        vec![Step::Head("0", true)],
    ] {
        let (outcomes, pair, _) = respond("GET", steps);
        assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
        let response = pair.client.responses.values().next().expect("a response");
        assert!(response.done && response.reset.is_none());
        assert_eq!(response.body.len(), if outcomes.len() == 1 { 0 } else { 4 });
    }
    // HEAD: the length is the resource's, no body follows.
    let (outcomes, pair, _) = respond("HEAD", vec![Step::Head("4", true)]);
    assert_eq!(outcomes, [Ok(())]);
    let response = pair.client.responses.values().next().expect("a response");
    assert!(response.done && response.reset.is_none());
}

#[test]
fn an_invalid_content_length_is_refused() {
    for length in ["", "1x", "-1", "99999999999999999999", "1, 1"] {
        let (outcomes, _, _) = respond("GET", vec![Step::Head(length, false)]);
        assert!(
            matches!(outcomes[..], [Err(SendError::Invalid(_))]),
            "{length:?}"
        );
    }
}
