//! One HTTP/1.1 connection as a state machine with no I/O (sans-IO).
//!
//! The pyo3 protocol feeds it bytes and ASGI send events; it answers with request heads,
//! body bytes for `receive()`, and the exact bytes to write. Every framing decision lives
//! here, so it is tested without sockets or Python.

use crate::http1::body::BodyDecoder;
use crate::http1::request::{HeadParser, RequestHead};
use crate::http1::response::{write_chunk_size, LAST_CHUNK};
use crate::http1::{Limits, RequestError, Version};
use crate::syntax::{is_field_value, is_token, response_content_length, write_status_line};

/// Unread bytes held (queued request body, pipelined input) before reading pauses.
pub const READ_HIGH_WATER: usize = 256 * 1024;

/// What feeding bytes produced.
#[derive(Debug)]
pub enum Feed {
    /// Nothing new for the app (waiting for more bytes, or body bytes were queued).
    Pending,
    /// A request head: the app must be started for it.
    Request(RequestHead),
    /// The input was refused: write `error_response(status)` and close.
    Refused(RequestError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyFraming {
    Length(u64),
    Chunked,
    UntilClose,
    Empty,
}

#[derive(Debug)]
enum ResponsePhase {
    NotStarted,
    /// `http.response.start` arrived; its head is kept until the first body part so both go
    /// out in one write.
    HeadPending(PendingHead),
    Streaming {
        framing: BodyFraming,
        sent: u64,
    },
    Complete,
}

#[derive(Debug)]
pub struct PendingHead {
    status: u16,
    bytes: Vec<u8>,
    content_length: Option<u64>,
    close: bool,
}

/// One request/response exchange.
#[derive(Debug)]
pub struct Exchange {
    pub seq: u64,
    pub keep_alive: bool,
    head_request: bool,
    http10: bool,
    /// "100 Continue" is still owed: sent at the app's first wait for body.
    expect_continue: bool,
    /// The client asked for "100 Continue" and none was sent: it may rightly send no body
    /// (not even once the final response went out, RFC 9110 10.1.1).
    continue_unsent: bool,
    decoder: BodyDecoder,
    body: Vec<u8>,
    body_complete: bool,
    final_body_delivered: bool,
    response: ResponsePhase,
    pub status: u16,
}

/// What `receive()` can hand the app right now.
#[derive(Debug, PartialEq, Eq)]
pub enum ReceiveOutcome {
    Body {
        body: Vec<u8>,
        more_body: bool,
    },
    Disconnect,
    /// Nothing yet; `send_continue` is true when "100 Continue" must be written first.
    Wait {
        send_continue: bool,
    },
}

/// A send the app made that breaks the ASGI message order or HTTP rules.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    /// Refused; nothing was written, so the exchange can still be answered (e.g. a 500).
    Refused(&'static str),
    /// Part of the response is already on the wire: the connection must be cut.
    Broken(&'static str),
}

impl SendError {
    pub fn message(&self) -> &'static str {
        match self {
            Self::Refused(message) | Self::Broken(message) => message,
        }
    }
}

/// How a body part goes on the wire: the bytes already put in `out`, then the body itself
/// when `with_body`, then `suffix`. The caller assembles them in one buffer, so the body is
/// copied once.
#[derive(Debug, PartialEq, Eq)]
pub struct BodyPart {
    pub with_body: bool,
    pub suffix: &'static [u8],
}

/// The result of a body send: what happened to the exchange.
#[derive(Debug, PartialEq, Eq)]
pub enum SendOutcome {
    /// More body may follow.
    Open,
    /// The response is complete; the connection may carry another request.
    Complete,
    /// The response is complete (or broken off); the connection must close after the write.
    Close,
}

pub struct Connection {
    limits: Limits,
    buf: Vec<u8>,
    pos: usize,
    /// Resumes where it stopped, so a head arriving in pieces is scanned once.
    head_parser: HeadParser,
    exchange: Option<Exchange>,
    next_seq: u64,
    /// Graceful shutdown: each response that has no pipelined request behind it says
    /// `connection: close`; requests already received are still answered first.
    pub draining: bool,
    /// Any byte of the current (or next) request head has arrived.
    pub head_started: bool,
}

fn status_has_no_body(status: u16) -> bool {
    (100..200).contains(&status) || status == 204 || status == 304
}

fn eq_ignore_case(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn has_token(list: &[u8], token: &[u8]) -> bool {
    list.split(|&b| b == b',')
        .any(|item| eq_ignore_case(item.trim_ascii(), token))
}

impl Connection {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            buf: Vec::new(),
            pos: 0,
            head_parser: HeadParser::new(),
            exchange: None,
            next_seq: 1,
            draining: false,
            head_started: false,
        }
    }

    pub fn exchange(&self) -> Option<&Exchange> {
        self.exchange.as_ref()
    }

    /// The current exchange if `seq` is still it (a finished cycle's callables go stale).
    fn current(&mut self, seq: u64) -> Option<&mut Exchange> {
        self.exchange.as_mut().filter(|ex| ex.seq == seq)
    }

    pub fn is_current(&self, seq: u64) -> bool {
        self.exchange.as_ref().is_some_and(|ex| ex.seq == seq)
    }

    /// No request in progress and no byte of the next one received.
    pub fn is_idle(&self) -> bool {
        self.exchange.is_none() && self.pos == self.buf.len()
    }

    /// The current exchange waits for request body bytes that only the client can send:
    /// its body is incomplete, and either no "100 Continue" was asked for, or it was sent,
    /// or the client began its body anyway (one that asked may rightly send nothing until
    /// the 100 comes, or ever once a final response came first). What a body timeout
    /// measures.
    pub fn awaiting_body(&self) -> bool {
        self.exchange.as_ref().is_some_and(|ex| {
            !ex.body_complete && (!ex.continue_unsent || ex.decoder.received() > 0)
        })
    }

    /// Bytes received and not yet consumed by the app or the parser.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos + self.exchange.as_ref().map_or(0, |ex| ex.body.len())
    }

