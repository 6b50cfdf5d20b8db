//! One WebSocket connection after the `101`: bytes in, app messages out, and the
//! server's side of pings and the closing handshake. No Python and no socket here, so
//! every rule is tested with plain bytes.
//!
//! The protocol feeds what the socket delivered to [`Session::feed`], hands the app
//! [`Session::pop`]'s messages, writes what each call appended to `out`, and closes the
//! transport when a call says so.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::ws::close_code;
use crate::ws::deflate::DeflateParams;
use crate::ws::frame::{encode_close, encode_ping, encode_pong};
use crate::ws::message::{Event, Message, MessageEncoder, WsReader};
use crate::ws::WsError;

/// How long a close frame we sent may wait for the peer's answer when pings are off.
const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// The worker's WebSocket settings (`--ws-*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsSettings {
    /// Largest message (and frame), after decompression.
    pub max_size: usize,
    /// Unread messages held for the app before reading from the socket pauses.
    pub max_queue: usize,
    /// Time between server pings; `None` sends none.
    pub ping_interval: Option<Duration>,
    /// How long a ping may wait for its pong; `None` waits forever.
    pub ping_timeout: Option<Duration>,
    /// Whether permessage-deflate is negotiated.
    pub per_message_deflate: bool,
}

#[cfg(test)]
impl Default for WsSettings {
    fn default() -> Self {
        Self {
            max_size: 16 * 1024 * 1024,
            max_queue: 32,
            ping_interval: Some(Duration::from_secs(20)),
            ping_timeout: Some(Duration::from_secs(20)),
            per_message_deflate: true,
        }
    }
}

impl WsSettings {
    /// How long a close frame we sent waits for the peer's before the connection is cut.
    pub fn close_timeout(&self) -> Duration {
        self.ping_timeout.unwrap_or(DEFAULT_CLOSE_TIMEOUT)
    }
}

/// What the app's `receive()` gets next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Text(String),
    Bytes(Vec<u8>),
    /// The connection is over: `websocket.disconnect` with this code and reason.
    Disconnect {
        code: u16,
        reason: String,
    },
}

/// Where the closing handshake stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseState {
    /// Messages flow both ways.
    Open,
    /// We sent a close frame at `at` and wait for the peer's; `by_app` when the app asked.
    Sent { at: Instant, by_app: bool },
    /// The connection is finished (closing handshake done, failed, or the socket is gone).
    Done { by_app: bool },
}

/// Why `send` refused a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The app itself sent `websocket.close` before.
    ClosedByApp,
    /// The peer closed, the connection failed or the server is closing it.
    Disconnected,
    /// The encoder failed (compression error).
    Failed(WsError),
}

/// What a call decided about the socket beyond the bytes it appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[must_use]
pub struct Step {
    /// Close the transport (after writing what was appended).
    pub close_transport: bool,
}

/// A server ping still waiting for its pong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ping {
    payload: [u8; 4],
    sent: Instant,
}

/// Per-connection WebSocket state after the handshake.
#[derive(Debug)]
pub struct Session {
    settings: WsSettings,
    reader: WsReader,
    encoder: MessageEncoder,
    queue: VecDeque<Incoming>,
    /// A `Disconnect` is in `queue` (or was already taken): no second one is added.
    disconnect_queued: bool,
    /// That `Disconnect`, which every later `pop` returns again.
    ended: Option<Incoming>,
    close: CloseState,
    ping: Option<Ping>,
    next_ping: Option<Instant>,
    pings_sent: u32,
    /// The peer is not reading what is written (`hold_replies`): pings are answered when
    /// it catches up, and only the latest of them (RFC 6455 5.5.3).
    replies_held: bool,
    owed_pong: Option<Vec<u8>>,
}

impl Session {
    /// A session that starts now, with the agreed permessage-deflate parameters if any.
    pub fn new(settings: WsSettings, deflate: Option<&DeflateParams>, now: Instant) -> Self {
        Self {
            settings,
            reader: WsReader::new(settings.max_size, deflate),
            encoder: MessageEncoder::new(deflate),
            queue: VecDeque::new(),
            disconnect_queued: false,
            ended: None,
            close: CloseState::Open,
            ping: None,
            next_ping: settings.ping_interval.map(|every| now + every),
            pings_sent: 0,
            replies_held: false,
            owed_pong: None,
        }
    }

