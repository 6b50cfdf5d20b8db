//! A stream's response: its head, its body queued until flow control lets it out, and
//! its end, cut short when the body does not match its `content-length`.

use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};

use super::head_checks::declared_length;
use super::{Event, Http2, SendError, CONNECTION_SPECIFIC};

impl Http2 {
    /// Send the response head; `end` when there is no body at all.
    pub fn send_response(
        &mut self,
        stream: u32,
        status: u16,
        headers: &[(Vec<u8>, Vec<u8>)],
        end: bool,
    ) -> Result<(), SendError> {
        let entry = self.streams.get_mut(&stream).ok_or(SendError::Gone)?;
        let respond = entry.respond.as_mut().ok_or(SendError::Gone)?;
        let status = StatusCode::from_u16(status)
            .map_err(|_| SendError::Invalid(format!("invalid status {status}")))?;
        let bodyless = entry.head_request
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        let mut response = Response::new(());
        *response.status_mut() = status;
        *response.headers_mut() = header_map(headers)?;
        entry.declared = declared_length(response.headers())?;
        // A head that ends a body it declared non-empty is a short body: cut below.
        let short = end && !bodyless && entry.declared.is_some_and(|length| length > 0);
        let end = (end || bodyless) && !short;
        let send = respond
            .send_response(response, end)
            .map_err(|err| refused_head(&err))?;
        entry.respond = None;
        entry.bodyless = bodyless;
        if short {
            entry.send = Some(send);
            entry.cut = true;
            self.unsettled = true;
            return Ok(());
        }
        if end {
            entry.finish = Some(None);
            entry.send = None;
            self.finish_if_done(stream);
        } else {
            entry.send = Some(send);
        }
        self.unsettled = true;
        Ok(())
    }

    /// An interim `100 Continue` response (a HEADERS frame without END_STREAM) before the
    /// response head: the client that asked for it may send its body (RFC 9110 10.1.1).
    /// The engine does not check the stream's state; `respond` does: the final head takes
    /// it, so no interim head can follow one (`Gone`).
    pub fn send_continue(&mut self, stream: u32) -> Result<(), SendError> {
        let entry = self.streams.get_mut(&stream).ok_or(SendError::Gone)?;
        let respond = entry.respond.as_mut().ok_or(SendError::Gone)?;
        let mut response = Response::new(());
        *response.status_mut() = StatusCode::CONTINUE;
        respond
            .send_informational(response)
            .map_err(|err| refused_head(&err))?;
        self.unsettled = true;
        Ok(())
    }

    /// Queue response body bytes; `end` closes the stream after them. An [`Event::Sent`]
    /// follows once they all went to the engine (at once if flow control allows).
    pub fn send_data(&mut self, stream: u32, data: Bytes, end: bool) -> Result<(), SendError> {
        self.queue(stream, data, end.then_some(None))
    }