    /// With no exchange open, what is buffered is an incomplete head: the head limits bound
    /// it (431 past them), and pausing there would stall a head within those limits until
    /// the head timeout.
    pub fn wants_read_pause(&self) -> bool {
        self.exchange.is_some() && self.buffered() > READ_HIGH_WATER
    }

    /// Keep received bytes without parsing them: the connection starts no request for
    /// now (its client is not reading the responses). `advance` parses them later.
    pub fn hold_input(&mut self, data: &[u8]) {
        if self.pos > 0 && self.pos >= self.buf.len() / 2 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Take received bytes and advance the parser.
    pub fn feed(&mut self, data: &[u8]) -> Feed {
        if self.pos == self.buf.len() {
            // Nothing buffered: parse the received bytes where they are and keep only what
            // is left over (a partial head, pipelined requests).
            self.buf.clear();
            self.pos = 0;
            let (feed, used) = self.advance_over(data);
            self.buf.extend_from_slice(&data[used..]);
            return feed;
        }
        if self.pos > 0 && self.pos >= self.buf.len() / 2 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
        self.advance()
    }

    /// Parse the next request head (when no exchange is open) and queue body bytes.
    pub fn advance(&mut self) -> Feed {
        let buf = std::mem::take(&mut self.buf);
        let (feed, used) = self.advance_over(&buf[self.pos..]);
        self.buf = buf;
        self.pos += used;
        feed
    }

    /// `advance` over `input`; also returns how many bytes of it were consumed.
    fn advance_over(&mut self, input: &[u8]) -> (Feed, usize) {
        if let Some(ex) = self.exchange.as_mut() {
            if ex.body_complete {
                return (Feed::Pending, 0);
            }
            let used = match ex.decoder.decode(input, &mut ex.body) {
                Ok(used) => used,
                Err(err) => return (Feed::Refused(err), 0),
            };
            ex.body_complete = ex.decoder.is_complete();
            return (Feed::Pending, used);
        }
        if input.is_empty() {
            return (Feed::Pending, 0);
        }
        self.head_started = true;
        match self.head_parser.parse(input, &self.limits) {
            Ok(None) => (Feed::Pending, 0),
            Err(err) => (Feed::Refused(err), 0),
            Ok(Some((head, used))) => {
                self.head_started = false;
                self.open_exchange(&head);
                match self.advance_over(&input[used..]) {
                    (Feed::Refused(err), _) => (Feed::Refused(err), used),
                    (_, body_used) => (Feed::Request(head), used + body_used),
                }
            }
        }
    }

    fn open_exchange(&mut self, head: &RequestHead) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let decoder = BodyDecoder::new(head.framing, &self.limits);
        let body_complete = decoder.is_complete();
        let http10 = head.version == Version::Http10;
        self.exchange = Some(Exchange {
            seq,
            keep_alive: head.keep_alive,
            head_request: head.method() == b"HEAD",
            http10,
            expect_continue: head.expect_continue && !body_complete && !http10,
            continue_unsent: head.expect_continue && !body_complete && !http10,
            decoder,
            body: Vec::new(),
            body_complete,
            final_body_delivered: false,
            response: ResponsePhase::NotStarted,
            status: 0,
        });
    }

