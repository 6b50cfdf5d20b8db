//! Request streams (RFC 9114 §4.1): HEADERS, DATA, optional trailers in; the response's
//! HEADERS, DATA and trailers out, queued until flow control takes them.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};
use quinn_proto::{StreamId, VarInt, WriteError};

use super::{read_into, Conn, ReadEnd};
use crate::http2::connect_response;
use crate::http3::frame::{self, Item, Reader};
use crate::http3::head::{self, Refusal};
use crate::http3::{codes, qpack, Event, SendError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Head,
    Body,
    /// Trailers arrived: nothing but unknown frames may follow.
    Trailers,
}

pub(super) struct Request {
    buf: BytesMut,
    reader: Reader,
    phase: Phase,
    max_field_section: u64,
    /// Still reading the request from the peer.
    recv_open: bool,
    content_length: Option<u64>,
    received: u64,
    /// Body bytes handed out as events and not yet released by the application.
    unreleased: u64,
    /// The application was told about this request.
    pub(super) announced: bool,
    head_request: bool,
    head_sent: bool,
    bodyless: bool,
    /// Frames not yet taken by the QUIC stream.
    queue: VecDeque<Bytes>,
    /// Finish the stream once the queue is empty.
    finish: bool,
    finished: bool,
    notify_sent: bool,
    /// The response's `content-length`, and the body bytes given so far.
    declared: Option<u64>,
    given: u64,
    /// The body went past or ended short of `declared`: reset once its queue is out.
    cut: bool,
}

impl Request {
    pub(super) fn new(max_field_section: u64) -> Self {
        Self {
            buf: BytesMut::new(),
            reader: Reader::default(),
            phase: Phase::Head,
            max_field_section,
            recv_open: true,
            content_length: None,
            received: 0,
            unreleased: 0,
            announced: false,
            head_request: false,
            head_sent: false,
            bodyless: false,
            queue: VecDeque::new(),
            finish: false,
            finished: false,
            notify_sent: false,
            declared: None,
            given: 0,
            cut: false,
        }
    }
}

/// What reading found that needs the connection.
enum Outcome {
    Fine,
    /// Answered with this status alone before the application hears of the request: 431
    /// for fields over `--limit-request-fields` or `--limit-request-field-size`, 501 for a
    /// well-formed CONNECT.
    Answer(u16),
    StreamError(u64),
    ConnectionError(u64, &'static str),
}

impl Conn {
    /// Read what flow control and the application's pace allow, and parse it.
    pub(super) fn read_request(&mut self, id: StreamId) {
        let window = u64::from(self.settings.stream_receive_window);
        let Some(req) = self.requests.get_mut(&id) else {
            return;
        };
        if !req.recv_open {
            return;
        }
        let end = if req.unreleased < window {
            let limit = window as usize + req.max_field_section as usize;
            read_into(&mut self.quic, id, &mut req.buf, limit)
        } else {
            ReadEnd::default()
        };
        let (fin, reset) = (end.fin, end.reset);
        let outcome = self.parse_request(id, fin);
        match (reset, outcome) {
            (_, Outcome::ConnectionError(code, why)) => self.fail(code, why),
            (_, Outcome::StreamError(code)) => self.reject(id, code),
            (Some(code), Outcome::Fine | Outcome::Answer(_)) => self.peer_reset(id, code),
            (None, Outcome::Answer(status)) => self.answer(id, status),
            (None, Outcome::Fine) => self.complete_if_done(id),
        }
        let cap = self.settings.max_requests;
        if cap != 0 && self.resets.requests() >= cap {
            // Streams already opened are still served, then the connection closes (as
            // `--h2-max-requests` does on HTTP/2). It also keeps every request stream id
            // far below 2^32, which the binding's stream mapping needs.
            self.goaway();
        }
    }