    /// End the response with trailers (after any queued body).
    pub fn send_trailers(
        &mut self,
        stream: u32,
        trailers: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<(), SendError> {
        let map = header_map(trailers)?;
        self.queue(stream, Bytes::new(), Some(Some(map)))
    }

    /// Queue `data` on `stream`'s response, then `finish`: its end, with trailers if any.
    fn queue(
        &mut self,
        stream: u32,
        data: Bytes,
        finish: Option<Option<HeaderMap>>,
    ) -> Result<(), SendError> {
        let entry = self.streams.get_mut(&stream).ok_or(SendError::Gone)?;
        if entry.finish.is_some() || entry.respond.is_some() || entry.cut {
            return Err(SendError::Gone);
        }
        let mut finish = finish;
        if !entry.bodyless {
            entry.given += data.len() as u64;
            let declared = entry.declared.unwrap_or(u64::MAX);
            if entry.given > declared {
                // As on HTTP/1.1: what went before leaves, nothing past the declared length
                // does, and the app hears why.
                entry.cut = true;
                self.unsettled = true;
                return Err(SendError::Invalid(
                    "response body longer than its content-length".to_owned(),
                ));
            }
            if finish.is_some() && entry.given < declared && entry.declared.is_some() {
                // A short body must not look complete: its bytes leave, then RST_STREAM
                // rather than END_STREAM.
                entry.cut = true;
                finish = None;
            }
        }
        if !entry.bodyless && !data.is_empty() {
            entry.queued += data.len();
            entry.queue.push_back(data);
        }
        entry.finish = finish;
        entry.notify_sent = true;
        // Handed to the engine now as far as the window allows, so that `Sent` needs no pass.
        self.push_body(stream, &mut Context::from_waker(Waker::noop()));
        self.finish_if_done(stream);
        self.unsettled = true;
        Ok(())
    }

    /// Hand queued body bytes to the engine as far as send capacity allows; true if any
    /// (or the stream's end) went.
    pub(super) fn push_body(&mut self, id: u32, cx: &mut Context<'_>) -> bool {
        let Some(entry) = self.streams.get_mut(&id) else {
            return false;
        };
        let Some(send) = entry.send.as_mut() else {
            return false;
        };
        let mut progress = false;
        while entry.queued > 0 {
            send.reserve_capacity(entry.queued);
            let capacity = send.capacity();
            if capacity == 0 {
                match send.poll_capacity(cx) {
                    Poll::Ready(Some(Ok(_))) => continue,
                    Poll::Ready(_) => {
                        entry.queue.clear();
                        entry.queued = 0;
                        break;
                    }
                    Poll::Pending => return progress,
                }
            }
            let Some(mut chunk) = entry.queue.pop_front() else {
                break;
            };
            if chunk.len() > capacity {
                entry.queue.push_front(chunk.split_off(capacity));
            }
            entry.queued -= chunk.len();
            progress = true;
            if send.send_data(chunk, false).is_err() {
                entry.queue.clear();
                entry.queued = 0;
            }
        }
        if let Some(finish) = entry.finish.take() {
            let _ = match finish {
                Some(trailers) if !entry.bodyless => send.send_trailers(trailers),
                _ => send.send_data(Bytes::new(), true),
            };
            entry.send = None;
            entry.finish = Some(None);
            progress = true;
        }
        if entry.notify_sent {
            entry.notify_sent = false;
            self.events.push(Event::Sent { stream: id });
        }
        progress
    }

    /// Forget a stream once its response ended and its request body is in; true if it
    /// was.
    pub(super) fn finish_if_done(&mut self, id: u32) -> bool {
        if let Some(entry) = self.streams.get_mut(&id) {
            if entry.notify_sent && entry.send.is_none() && entry.finish.is_some() {
                entry.notify_sent = false;
                self.events.push(Event::Sent { stream: id });
            }
            if entry.send.is_none()
                && entry.respond.is_none()
                && entry.recv.is_none()
                && entry.finish.is_some()
            {
                self.streams.remove(&id);
                return true;
            }
        }
        false
    }
}

/// Why the engine refused a response head: the stream is gone, or (an error of neither
/// the protocol nor the transport) the head itself is invalid.
fn refused_head(err: &h2::Error) -> SendError {
    if err.reason().is_some() || err.is_io() {
        SendError::Gone
    } else {
        SendError::Invalid(format!("response head refused: {err}"))
    }
}

/// Response fields as the engine wants them, minus the connection-specific ones.
fn header_map(fields: &[(Vec<u8>, Vec<u8>)]) -> Result<HeaderMap, SendError> {
    let mut map = HeaderMap::with_capacity(fields.len());
    for (name, value) in fields {
        let name = HeaderName::from_bytes(name)
            .map_err(|_| SendError::Invalid("invalid header name".to_owned()))?;
        if CONNECTION_SPECIFIC.contains(&name.as_str()) {
            continue;
        }
        if name == http::header::TE && !value.eq_ignore_ascii_case(b"trailers") {
            // RFC 9113 §8.2.2: `te` may only be `trailers`; the engine refuses the head.
            return Err(SendError::Invalid(
                "header te other than 'trailers' is not allowed in HTTP/2".to_owned(),
            ));
        }
        let value = HeaderValue::from_bytes(value)
            .map_err(|_| SendError::Invalid(format!("invalid value for header {name}")))?;
        map.append(name, value);
    }
    Ok(map)
}