    /// A file body of `length` bytes follows: announce it unless the app set a length.
    pub fn set_body_length(&mut self, seq: u64, length: u64) {
        if let Some(ex) = self.current(seq) {
            if let ResponsePhase::HeadPending(head) = &mut ex.response {
                if head.content_length.is_none() {
                    head.content_length = Some(length);
                    head.bytes.extend_from_slice(b"content-length: ");
                    head.bytes.extend_from_slice(length.to_string().as_bytes());
                    head.bytes.extend_from_slice(b"\r\n");
                }
            }
        }
    }

    pub fn current_seq(&self) -> Option<u64> {
        self.exchange.as_ref().map(|ex| ex.seq)
    }

    /// What `receive()` for exchange `seq` yields now.
    pub fn receive(&mut self, seq: u64) -> ReceiveOutcome {
        let Some(ex) = self.current(seq) else {
            return ReceiveOutcome::Disconnect;
        };
        if matches!(ex.response, ResponsePhase::Complete) || ex.final_body_delivered {
            return if matches!(ex.response, ResponsePhase::Complete) {
                ReceiveOutcome::Disconnect
            } else {
                ReceiveOutcome::Wait {
                    send_continue: false,
                }
            };
        }
        if !ex.body.is_empty() || ex.body_complete {
            ex.final_body_delivered = ex.body_complete;
            return ReceiveOutcome::Body {
                body: std::mem::take(&mut ex.body),
                more_body: !ex.body_complete,
            };
        }
        // Owed only until the final response head goes out (write_head clears it).
        let send_continue = std::mem::take(&mut ex.expect_continue);
        ex.continue_unsent &= !send_continue;
        ReceiveOutcome::Wait { send_continue }
    }

    /// Whether a waiting `receive()` can now be answered (body arrived or finished).
    pub fn receive_ready(&self, seq: u64) -> bool {
        self.exchange.as_ref().is_some_and(|ex| {
            ex.seq == seq && !ex.final_body_delivered && (!ex.body.is_empty() || ex.body_complete)
        })
    }

