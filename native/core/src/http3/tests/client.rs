//! A minimal HTTP/3 client over a quinn-proto connection, for the tests: it opens its
//! control stream, sends requests as raw frames, and collects responses.

use std::collections::HashMap;

use bytes::BytesMut;
use quinn_proto::{Connection, ConnectionError, Dir, StreamEvent, StreamId};

use crate::http3::conn::read_into;
use crate::http3::frame::{self, Item, Reader};
use crate::http3::qpack::{self, Fields};

#[derive(Default)]
pub(super) struct Response {
    buf: BytesMut,
    reader: Reader,
    /// Interim (1xx) heads, before `head`.
    pub interim: Vec<Fields>,
    pub head: Option<Fields>,
    pub trailers: Option<Fields>,
    pub body: Vec<u8>,
    pub done: bool,
    pub reset: Option<u64>,
}

impl Response {
    pub fn status(&self) -> Option<&[u8]> {
        let head = self.head.as_ref()?;
        head.iter()
            .find(|(n, _)| n == b":status")
            .map(|(_, v)| &v[..])
    }
}

#[derive(Default)]
struct Uni {
    buf: BytesMut,
    ty: Option<u64>,
    reader: Reader,
}

pub(super) struct Client {
    pub conn: Connection,
    pub responses: HashMap<StreamId, Response>,
    /// Bytes still to write per stream, and whether to finish it after them.
    pending: HashMap<StreamId, (Vec<u8>, bool)>,
    uni: HashMap<StreamId, Uni>,
    pub server_settings: Option<Vec<(u64, u64)>>,
    pub goaway: Option<u64>,
    pub connected: bool,
    pub lost: Option<ConnectionError>,
    control_open: bool,
    /// Responses are not read while paused (their flow control window stays shut).
    pub paused: bool,
}

impl Client {
    pub fn new(conn: Connection) -> Self {
        Self {
            conn,
            responses: HashMap::new(),
            pending: HashMap::new(),
            uni: HashMap::new(),
            server_settings: None,
            goaway: None,
            connected: false,
            lost: None,
            control_open: false,
            paused: false,
        }
    }

    /// The error code of an application close received from the server, if any.
    pub fn close_code(&self) -> Option<u64> {
        match &self.lost {
            Some(ConnectionError::ApplicationClosed(close)) => Some(close.error_code.into_inner()),
            _ => None,
        }
    }

    /// Open a request stream with `raw` bytes on it (frames built by the caller).
    pub fn send_raw(&mut self, raw: Vec<u8>, fin: bool) -> StreamId {
        let id = self
            .conn
            .streams()
            .open(Dir::Bi)
            .expect("a request stream is available");
        self.responses.insert(id, Response::default());
        self.pending.insert(id, (raw, fin));
        self.flush(id);
        id
    }

    /// Add bytes to an open request stream.
    pub fn write(&mut self, id: StreamId, raw: &[u8], fin: bool) {
        let entry = self.pending.entry(id).or_default();
        entry.0.extend_from_slice(raw);
        entry.1 = fin;
        self.flush(id);
    }

    /// A request: HEADERS from `fields`, then `body` in DATA frames of 16 KiB.
    pub fn request(&mut self, fields: &[(&str, &str)], body: &[u8], fin: bool) -> StreamId {
        let mut raw = headers_frame(fields);
        raw.extend(data_frames(body));
        self.send_raw(raw, fin)
    }

    /// Open a unidirectional stream with `raw` bytes (its type first).
    pub fn send_uni(&mut self, raw: Vec<u8>) -> StreamId {
        let id = self
            .conn
            .streams()
            .open(Dir::Uni)
            .expect("a uni stream is available");
        self.pending.insert(id, (raw, false));
        self.flush(id);
        id
    }

    fn flush(&mut self, id: StreamId) {
        let Some((raw, fin)) = self.pending.get_mut(&id) else {
            return;
        };
        let mut send = self.conn.send_stream(id);
        while !raw.is_empty() {
            match send.write(raw) {
                Ok(n) => {
                    raw.drain(..n);
                }
                Err(_) => break,
            }
        }
        if raw.is_empty() && *fin {
            let _ = send.finish();
            self.pending.remove(&id);
        }
    }