    fn parse_request(&mut self, id: StreamId, fin: bool) -> Outcome {
        let conn = self.id;
        let stream = u64::from(id);
        let Some(req) = self.requests.get_mut(&id) else {
            return Outcome::Fine;
        };
        let mut ended_at_head = false;
        loop {
            let item = match req.reader.next(&mut req.buf, req.max_field_section) {
                Ok(Some(item)) => item,
                Ok(None) => break,
                // A field section over the limit fails its request only (§4.2.2).
                Err(codes::EXCESSIVE_LOAD) => return Outcome::StreamError(codes::EXCESSIVE_LOAD),
                Err(code) => return Outcome::ConnectionError(code, "invalid frame"),
            };
            match (item, req.phase) {
                (Item::Data(data), Phase::Body) => {
                    if data.is_empty() {
                        continue;
                    }
                    req.received += data.len() as u64;
                    if req.content_length.is_some_and(|len| req.received > len) {
                        return Outcome::StreamError(codes::MESSAGE_ERROR);
                    }
                    req.unreleased += data.len() as u64;
                    self.events.push(Event::Data { conn, stream, data });
                }
                (
                    Item::Frame {
                        ty: frame::HEADERS,
                        payload,
                    },
                    Phase::Head,
                ) => {
                    let fields = match fields(&payload, req.max_field_section) {
                        Ok(fields) => fields,
                        Err(outcome) => return outcome,
                    };
                    let (max_fields, max_size) =
                        (self.settings.max_fields, self.settings.max_field_size);
                    if head::fields_too_large(&fields, max_fields, max_size) {
                        return Outcome::Answer(431);
                    }
                    let request = match head::request(fields) {
                        Ok(request) => request,
                        Err(Refusal::Malformed) => {
                            return Outcome::StreamError(codes::MESSAGE_ERROR)
                        }
                        // As on HTTP/2: an app answering 200 would tell the client a
                        // tunnel opened. Any tunnel bytes are refused with the rest.
                        Err(Refusal::Connect) => {
                            return Outcome::Answer(connect_response().status().as_u16())
                        }
                    };
                    req.phase = Phase::Body;
                    req.content_length = request.content_length;
                    req.head_request = request.head.method == "HEAD";
                    req.announced = true;
                    self.resets.accepted();
                    let mut head = request.head;
                    head.end_stream = fin && req.buf.is_empty() && req.reader.at_boundary();
                    ended_at_head = head.end_stream;
                    self.events.push(Event::Request { conn, stream, head });
                }
                (
                    Item::Frame {
                        ty: frame::HEADERS,
                        payload,
                    },
                    Phase::Body,
                ) => {
                    // Trailers: checked for QPACK validity, then dropped (ASGI has no
                    // request trailers).
                    if let Err(outcome) = fields(&payload, req.max_field_section) {
                        return outcome;
                    }
                    req.phase = Phase::Trailers;
                }
                // DATA before HEADERS or after trailers, a third HEADERS, or a frame that
                // belongs on the control stream (§4.1, §7.2).
                _ => return Outcome::ConnectionError(codes::FRAME_UNEXPECTED, "unexpected frame"),
            }
        }
        if fin {
            if !req.buf.is_empty() || !req.reader.at_boundary() {
                return Outcome::ConnectionError(codes::FRAME_ERROR, "truncated frame");
            }
            if req.phase == Phase::Head {
                return Outcome::StreamError(codes::REQUEST_INCOMPLETE);
            }
            if req.content_length.is_some_and(|len| len != req.received) {
                return Outcome::StreamError(codes::MESSAGE_ERROR);
            }
            req.recv_open = false;
            if !ended_at_head {
                self.events.push(Event::End { conn, stream });
            }
        }
        Outcome::Fine
    }

    /// Answer `status` without a body, as HTTP/2 does, before the application sees the
    /// request; the rest of it is refused with H3_NO_ERROR (§4.1.2).
    fn answer(&mut self, id: StreamId, status: u16) {
        self.resets.accepted();
        let Ok(section) = head::response(Some(status), &[]) else {
            return self.reject(id, codes::REQUEST_REJECTED);
        };
        let Some(req) = self.requests.get_mut(&id) else {
            return;
        };
        req.queue
            .push_back(frame::frame(frame::HEADERS, &section).into());
        req.head_sent = true;
        req.bodyless = true;
        req.finish = true;
        req.buf.clear();
        if req.recv_open {
            req.recv_open = false;
            let _ = self.quic.recv_stream(id).stop(varint(codes::NO_ERROR));
        }
        self.flush(id);
    }

    /// Give `len` consumed body bytes back: reading resumes if it had stopped.
    pub(crate) fn release(&mut self, id: StreamId, len: u64) {
        if let Some(req) = self.requests.get_mut(&id) {
            req.unreleased = req.unreleased.saturating_sub(len);
            self.read_request(id);
        }
    }