    /// `http.response.start`: validate and keep the head until the first body part.
    pub fn start_response<'h>(
        &mut self,
        seq: u64,
        status: u16,
        headers: impl IntoIterator<Item = (&'h [u8], &'h [u8])>,
        defaults: &[&[u8]],
    ) -> Result<(), SendError> {
        let Some(ex) = self.current(seq) else {
            return Err(SendError::Refused("response already completed"));
        };
        if !matches!(ex.response, ResponsePhase::NotStarted) {
            return Err(SendError::Refused("http.response.start sent twice"));
        }
        if !(200..=599).contains(&status) {
            return Err(SendError::Refused("status must be an int from 200 to 599"));
        }
        let mut bytes = Vec::with_capacity(256);
        write_status_line(&mut bytes, status);
        let mut content_length = None;
        let mut close = false;
        for (name, value) in headers {
            if !is_token(name) || !is_field_value(value) {
                return Err(SendError::Refused("invalid response header name or value"));
            }
            if eq_ignore_case(name, b"content-length") {
                let length = response_content_length(content_length, value).ok_or(
                    SendError::Refused("invalid or repeated content-length header"),
                )?;
                content_length = Some(length);
            } else if eq_ignore_case(name, b"transfer-encoding") {
                // The server owns message framing; a chunked body is produced when needed.
                continue;
            } else if eq_ignore_case(name, b"connection") && has_token(value, b"close") {
                close = true;
            }
            bytes.extend_from_slice(name);
            bytes.extend_from_slice(b": ");
            bytes.extend_from_slice(value);
            bytes.extend_from_slice(b"\r\n");
        }
        for lines in defaults {
            bytes.extend_from_slice(lines);
        }
        ex.status = status;
        ex.response = ResponsePhase::HeadPending(PendingHead {
            status,
            bytes,
            content_length,
            close,
        });
        Ok(())
    }

    /// `http.response.body`: append the bytes to write to `out`.
    pub fn send_body(
        &mut self,
        seq: u64,
        out: &mut Vec<u8>,
        body: &[u8],
        more_body: bool,
    ) -> Result<(SendOutcome, BodyPart), SendError> {
        // Bytes after a complete body are a pipelined request: it is answered before the
        // close, so this response keeps the connection open for it.
        let draining = self.draining && self.pos == self.buf.len();
        let Some(ex) = self.current(seq) else {
            return Err(SendError::Refused("response already completed"));
        };
        match std::mem::replace(&mut ex.response, ResponsePhase::Complete) {
            ResponsePhase::NotStarted => {
                ex.response = ResponsePhase::NotStarted;
                Err(SendError::Refused(
                    "http.response.body sent before http.response.start",
                ))
            }
            ResponsePhase::Complete => Err(SendError::Refused("response already completed")),
            ResponsePhase::HeadPending(head) => {
                let framing = ex.write_head(out, head, body.len() as u64, more_body, draining);
                ex.response = ResponsePhase::Streaming { framing, sent: 0 };
                ex.write_body(out, body, more_body)
            }
            streaming @ ResponsePhase::Streaming { .. } => {
                ex.response = streaming;
                ex.write_body(out, body, more_body)
            }
        }
    }

    /// The response is finished: either start on pipelined input or report the connection
    /// must close. A response that went out keep-alive keeps the connection even while
    /// draining: the client may already be sending its next request, which is then answered
    /// with `connection: close`.
    pub fn finish_exchange(&mut self) -> bool {
        let reusable = self.exchange.as_ref().is_some_and(|ex| {
            ex.keep_alive && ex.body_complete && matches!(ex.response, ResponsePhase::Complete)
        });
        if reusable {
            self.exchange = None;
        }
        reusable
    }

    /// Some of the response is on the wire (its head at least): an error can no longer be
    /// answered with a fresh response.
    pub fn response_on_wire(&self, seq: u64) -> bool {
        self.exchange.as_ref().is_some_and(|ex| {
            ex.seq == seq
                && matches!(
                    ex.response,
                    ResponsePhase::Streaming { .. } | ResponsePhase::Complete
                )
        })
    }

    /// The response of exchange `seq` is on the wire and its framing unmet: chunked or
    /// delimited by the close, or fewer bytes than its `content-length` sent. Ended now,
    /// the client would read it as broken (or, delimited by the close, as complete).
    pub fn response_cut_short(&self, seq: u64) -> bool {
        self.exchange.as_ref().is_some_and(|ex| {
            ex.seq == seq
                && match ex.response {
                    ResponsePhase::Streaming { framing, sent } => match framing {
                        BodyFraming::Length(total) => sent < total,
                        BodyFraming::Chunked | BodyFraming::UntilClose => true,
                        BodyFraming::Empty => false,
                    },
                    _ => false,
                }
        })
    }

    pub fn response_complete(&self, seq: u64) -> bool {
        self.exchange
            .as_ref()
            .is_none_or(|ex| ex.seq != seq || matches!(ex.response, ResponsePhase::Complete))
    }

    /// Mark the current exchange so the connection closes after its response.
    pub fn close_after_response(&mut self) {
        if let Some(ex) = self.exchange.as_mut() {
            ex.keep_alive = false;
        }
    }
}

impl Exchange {
    fn write_head(
        &mut self,
        out: &mut Vec<u8>,
        head: PendingHead,
        first_len: u64,
        more_body: bool,
        draining: bool,
    ) -> BodyFraming {
        let mut bytes = head.bytes;
        // The final response answers the request: an interim 100 may no longer be sent.
        self.expect_continue = false;
        let no_body = self.head_request || status_has_no_body(head.status);
        let framing = if status_has_no_body(head.status) {
            BodyFraming::Empty
        } else if let Some(length) = head.content_length {
            BodyFraming::Length(length)
        } else if !more_body {
            bytes.extend_from_slice(b"content-length: ");
            bytes.extend_from_slice(first_len.to_string().as_bytes());
            bytes.extend_from_slice(b"\r\n");
            BodyFraming::Length(first_len)
        } else if self.http10 {
            self.keep_alive = false;
            BodyFraming::UntilClose
        } else {
            if !self.head_request {
                bytes.extend_from_slice(b"transfer-encoding: chunked\r\n");
            }
            BodyFraming::Chunked
        };
        // A whole response to a request whose body has not all arrived: the connection
        // closes after it (the rest of the body would be read as the next request), and
        // the response says so (RFC 9110 10.1.1).
        if head.close || draining || (!more_body && !self.body_complete) {
            self.keep_alive = false;
        }
        if !self.keep_alive && !head.close {
            bytes.extend_from_slice(b"connection: close\r\n");
        } else if self.keep_alive && self.http10 {
            bytes.extend_from_slice(b"connection: keep-alive\r\n");
        }
        bytes.extend_from_slice(b"\r\n");
        out.extend_from_slice(&bytes);
        if no_body {
            BodyFraming::Empty
        } else {
            framing
        }
    }