    /// React to the connection's events; whether there were any.
    pub fn poll(&mut self) -> bool {
        let mut moved = false;
        while let Some(event) = self.conn.poll() {
            moved = true;
            match event {
                quinn_proto::Event::Connected => {
                    self.connected = true;
                    if !self.control_open {
                        self.control_open = true;
                        let mut raw = vec![0x00];
                        raw.extend(frame::settings(&[(
                            frame::SETTINGS_MAX_FIELD_SECTION_SIZE,
                            1 << 16,
                        )]));
                        self.send_uni(raw);
                    }
                }
                quinn_proto::Event::ConnectionLost { reason } => self.lost = Some(reason),
                quinn_proto::Event::Stream(StreamEvent::Opened { .. }) => {
                    while let Some(id) = self.conn.streams().accept(Dir::Uni) {
                        self.uni.insert(id, Uni::default());
                        self.read_uni(id);
                    }
                }
                quinn_proto::Event::Stream(StreamEvent::Readable { id }) => {
                    if self.uni.contains_key(&id) {
                        self.read_uni(id);
                    } else if !self.paused {
                        self.read_response(id);
                    }
                }
                quinn_proto::Event::Stream(StreamEvent::Writable { id }) => self.flush(id),
                quinn_proto::Event::Stream(StreamEvent::Stopped { id, error_code }) => {
                    if let Some(r) = self.responses.get_mut(&id) {
                        r.reset = Some(error_code.into_inner());
                    }
                }
                _ => {}
            }
        }
        moved
    }

    /// Read responses again, including what arrived while paused.
    pub fn resume(&mut self) {
        self.paused = false;
        let ids: Vec<StreamId> = self.responses.keys().copied().collect();
        for id in ids {
            self.read_response(id);
        }
    }

    fn read_all(&mut self, id: StreamId) -> (BytesMut, bool, Option<u64>) {
        let mut out = BytesMut::new();
        let end = read_into(&mut self.conn, id, &mut out, usize::MAX);
        (out, end.fin, end.reset)
    }

    fn read_response(&mut self, id: StreamId) {
        let (bytes, fin, reset) = self.read_all(id);
        let Some(r) = self.responses.get_mut(&id) else {
            return;
        };
        r.buf.extend_from_slice(&bytes);
        while let Some(item) = r
            .reader
            .next(&mut r.buf, 1 << 20)
            .expect("valid response frames")
        {
            match item {
                Item::Data(data) => {
                    assert!(r.head.is_some(), "DATA before HEADERS");
                    r.body.extend_from_slice(&data);
                }
                Item::Frame {
                    ty: frame::HEADERS,
                    payload,
                } => {
                    let fields = qpack::decode(&payload, 1 << 20).expect("valid field section");
                    let interim = fields
                        .iter()
                        .any(|(n, v)| n == b":status" && v.starts_with(b"1"));
                    if r.head.is_none() && interim {
                        r.interim.push(fields);
                    } else if r.head.is_none() {
                        r.head = Some(fields);
                    } else {
                        r.trailers = Some(fields);
                    }
                }
                Item::Frame { ty, .. } => panic!("unexpected frame {ty:#x} on a response"),
            }
        }
        if fin {
            assert!(
                r.buf.is_empty() && r.reader.at_boundary(),
                "truncated response"
            );
            r.done = true;
        }
        if reset.is_some() {
            r.reset = reset;
        }
    }

    fn read_uni(&mut self, id: StreamId) {
        let (bytes, _, _) = self.read_all(id);
        let Some(uni) = self.uni.get_mut(&id) else {
            return;
        };
        uni.buf.extend_from_slice(&bytes);
        if uni.ty.is_none() {
            let mut input = &uni.buf[..];
            let Some(ty) = frame::take_varint(&mut input) else {
                return;
            };
            let used = uni.buf.len() - input.len();
            let _ = uni.buf.split_to(used);
            uni.ty = Some(ty);
        }
        if uni.ty != Some(0) {
            uni.buf.clear();
            return;
        }
        while let Some(item) = uni
            .reader
            .next(&mut uni.buf, 1 << 16)
            .expect("valid control frames")
        {
            match item {
                Item::Frame {
                    ty: frame::SETTINGS,
                    payload,
                } => {
                    self.server_settings = Some(frame::parse_settings(&payload).expect("settings"));
                }
                Item::Frame {
                    ty: frame::GOAWAY,
                    payload,
                } => {
                    self.goaway = Some(frame::parse_single_varint(&payload).expect("goaway"));
                }
                other => panic!("unexpected control frame {other:?}"),
            }
        }
    }
}

pub(super) fn headers_frame(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut section = Vec::new();
    qpack::encode(
        fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
        &mut section,
    );
    frame::frame(frame::HEADERS, &section)
}

pub(super) fn data_frames(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 1000 + 8);
    for chunk in body.chunks(16 * 1024) {
        out.extend(frame::frame(frame::DATA, chunk));
    }
    out
}

/// The pseudo-headers of a request to `path`.
pub(super) fn request_fields<'a>(method: &'a str, path: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        (":method", method),
        (":scheme", "https"),
        (":authority", "localhost"),
        (":path", path),
    ]
}