    pub(crate) fn send_response(
        &mut self,
        id: StreamId,
        status: u16,
        headers: &[(Vec<u8>, Vec<u8>)],
        end: bool,
    ) -> Result<(), SendError> {
        let req = self.requests.get_mut(&id).ok_or(SendError::Gone)?;
        if req.head_sent || req.finish || !req.announced {
            return Err(SendError::Gone);
        }
        let section = head::response(Some(status), headers).map_err(|e| SendError::Invalid(e.0))?;
        let declared = head::declared_length(headers).map_err(|e| SendError::Invalid(e.0))?;
        req.bodyless =
            req.head_request || (100..200).contains(&status) || status == 204 || status == 304;
        req.head_sent = true;
        req.declared = declared;
        req.queue
            .push_back(frame::frame(frame::HEADERS, &section).into());
        // A head that ends a body it declared non-empty is a short body.
        req.cut = end && !req.bodyless && declared.is_some_and(|length| length > 0);
        req.finish = (end || req.bodyless) && !req.cut;
        self.flush(id);
        Ok(())
    }

    /// An interim `100 Continue` response: a HEADERS frame before the final one (RFC 9114
    /// 4.1), so the client that asked for it may send its body (RFC 9110 10.1.1).
    pub(crate) fn send_continue(&mut self, id: StreamId) -> Result<(), SendError> {
        let req = self.requests.get_mut(&id).ok_or(SendError::Gone)?;
        if req.head_sent || req.finish || !req.announced {
            return Err(SendError::Gone);
        }
        let section = head::response(Some(100), &[]).map_err(|e| SendError::Invalid(e.0))?;
        req.queue
            .push_back(frame::frame(frame::HEADERS, &section).into());
        self.flush(id);
        Ok(())
    }

    /// Queue body bytes; `end` finishes the stream after them. [`Event::Sent`] follows once
    /// the QUIC stream took them all.
    pub(crate) fn send_data(
        &mut self,
        id: StreamId,
        data: Bytes,
        end: bool,
    ) -> Result<(), SendError> {
        let req = self.requests.get_mut(&id).ok_or(SendError::Gone)?;
        if !req.head_sent || req.finish || req.cut {
            return Err(SendError::Gone);
        }
        let mut end = end;
        if !req.bodyless {
            req.given += data.len() as u64;
            let declared = req.declared.unwrap_or(u64::MAX);
            if req.given > declared {
                // As on HTTP/1.1 and HTTP/2: nothing past the declared length leaves, and
                // the application hears why.
                req.cut = true;
                self.flush(id);
                return Err(SendError::Invalid(
                    "response body longer than its content-length".to_owned(),
                ));
            }
            // A short body must not look complete: reset, never finished.
            req.cut = end && req.given < declared && req.declared.is_some();
            end &= !req.cut;
        }
        if !req.bodyless && !data.is_empty() {
            let mut head = Vec::with_capacity(16);
            frame::put_frame_head(&mut head, frame::DATA, data.len());
            req.queue.push_back(head.into());
            req.queue.push_back(data);
        }
        req.finish = end;
        req.notify_sent = true;
        self.flush(id);
        Ok(())
    }