    fn write_body(
        &mut self,
        out: &mut Vec<u8>,
        body: &[u8],
        more_body: bool,
    ) -> Result<(SendOutcome, BodyPart), SendError> {
        let ResponsePhase::Streaming { framing, sent } = &mut self.response else {
            return Err(SendError::Refused("response is not streaming"));
        };
        let length = body.len() as u64;
        let mut part = BodyPart {
            with_body: true,
            suffix: b"",
        };
        match *framing {
            BodyFraming::Empty => part.with_body = false,
            BodyFraming::Length(total) => {
                if *sent + length > total {
                    self.keep_alive = false;
                    self.response = ResponsePhase::Complete;
                    return Err(SendError::Broken(
                        "response body longer than its content-length",
                    ));
                }
            }
            BodyFraming::Chunked => {
                part.with_body = !body.is_empty();
                if part.with_body {
                    write_chunk_size(out, body.len());
                }
                part.suffix = match (part.with_body, more_body) {
                    (true, true) => b"\r\n",
                    (true, false) => b"\r\n0\r\n\r\n",
                    (false, true) => b"",
                    (false, false) => LAST_CHUNK,
                };
            }
            BodyFraming::UntilClose => {}
        }
        *sent += length;
        if more_body {
            return Ok((SendOutcome::Open, part));
        }
        let short =
            matches!(*framing, BodyFraming::Length(total) if *sent < total) && !self.head_request;
        let until_close = *framing == BodyFraming::UntilClose;
        self.response = ResponsePhase::Complete;
        if short || until_close || !self.keep_alive || !self.body_complete {
            self.keep_alive = false;
            return Ok((SendOutcome::Close, part));
        }
        Ok((SendOutcome::Complete, part))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            request_line: 8190,
            fields: 100,
            field_size: 8190,
            body: None,
        }
    }

    fn request(conn: &mut Connection, bytes: &[u8]) -> RequestHead {
        match conn.feed(bytes) {
            Feed::Request(head) => head,
            other => panic!("expected a request, got {other:?}"),
        }
    }

    /// The bytes a body send puts on the wire.
    fn send(
        conn: &mut Connection,
        seq: u64,
        out: &mut Vec<u8>,
        body: &[u8],
        more: bool,
    ) -> Result<SendOutcome, SendError> {
        let (outcome, part) = conn.send_body(seq, out, body, more)?;
        if part.with_body {
            out.extend_from_slice(body);
        }
        out.extend_from_slice(part.suffix);
        Ok(outcome)
    }

    fn respond(conn: &mut Connection, seq: u64, body: &[u8]) -> (Vec<u8>, SendOutcome) {
        let mut out = Vec::new();
        conn.start_response(seq, 200, [(&b"content-type"[..], &b"text/plain"[..])], &[])
            .expect("start");
        let outcome = send(conn, seq, &mut out, body, false).expect("body");
        (out, outcome)
    }

    #[test]
    fn a_head_larger_than_the_read_high_water_mark_is_read_to_its_end() {
        let mut conn = Connection::new(limits());
        let field = [b"x-big: ".as_slice(), &[b'v'; 8000], b"\r\n"].concat();
        let mut head = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        while head.len() <= READ_HIGH_WATER {
            head.extend_from_slice(&field);
        }
        assert!(matches!(conn.feed(&head), Feed::Pending));
        assert!(
            !conn.wants_read_pause(),
            "reading paused inside a head within the limits"
        );
        request(&mut conn, b"\r\n");
    }

    #[test]
    fn unread_pipelined_input_pauses_reading() {
        let mut conn = Connection::new(limits());
        let mut input = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 300000\r\n\r\n".to_vec();
        input.resize(input.len() + 300_000, b'b');
        request(&mut conn, &input);
        assert!(conn.wants_read_pause());
    }

    #[test]
    fn held_input_is_parsed_by_the_next_advance() {
        let mut conn = Connection::new(limits());
        request(&mut conn, b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n");
        respond(&mut conn, 1, b"one");
        assert!(conn.finish_exchange());
        conn.hold_input(b"GET /two HTTP/1.1\r\nHost: a\r\n\r\nGET /thr");
        assert!(conn.exchange().is_none(), "held input starts no request");
        assert!(!conn.is_idle());
        match conn.advance() {
            Feed::Request(head) => assert_eq!(head.target(), b"/two"),
            other => panic!("expected the held request, got {other:?}"),
        }
        respond(&mut conn, 2, b"two");
        assert!(conn.finish_exchange());
        conn.hold_input(b"ee HTTP/1.1\r\nHost: a\r\n\r\n");
        match conn.advance() {
            Feed::Request(head) => assert_eq!(head.target(), b"/three"),
            other => panic!("expected the request split across held input, got {other:?}"),
        }
    }

    #[test]
    fn a_response_before_the_whole_body_says_the_connection_closes() {
        let mut conn = Connection::new(limits());
        request(
            &mut conn,
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc",
        );
        let (out, outcome) = respond(&mut conn, 1, b"early");
        assert_eq!(outcome, SendOutcome::Close);
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("connection: close\r\n"), "{text}");
        assert!(!conn.finish_exchange());
    }

    #[test]
    fn a_response_after_the_whole_body_keeps_the_connection() {
        let mut conn = Connection::new(limits());
        request(
            &mut conn,
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
        );
        let (out, outcome) = respond(&mut conn, 1, b"done");
        assert_eq!(outcome, SendOutcome::Complete);
        assert!(!String::from_utf8_lossy(&out).contains("connection:"));
        assert!(conn.finish_exchange());
    }

    #[test]
    fn one_shot_response_is_coalesced_with_length() {
        let mut conn = Connection::new(limits());
        request(&mut conn, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        let (out, outcome) = respond(&mut conn, 1, b"hello");
        assert_eq!(outcome, SendOutcome::Complete);
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("content-length: 5\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\nhello"), "{text}");
        assert!(conn.finish_exchange());
    }

    #[test]
    fn pipelined_requests_wait_for_the_previous_response() {
        let mut conn = Connection::new(limits());
        let head = request(
            &mut conn,
            b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n",
        );
        assert_eq!(head.target(), b"/a");
        assert!(matches!(conn.advance(), Feed::Pending));
        respond(&mut conn, 1, b"");
        assert!(conn.finish_exchange());
        match conn.advance() {
            Feed::Request(head) => assert_eq!(head.target(), b"/b"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn draining_answers_pipelined_requests_then_says_close() {
        let mut conn = Connection::new(limits());
        request(
            &mut conn,
            b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n",
        );
        conn.draining = true;
        // /b is already here: /a's response keeps the connection open for it.
        let (out, outcome) = respond(&mut conn, 1, b"a");
        assert_eq!(outcome, SendOutcome::Complete);
        assert!(!String::from_utf8_lossy(&out).contains("connection: close"));
        assert!(conn.finish_exchange());
        assert!(matches!(conn.advance(), Feed::Request(head) if head.target() == b"/b"));
        // Nothing behind /b: its response is the last one.
        respond_last(&mut conn, 2);
        assert!(!conn.finish_exchange());
    }

    #[test]
    fn a_keep_alive_response_sent_before_the_drain_keeps_the_connection() {
        let mut conn = Connection::new(limits());
        request(&mut conn, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        conn.start_response(1, 200, [], &[]).expect("start");
        let mut out = Vec::new();
        send(&mut conn, 1, &mut out, b"abc", true).expect("head and first part");
        conn.draining = true;
        assert_eq!(
            send(&mut conn, 1, &mut out, b"", false),
            Ok(SendOutcome::Complete)
        );
        // The client was promised keep-alive and may be sending already: its next
        // request is answered (with connection: close), not cut.
        assert!(conn.finish_exchange());
        request(&mut conn, b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n");
        respond_last(&mut conn, 2);
    }

    /// Answer exchange `seq` of a draining connection: the response must end it.
    fn respond_last(conn: &mut Connection, seq: u64) {
        let (out, outcome) = respond(conn, seq, b"last");
        assert_eq!(outcome, SendOutcome::Close);
        assert!(String::from_utf8_lossy(&out).contains("connection: close\r\n"));
    }

    #[test]
    fn streaming_without_length_is_chunked() {
        let mut conn = Connection::new(limits());
        request(&mut conn, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        conn.start_response(1, 200, [], &[]).expect("start");
        let mut out = Vec::new();
        assert_eq!(
            send(&mut conn, 1, &mut out, b"abc", true),
            Ok(SendOutcome::Open)
        );
        assert_eq!(
            send(&mut conn, 1, &mut out, b"", false),
            Ok(SendOutcome::Complete)
        );
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.contains("transfer-encoding: chunked\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n3\r\nabc\r\n0\r\n\r\n"), "{text}");
    }

    #[test]
    fn http10_stream_is_close_delimited() {
        let mut conn = Connection::new(limits());
        request(&mut conn, b"GET / HTTP/1.0\r\n\r\n");
        conn.start_response(1, 200, [], &[]).expect("start");
        let mut out = Vec::new();
        send(&mut conn, 1, &mut out, b"abc", true).expect("body");
        assert_eq!(
            send(&mut conn, 1, &mut out, b"", false),
            Ok(SendOutcome::Close)
        );
        let text = String::from_utf8(out).expect("utf8");
        assert!(!text.contains("chunked"), "{text}");
        assert!(text.ends_with("\r\n\r\nabc"), "{text}");
    }

    #[test]
    fn head_response_keeps_length_but_sends_no_body() {
        let mut conn = Connection::new(limits());
        request(&mut conn, b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
        let (out, outcome) = respond(&mut conn, 1, b"hello");
        assert_eq!(outcome, SendOutcome::Complete);
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.contains("content-length: 5\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n"), "{text}");
    }

    #[test]
    fn short_body_closes_the_connection() {
        let mut conn = Connection::new(limits());
        request(&mut conn, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        conn.start_response(1, 200, [(&b"content-length"[..], &b"10"[..])], &[])
            .expect("start");
        let mut out = Vec::new();
        assert_eq!(
            send(&mut conn, 1, &mut out, b"abc", false),
            Ok(SendOutcome::Close)
        );
    }

    #[test]
    fn body_is_delivered_in_order_with_more_body() {
        let mut conn = Connection::new(limits());
        request(
            &mut conn,
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\nabc",
        );
        assert_eq!(
            conn.receive(1),
            ReceiveOutcome::Body {
                body: b"abc".to_vec(),
                more_body: true
            }
        );
        assert_eq!(
            conn.receive(1),
            ReceiveOutcome::Wait {
                send_continue: false
            }
        );
        conn.feed(b"def");
        assert!(conn.receive_ready(1));
        assert_eq!(
            conn.receive(1),
            ReceiveOutcome::Body {
                body: b"def".to_vec(),
                more_body: false
            }
        );
    }

    #[test]
    fn continue_is_owed_once_until_the_first_wait() {
        let mut conn = Connection::new(limits());
        request(
            &mut conn,
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
        );
        assert_eq!(
            conn.receive(1),
            ReceiveOutcome::Wait {
                send_continue: true
            }
        );
        assert_eq!(
            conn.receive(1),
            ReceiveOutcome::Wait {
                send_continue: false
            }
        );
    }

    #[test]
    fn bad_response_headers_are_refused() {
        let mut conn = Connection::new(limits());
        request(&mut conn, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        let bad = conn.start_response(1, 200, [(&b"x"[..], &b"a\r\nb: c"[..])], &[]);
        assert!(bad.is_err());
        let bad = conn.start_response(1, 99, [], &[]);
        assert!(bad.is_err());
    }

    #[test]
    fn unread_body_prevents_reuse() {
        let mut conn = Connection::new(limits());
        request(
            &mut conn,
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc",
        );
        let (_, outcome) = respond(&mut conn, 1, b"no");
        assert_eq!(outcome, SendOutcome::Close);
        assert!(!conn.finish_exchange());
    }

    #[test]
    fn byte_by_byte_input_gives_the_same_exchanges() {
        let wire: &[u8] = b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello\
GET /b HTTP/1.1\r\nHost: a\r\n\r\n";
        let mut conn = Connection::new(limits());
        let mut targets = Vec::new();
        let mut body = Vec::new();
        for (i, byte) in wire.iter().enumerate() {
            let mut feed = conn.feed(std::slice::from_ref(byte));
            loop {
                match feed {
                    Feed::Request(head) => targets.push(head.target().to_vec()),
                    Feed::Refused(err) => panic!("refused at byte {i}: {err}"),
                    Feed::Pending => {}
                }
                let Some(seq) = conn.current_seq() else { break };
                if let ReceiveOutcome::Body {
                    body: part,
                    more_body,
                } = conn.receive(seq)
                {
                    body.extend(part);
                    if !more_body {
                        respond(&mut conn, seq, b"");
                        assert!(conn.finish_exchange());
                        feed = conn.advance();
                        continue;
                    }
                }
                break;
            }
        }
        assert_eq!(targets, vec![b"/a".to_vec(), b"/b".to_vec()]);
        assert_eq!(body, b"hello");
    }

    #[test]
    fn continue_is_not_owed_once_the_response_head_is_out() {
        let mut conn = Connection::new(limits());
        request(
            &mut conn,
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
        );
        conn.start_response(1, 200, [], &[]).expect("start");
        let mut out = Vec::new();
        send(&mut conn, 1, &mut out, b"partial", true).expect("body");
        assert!(conn.response_on_wire(1));
        assert_eq!(
            conn.receive(1),
            ReceiveOutcome::Wait {
                send_continue: false
            }
        );
    }

    #[test]
    fn a_response_is_cut_short_only_while_its_framing_is_unmet() {
        let post = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\n";
        let mut out = Vec::new();
        // content-length: short until every declared byte went, even with more_body.
        let mut conn = Connection::new(limits());
        request(&mut conn, post);
        assert!(!conn.response_cut_short(1), "nothing on the wire yet");
        let length = [(&b"content-length"[..], &b"4"[..])];
        conn.start_response(1, 200, length, &[]).expect("start");
        assert!(!conn.response_cut_short(1), "the head is held");
        send(&mut conn, 1, &mut out, b"ab", true).expect("body");
        assert!(conn.response_cut_short(1));
        send(&mut conn, 1, &mut out, b"cd", true).expect("body");
        assert!(
            !conn.response_cut_short(1),
            "all of its content-length went"
        );
        // Chunked: short until the last chunk.
        let mut conn = Connection::new(limits());
        request(&mut conn, post);
        conn.start_response(1, 200, [], &[]).expect("start");
        send(&mut conn, 1, &mut out, b"ab", true).expect("body");
        assert!(conn.response_cut_short(1));
        send(&mut conn, 1, &mut out, b"", false).expect("end");
        assert!(!conn.response_cut_short(1));
        // No body to send: never short.
        let mut conn = Connection::new(limits());
        request(&mut conn, post);
        conn.start_response(1, 204, [], &[]).expect("start");
        send(&mut conn, 1, &mut out, b"", true).expect("body");
        assert!(!conn.response_cut_short(1));
    }

    #[test]
    fn a_body_is_awaited_until_complete_and_not_while_continue_is_owed() {
        let mut conn = Connection::new(limits());
        request(&mut conn, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(
            !conn.awaiting_body(),
            "a request without a body awaits none"
        );
        respond(&mut conn, 1, b"");
        assert!(conn.finish_exchange());
        assert!(!conn.awaiting_body(), "an idle connection awaits no body");
        request(
            &mut conn,
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab",
        );
        assert!(conn.awaiting_body());
        conn.feed(b"c\r\n0\r\n\r\n");
        assert!(!conn.awaiting_body(), "the last chunk completes the body");
        respond(&mut conn, 2, b"");
        assert!(conn.finish_exchange());
        request(
            &mut conn,
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
        );
        assert!(!conn.awaiting_body(), "the client waits for 100 Continue");
        assert_eq!(
            conn.receive(3),
            ReceiveOutcome::Wait {
                send_continue: true
            }
        );
        assert!(conn.awaiting_body(), "once 100 Continue is owed no more");
    }

    #[test]
    fn no_body_is_awaited_after_a_final_response_without_100_continue() {
        let head =
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n";
        let mut conn = Connection::new(limits());
        request(&mut conn, head);
        respond(&mut conn, 1, b"no");
        assert!(
            !conn.awaiting_body(),
            "a final response came first: the client may rightly never send its body"
        );
        let mut conn = Connection::new(limits());
        request(&mut conn, head);
        conn.feed(b"a");
        assert!(
            conn.awaiting_body(),
            "the client began its body without the 100"
        );
    }

    #[test]
    fn stale_sequence_is_refused() {
        let mut conn = Connection::new(limits());
        request(&mut conn, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        respond(&mut conn, 1, b"");
        assert!(conn.finish_exchange());
        assert!(conn.start_response(1, 200, [], &[]).is_err());
        assert_eq!(conn.receive(1), ReceiveOutcome::Disconnect);
    }
}