    /// Whether what is written waits for the peer to read (`held`): then a ping's pong
    /// is owed instead of written, the latest ping's only, so a peer that pings and never
    /// reads cannot pile up pongs. Once it reads again the owed pong goes to `out`.
    pub fn hold_replies(&mut self, held: bool, out: &mut Vec<u8>) {
        self.replies_held = held;
        if held {
            return;
        }
        if let Some(payload) = self.owed_pong.take() {
            if self.is_open() {
                encode_pong(out, &payload);
            }
        }
    }

    pub fn is_open(&self) -> bool {
        self.close == CloseState::Open
    }

    /// Whether data messages are compressed (permessage-deflate was agreed).
    #[cfg(test)]
    pub fn compresses(&self) -> bool {
        self.encoder.compresses()
    }

    /// Messages waiting for the app.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Reading should pause: the app has `--ws-max-queue` messages it has not read.
    /// Only while open: once closing, input is read (to find the peer's close) and data
    /// is dropped, so a full queue must not hold the close handshake up.
    pub fn wants_read_pause(&self) -> bool {
        self.is_open() && self.queue.len() >= self.settings.max_queue
    }

    /// Bytes from the socket; replies (pongs, the close answer) are appended to `out`.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) -> Step {
        if matches!(self.close, CloseState::Done { .. }) {
            return Step::default();
        }
        self.reader.feed(data);
        self.process(out)
    }

    /// Turns buffered bytes into queued messages until the queue is full: what stays in
    /// the reader waits for the app to catch up.
    pub fn process(&mut self, out: &mut Vec<u8>) -> Step {
        loop {
            if matches!(self.close, CloseState::Done { .. }) {
                return Step::default();
            }
            if self.is_open() && self.queue.len() >= self.settings.max_queue {
                return Step::default();
            }
            match self.reader.next_event() {
                Ok(None) => return Step::default(),
                Ok(Some(event)) => {
                    let step = self.on_event(event, out);
                    if step.close_transport {
                        return step;
                    }
                }
                Err(error) => return self.fail(error, out),
            }
        }
    }

    fn on_event(&mut self, event: Event, out: &mut Vec<u8>) -> Step {
        match event {
            Event::Message(message) => {
                // After our close frame, data is read and dropped (RFC 6455 1.4).
                if self.is_open() {
                    self.queue.push_back(match message {
                        Message::Text(text) => Incoming::Text(text),
                        Message::Binary(data) => Incoming::Bytes(data),
                    });
                }
            }
            Event::Ping(payload) => {
                if self.is_open() {
                    if self.replies_held {
                        self.owed_pong = Some(payload);
                    } else {
                        encode_pong(out, &payload);
                    }
                }
            }
            Event::Pong(payload) => {
                if self
                    .ping
                    .is_some_and(|ping| ping.payload[..] == payload[..])
                {
                    self.ping = None;
                }
            }
            Event::Close(reason) => {
                let by_app = match self.close {
                    CloseState::Open => {
                        // Echo the peer's code (an empty close for "no status").
                        encode_close(out, reason.code, "");
                        false
                    }
                    CloseState::Sent { by_app, .. } => by_app,
                    CloseState::Done { .. } => return Step::default(),
                };
                self.close = CloseState::Done { by_app };
                self.push_disconnect(reason.code, reason.reason);
                return Step {
                    close_transport: true,
                };
            }
        }
        Step::default()
    }

    /// The peer broke the protocol: say why with a close frame and drop the connection.
    fn fail(&mut self, error: WsError, out: &mut Vec<u8>) -> Step {
        let by_app = match self.close {
            CloseState::Open => {
                encode_close(out, error.code, error.reason);
                false
            }
            CloseState::Sent { by_app, .. } => by_app,
            CloseState::Done { .. } => return Step::default(),
        };
        self.close = CloseState::Done { by_app };
        self.push_disconnect(error.code, error.reason.to_owned());
        Step {
            close_transport: true,
        }
    }

    fn push_disconnect(&mut self, code: u16, reason: String) {
        if !self.disconnect_queued {
            self.disconnect_queued = true;
            let message = Incoming::Disconnect { code, reason };
            self.ended = Some(message.clone());
            self.queue.push_back(message);
        }
    }

    /// The next message for the app, if one is ready; once the connection is over and
    /// the queue is empty, its `Disconnect` again.
    pub fn pop(&mut self) -> Option<Incoming> {
        self.queue.pop_front().or_else(|| self.ended.clone())
    }

    /// `websocket.send` with text.
    pub fn send_text(&mut self, text: &str, out: &mut Vec<u8>) -> Result<(), SendError> {
        self.check_send()?;
        self.encoder.text(out, text).map_err(SendError::Failed)
    }

    /// `websocket.send` with bytes.
    pub fn send_bytes(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), SendError> {
        self.check_send()?;
        self.encoder.binary(out, data).map_err(SendError::Failed)
    }

    fn check_send(&self) -> Result<(), SendError> {
        match self.close {
            CloseState::Open => Ok(()),
            CloseState::Sent { by_app: true, .. } | CloseState::Done { by_app: true } => {
                Err(SendError::ClosedByApp)
            }
            CloseState::Sent { .. } | CloseState::Done { .. } => Err(SendError::Disconnected),
        }
    }

    /// `websocket.close` from the app: start the closing handshake. A connection already
    /// closing or closed is left as it is.
    pub fn close_by_app(
        &mut self,
        code: u16,
        reason: &str,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Result<(), SendError> {
        match self.close {
            CloseState::Open => {
                encode_close(out, code, reason);
                self.close = CloseState::Sent {
                    at: now,
                    by_app: true,
                };
                Ok(())
            }
            CloseState::Sent { by_app: true, .. } | CloseState::Done { by_app: true } => {
                Err(SendError::ClosedByApp)
            }
            CloseState::Sent { .. } | CloseState::Done { .. } => Ok(()),
        }
    }

    /// The server closes (graceful shutdown: 1012): the app is told at once with a
    /// `Disconnect` carrying `code`, then the close frame goes out.
    pub fn close_by_server(&mut self, code: u16, reason: &str, now: Instant, out: &mut Vec<u8>) {
        if self.close != CloseState::Open {
            return;
        }
        self.push_disconnect(code, reason.to_owned());
        encode_close(out, code, reason);
        self.close = CloseState::Sent {
            at: now,
            by_app: false,
        };
    }

    /// Pings, the pong deadline and the close deadline; called about once a second.
    pub fn tick(&mut self, now: Instant, out: &mut Vec<u8>) -> Step {
        match self.close {
            CloseState::Done { .. } => Step::default(),
            CloseState::Sent { at, .. } => {
                if now.saturating_duration_since(at) < self.settings.close_timeout() {
                    return Step::default();
                }
                self.connection_lost();
                Step {
                    close_transport: true,
                }
            }
            CloseState::Open => {
                if let (Some(ping), Some(timeout)) = (self.ping, self.settings.ping_timeout) {
                    if now.saturating_duration_since(ping.sent) >= timeout {
                        let error = WsError {
                            code: close_code::INTERNAL_ERROR,
                            reason: "keepalive ping timeout",
                        };
                        return self.fail(error, out);
                    }
                }
                if let (None, Some(at), Some(every)) =
                    (self.ping, self.next_ping, self.settings.ping_interval)
                {
                    if now >= at {
                        self.pings_sent = self.pings_sent.wrapping_add(1);
                        let payload = self.pings_sent.to_be_bytes();
                        encode_ping(out, &payload);
                        self.ping = Some(Ping { payload, sent: now });
                        self.next_ping = Some(now + every);
                    }
                }
                Step::default()
            }
        }
    }

    /// The socket is gone: the app sees 1006 unless it was already told how it ended.
    pub fn connection_lost(&mut self) {
        let by_app = match self.close {
            CloseState::Open => false,
            CloseState::Sent { by_app, .. } | CloseState::Done { by_app } => by_app,
        };
        self.close = CloseState::Done { by_app };
        self.push_disconnect(close_code::ABNORMAL_CLOSURE, String::new());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::frame::{encode_client_frame, Frame, FrameDecoder, OpCode};

    const KEY: [u8; 4] = [1, 2, 3, 4];

    fn settings() -> WsSettings {
        WsSettings {
            max_size: 1024,
            max_queue: 4,
            ping_interval: Some(Duration::from_secs(20)),
            ping_timeout: Some(Duration::from_secs(20)),
            per_message_deflate: false,
        }
    }

    fn client(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_client_frame(&mut out, opcode, payload, true, false, KEY);
        out
    }

    fn frames(bytes: &[u8]) -> Vec<Frame> {
        let mut decoder = FrameDecoder::for_server_frames(1 << 20, true);
        decoder.feed(bytes);
        let mut frames = Vec::new();
        while let Ok(Some(frame)) = decoder.next_frame() {
            frames.push(frame);
        }
        frames
    }

    fn close_code_of(frame: &Frame) -> u16 {
        assert_eq!(frame.opcode, OpCode::Close);
        match frame.payload[..] {
            [hi, lo, ..] => u16::from_be_bytes([hi, lo]),
            _ => close_code::NO_STATUS_RCVD,
        }
    }

    #[test]
    fn messages_are_queued_in_order() {
        let now = Instant::now();
        let mut s = Session::new(settings(), None, now);
        let mut out = Vec::new();
        let mut input = client(OpCode::Text, b"hello");
        input.extend(client(OpCode::Binary, b"\x00\x01"));
        assert_eq!(s.feed(&input, &mut out), Step::default());
        assert!(out.is_empty());
        assert_eq!(s.pop(), Some(Incoming::Text("hello".into())));
        assert_eq!(s.pop(), Some(Incoming::Bytes(vec![0, 1])));
        assert_eq!(s.pop(), None);
    }

    #[test]
    fn each_ping_is_answered_while_the_peer_reads() {
        let mut s = Session::new(settings(), None, Instant::now());
        let mut out = Vec::new();
        let mut input = client(OpCode::Ping, b"one");
        input.extend(client(OpCode::Ping, b"two"));
        assert_eq!(s.feed(&input, &mut out), Step::default());
        let pongs: Vec<_> = frames(&out)
            .into_iter()
            .map(|f| (f.opcode, f.payload))
            .collect();
        assert_eq!(
            pongs,
            [
                (OpCode::Pong, b"one".to_vec()),
                (OpCode::Pong, b"two".to_vec())
            ]
        );
    }

    #[test]
    fn held_replies_owe_one_pong_for_the_latest_ping() {
        let mut s = Session::new(settings(), None, Instant::now());
        let mut out = Vec::new();
        s.hold_replies(true, &mut out);
        for n in 0..1000u32 {
            let step = s.feed(&client(OpCode::Ping, &n.to_be_bytes()), &mut out);
            assert_eq!(step, Step::default());
        }
        assert!(
            out.is_empty(),
            "no pong written while the peer does not read"
        );
        s.hold_replies(false, &mut out);
        let pongs: Vec<_> = frames(&out)
            .into_iter()
            .map(|f| (f.opcode, f.payload))
            .collect();
        assert_eq!(pongs, [(OpCode::Pong, 999u32.to_be_bytes().to_vec())]);
        out.clear();
        s.hold_replies(false, &mut out);
        assert!(out.is_empty(), "the owed pong goes out once");
    }

    #[test]
    fn split_at_every_byte() {
        let now = Instant::now();
        let mut input = client(OpCode::Text, "héllo wörld".as_bytes());
        input.extend(client(OpCode::Ping, b"p"));
        for cut in 0..=input.len() {
            let mut s = Session::new(settings(), None, now);
            let mut out = Vec::new();
            let _ = s.feed(&input[..cut], &mut out);
            let _ = s.feed(&input[cut..], &mut out);
            assert_eq!(s.pop(), Some(Incoming::Text("héllo wörld".into())), "{cut}");
            let replies = frames(&out);
            assert_eq!(replies.len(), 1);
            assert_eq!(replies[0].opcode, OpCode::Pong);
            assert_eq!(replies[0].payload, b"p");
        }
    }

    #[test]
    fn full_queue_stops_reading_until_popped() {
        let now = Instant::now();
        let mut s = Session::new(settings(), None, now);
        let mut out = Vec::new();
        let input: Vec<u8> = (0..6u8)
            .flat_map(|i| client(OpCode::Binary, &[i]))
            .collect();
        let _ = s.feed(&input, &mut out);
        assert_eq!(s.queued(), 4);
        assert!(s.wants_read_pause());
        assert_eq!(s.pop(), Some(Incoming::Bytes(vec![0])));
        assert!(!s.wants_read_pause());
        let _ = s.process(&mut out);
        assert_eq!(s.queued(), 4);
        let got: Vec<_> = std::iter::from_fn(|| s.pop()).collect();
        assert_eq!(got.len(), 4);
        let _ = s.process(&mut out);
        assert_eq!(s.pop(), Some(Incoming::Bytes(vec![5])));
    }

    #[test]
    fn client_close_is_echoed_and_reported() {
        let now = Instant::now();
        let mut s = Session::new(settings(), None, now);
        let mut out = Vec::new();
        let mut payload = 4001u16.to_be_bytes().to_vec();
        payload.extend_from_slice(b"bye");
        let step = s.feed(&client(OpCode::Close, &payload), &mut out);
        assert!(step.close_transport);
        let replies = frames(&out);
        assert_eq!(close_code_of(&replies[0]), 4001);
        assert_eq!(
            s.pop(),
            Some(Incoming::Disconnect {
                code: 4001,
                reason: "bye".into()
            })
        );
        assert_eq!(s.send_text("late", &mut out), Err(SendError::Disconnected));
        s.connection_lost();
        assert!(
            matches!(s.pop(), Some(Incoming::Disconnect { code: 4001, .. })),
            "the first disconnect stays"
        );
    }

    #[test]
    fn empty_close_is_answered_empty_and_reported_as_1005() {
        let now = Instant::now();
        let mut s = Session::new(settings(), None, now);
        let mut out = Vec::new();
        let step = s.feed(&client(OpCode::Close, b""), &mut out);
        assert!(step.close_transport);
        assert_eq!(frames(&out)[0].payload, b"");
        assert_eq!(
            s.pop(),
            Some(Incoming::Disconnect {
                code: 1005,
                reason: String::new()
            })
        );
    }

    #[test]
    fn protocol_errors_close_with_their_code() {
        let now = Instant::now();
        let cases: Vec<(Vec<u8>, u16)> = vec![
            // Unmasked text frame.
            (vec![0x81, 0x02, b'h', b'i'], 1002),
            // RSV2 set.
            (vec![0xA1, 0x80, 0, 0, 0, 0], 1002),
            // Opcode 3.
            (vec![0x83, 0x80, 0, 0, 0, 0], 1002),
            // Continuation without a message.
            (client(OpCode::Continuation, b"x"), 1002),
            // Invalid UTF-8.
            (client(OpCode::Text, b"\xff\xfe"), 1007),
            // Too big for max_size.
            (client(OpCode::Binary, &[0; 2000]), 1009),
        ];
        for (input, code) in cases {
            let mut s = Session::new(settings(), None, now);
            let mut out = Vec::new();
            let step = s.feed(&input, &mut out);
            assert!(step.close_transport, "{input:?}");
            assert_eq!(close_code_of(&frames(&out)[0]), code, "{input:?}");
            assert!(matches!(s.pop(), Some(Incoming::Disconnect { code: c, .. }) if c == code));
            // Nothing more is read.
            assert_eq!(
                s.feed(&client(OpCode::Text, b"x"), &mut out),
                Step::default()
            );
            assert!(matches!(s.pop(), Some(Incoming::Disconnect { code: c, .. }) if c == code));
        }
    }

    #[test]
    fn app_close_waits_for_the_answer() {
        let now = Instant::now();
        let mut s = Session::new(settings(), None, now);
        let mut out = Vec::new();
        s.close_by_app(1000, "done", now, &mut out).expect("open");
        assert_eq!(close_code_of(&frames(&out)[0]), 1000);
        assert_eq!(s.send_text("x", &mut out), Err(SendError::ClosedByApp));
        assert_eq!(
            s.close_by_app(1000, "", now, &mut out),
            Err(SendError::ClosedByApp)
        );
        // Data after our close is dropped; the answer ends the connection.
        out.clear();
        let mut input = client(OpCode::Text, b"ignored");
        input.extend(client(OpCode::Close, &1000u16.to_be_bytes()));
        let step = s.feed(&input, &mut out);
        assert!(step.close_transport);
        assert!(out.is_empty(), "no second close frame");
        assert!(matches!(
            s.pop(),
            Some(Incoming::Disconnect { code: 1000, .. })
        ));
    }

    #[test]
    fn unanswered_close_times_out() {
        let now = Instant::now();
        let mut s = Session::new(settings(), None, now);
        let mut out = Vec::new();
        s.close_by_app(1000, "", now, &mut out).expect("open");
        assert_eq!(
            s.tick(now + Duration::from_secs(5), &mut out),
            Step::default()
        );
        let step = s.tick(now + Duration::from_secs(21), &mut out);
        assert!(step.close_transport);
        assert!(matches!(
            s.pop(),
            Some(Incoming::Disconnect { code: 1006, .. })
        ));
    }

    #[test]
    fn server_close_tells_the_app_first() {
        let now = Instant::now();
        let mut s = Session::new(settings(), None, now);
        let mut out = Vec::new();
        let _ = s.feed(&client(OpCode::Text, b"unread"), &mut out);
        s.close_by_server(1012, "service restart", now, &mut out);
        assert_eq!(close_code_of(&frames(&out)[0]), 1012);
        assert_eq!(s.pop(), Some(Incoming::Text("unread".into())));
        assert!(matches!(
            s.pop(),
            Some(Incoming::Disconnect { code: 1012, .. })
        ));
        assert_eq!(s.send_text("x", &mut out), Err(SendError::Disconnected));
        // The client's answer ends it without a second disconnect.
        let step = s.feed(&client(OpCode::Close, &1012u16.to_be_bytes()), &mut out);
        assert!(step.close_transport);
        assert_eq!(s.queued(), 0);
    }

    #[test]
    fn pings_and_pong_deadline() {
        let now = Instant::now();
        let mut s = Session::new(settings(), None, now);
        let mut out = Vec::new();
        assert_eq!(
            s.tick(now + Duration::from_secs(19), &mut out),
            Step::default()
        );
        assert!(out.is_empty());
        let t1 = now + Duration::from_secs(20);
        assert_eq!(s.tick(t1, &mut out), Step::default());
        let ping = frames(&out).remove(0);
        assert_eq!(ping.opcode, OpCode::Ping);
        // The pong answers it; the next ping comes an interval later.
        out.clear();
        let _ = s.feed(&client(OpCode::Pong, &ping.payload), &mut out);
        let t2 = t1 + Duration::from_secs(20);
        assert_eq!(s.tick(t2, &mut out), Step::default());
        assert_eq!(frames(&out)[0].opcode, OpCode::Ping);
        // A wrong pong does not count; the timeout closes with 1011.
        out.clear();
        let _ = s.feed(&client(OpCode::Pong, b"nope"), &mut out);
        let step = s.tick(t2 + Duration::from_secs(20), &mut out);
        assert!(step.close_transport);
        assert_eq!(close_code_of(&frames(&out)[0]), 1011);
        assert!(matches!(
            s.pop(),
            Some(Incoming::Disconnect { code: 1011, .. })
        ));
    }

    #[test]
    fn pings_off() {
        let now = Instant::now();
        let mut s = Session::new(
            WsSettings {
                ping_interval: None,
                ..settings()
            },
            None,
            now,
        );
        let mut out = Vec::new();
        let _ = s.tick(now + Duration::from_secs(1000), &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn compressed_round_trip() {
        let now = Instant::now();
        let params = DeflateParams::default();
        let mut s = Session::new(settings(), Some(&params), now);
        assert!(s.compresses());
        let mut out = Vec::new();
        let text = "abc".repeat(100);
        s.send_text(&text, &mut out).expect("open");
        assert!(out.len() < text.len());
        let mut reader =
            crate::ws::message::MessageAssembler::for_server_messages(1 << 20, Some(&params));
        let frame = frames(&out).remove(0);
        assert!(frame.rsv1);
        assert_eq!(
            reader.push(frame),
            Ok(Some(Event::Message(Message::Text(text))))
        );
    }

    #[test]
    fn lost_connection_reports_1006_once() {
        let now = Instant::now();
        let mut s = Session::new(settings(), None, now);
        s.connection_lost();
        s.connection_lost();
        assert!(matches!(
            s.pop(),
            Some(Incoming::Disconnect { code: 1006, .. })
        ));
        assert_eq!(s.queued(), 0);
        let mut out = Vec::new();
        assert_eq!(s.send_bytes(b"x", &mut out), Err(SendError::Disconnected));
    }
}