    /// End the response with trailers, after any queued body.
    pub(crate) fn send_trailers(
        &mut self,
        id: StreamId,
        trailers: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<(), SendError> {
        let req = self.requests.get_mut(&id).ok_or(SendError::Gone)?;
        if !req.head_sent || req.finish || req.cut {
            return Err(SendError::Gone);
        }
        let section = head::response(None, trailers).map_err(|e| SendError::Invalid(e.0))?;
        // Trailers after a short body: reset instead.
        req.cut = !req.bodyless && req.declared.is_some_and(|length| req.given < length);
        if !req.bodyless && !req.cut {
            req.queue
                .push_back(frame::frame(frame::HEADERS, &section).into());
        }
        req.finish = !req.cut;
        req.notify_sent = true;
        self.flush(id);
        Ok(())
    }

    /// Abandon a request stream both ways with `code` (e.g. H3_INTERNAL_ERROR when the
    /// application failed mid-response). No event follows.
    pub(crate) fn reset(&mut self, id: StreamId, code: u64) {
        if self.requests.remove(&id).is_some() {
            self.abort_stream(id, code);
            self.close_if_drained();
        }
    }

    /// The application is done with the stream: an unread request body is refused with
    /// H3_NO_ERROR (§4.1.2). A response not finished by then is the caller's to reset.
    pub(crate) fn forget(&mut self, id: StreamId) {
        let Some(req) = self.requests.get_mut(&id) else {
            return;
        };
        if req.recv_open {
            req.recv_open = false;
            let _ = self.quic.recv_stream(id).stop(varint(codes::NO_ERROR));
        }
        self.complete_if_done(id);
    }

    /// Hand queued frames to the QUIC stream as far as it takes them.
    pub(super) fn flush(&mut self, id: StreamId) {
        let conn = self.id;
        let Some(req) = self.requests.get_mut(&id) else {
            return;
        };
        let mut send = self.quic.send_stream(id);
        let mut stopped = None;
        while let Some(front) = req.queue.front_mut() {
            match send.write(front) {
                Ok(written) if written == front.len() => {
                    req.queue.pop_front();
                }
                // A short write: QUIC registers the stream for a Writable event only
                // when a write finds no credit at all, so write again.
                Ok(written) if written > 0 => front.advance(written),
                Ok(_) => break,
                Err(WriteError::Blocked) => break,
                Err(WriteError::Stopped(code)) => {
                    stopped = Some(code.into_inner());
                    break;
                }
                Err(WriteError::ClosedStream) => req.queue.clear(),
            }
        }
        if let Some(code) = stopped {
            return self.stopped(id, code);
        }
        if !req.queue.is_empty() {
            return;
        }
        if req.finish && !req.finished {
            req.finished = true;
            let _ = self.quic.send_stream(id).finish();
        }
        if req.notify_sent {
            req.notify_sent = false;
            self.events.push(Event::Sent {
                conn,
                stream: u64::from(id),
            });
        }
        if req.cut {
            self.cut.insert(id);
        }
        self.complete_if_done(id);
    }

    /// Reset the streams whose response was cut for its `content-length` and whose bytes
    /// went to QUIC, once it has nothing more to send now: bytes it still holds then (the
    /// peer's flow control, pacing) are dropped with the reset. True if any was reset.
    pub(crate) fn reset_cut(&mut self) -> bool {
        if self.cut.is_empty() {
            return false;
        }
        for id in std::mem::take(&mut self.cut) {
            if self.requests.remove(&id).is_some() {
                self.abort_stream(id, codes::INTERNAL_ERROR);
            }
        }
        self.close_if_drained();
        true
    }

    /// The peer sent STOP_SENDING: the response is not wanted.
    pub(super) fn stopped(&mut self, id: StreamId, code: u64) {
        self.peer_reset(id, code);
    }

    /// The peer abandoned the stream: tell the application, abandon our side too.
    fn peer_reset(&mut self, id: StreamId, code: u64) {
        if let Some(req) = self.requests.remove(&id) {
            self.abort_stream(id, codes::REQUEST_CANCELLED);
            if req.announced {
                self.events.push(Event::Reset {
                    conn: self.id,
                    stream: u64::from(id),
                    code,
                });
                if !req.finished && self.resets.reset() {
                    return self.fail(codes::EXCESSIVE_LOAD, "too many requests reset");
                }
            }
            self.close_if_drained();
        }
    }

    /// A stream error of ours (§8): reset the stream with `code`.
    pub(super) fn reject(&mut self, id: StreamId, code: u64) {
        let announced = self.requests.remove(&id).is_some_and(|r| r.announced);
        self.abort_stream(id, code);
        if announced {
            self.events.push(Event::Reset {
                conn: self.id,
                stream: u64::from(id),
                code,
            });
        }
        self.close_if_drained();
    }

    fn abort_stream(&mut self, id: StreamId, code: u64) {
        let _ = self.quic.send_stream(id).reset(varint(code));
        let _ = self.quic.recv_stream(id).stop(varint(code));
        self.unacked.remove(&id);
    }

    /// Forget a stream once its response is finished and its request read: it waits only
    /// for the peer's acknowledgement then (which a graceful close waits for).
    fn complete_if_done(&mut self, id: StreamId) {
        if self
            .requests
            .get(&id)
            .is_some_and(|r| r.finished && !r.recv_open)
        {
            self.requests.remove(&id);
            self.unacked.insert(id);
            self.close_if_drained();
        }
    }
}

/// Decode a field section: too large fails the request (§4.2.2), undecodable the
/// connection (RFC 9204 §2.2).
fn fields(payload: &[u8], max: u64) -> Result<qpack::Fields, Outcome> {
    qpack::decode(payload, max).map_err(|error| match error {
        qpack::Error::TooLarge => Outcome::StreamError(codes::EXCESSIVE_LOAD),
        _ => Outcome::ConnectionError(codes::QPACK_DECOMPRESSION_FAILED, "invalid field section"),
    })
}

fn varint(code: u64) -> VarInt {
    VarInt::from_u64(code).unwrap_or(VarInt::from_u32(codes::INTERNAL_ERROR as u32))
}
