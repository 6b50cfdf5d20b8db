//! HTTP/3: one QUIC endpoint per UDP socket ([`QuicEndpoint`], the binding an asyncio
//! `DatagramProtocol` drives), and each QUIC connection one [`HttpProtocol`] whose `Conn`
//! runs the HTTP/2 mode's stream mapping (`http2.rs`) over an [`H3Link`]. So an
//! HTTP/3 request stream is the same `RequestCycle` in the same asyncio Task, with the same
//! backpressure (`send()` waits for `Sent`), disconnects, access records, drain and
//! force-close as an HTTP/2 stream; only the engine beneath differs.
//!
//! The endpoint takes every datagram, hands the connections' events to their protocols,
//! sends what the engine has to send through the socket's transport, and keeps one
//! `loop.call_at` handle armed at the engine's earliest deadline.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};

use super::stream_engine::StreamEngine;
use super::HttpProtocol;
use crate::key;
use crate::metrics;
use crate::server::ServerState;
use ruvicorn_core::http2::{self, Bytes, SendError};
use ruvicorn_core::http3::ids::IdMap;
use ruvicorn_core::http3::{
    self, codes, forward, Endpoint, Event, NewConnections, Transmit, Verdict,
};

/// Rounds of send-and-dispatch one pump runs before it leaves the rest to the timer.
const MAX_PUMP_ROUNDS: usize = 256;

/// Take a lock; a panic elsewhere never leaves the endpoint unusable.
fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One QUIC connection of a shared endpoint.
pub(super) struct H3Link {
    core: Arc<Mutex<Core>>,
    conn: u64,
}

/// What the endpoint and its connections' modes share.
struct Core {
    endpoint: Endpoint,
    /// Events for each connection's mode, until it takes them.
    inboxes: IdMap<Vec<http2::Event>>,
    /// A send operation ran since the last flush.
    dirty: bool,
    /// The datagrams of one pump round, back to back, and each one's destination: kept
    /// between rounds so sending allocates nothing in Rust.
    out: Vec<u8>,
    transmits: Vec<Transmit>,
}

fn send_error(err: http3::SendError) -> SendError {
    match err {
        http3::SendError::Gone => SendError::Gone,
        http3::SendError::Invalid(message) => SendError::Invalid(message),
    }
}

/// An HTTP/2 error code as HTTP/3's: NO_ERROR stays NO_ERROR, CANCEL (a request body
/// timed out mid-response) is H3_REQUEST_CANCELLED, anything else is ours.
fn h3_code(code: u32) -> u64 {
    match code {
        0 => codes::NO_ERROR,
        super::http2::CANCEL => codes::REQUEST_CANCELLED,
        _ => codes::INTERNAL_ERROR,
    }
}

impl H3Link {
    fn run<T>(&self, f: impl FnOnce(&mut Endpoint, Instant, u64) -> T) -> T {
        let mut core = locked(&self.core);
        core.dirty = true;
        f(&mut core.endpoint, Instant::now(), self.conn)
    }
}

impl StreamEngine for H3Link {
    fn metrics_protocol(&self) -> usize {
        metrics::H3
    }

    fn take_events(&mut self) -> Vec<http2::Event> {
        locked(&self.core)
            .inboxes
            .remove(&self.conn)
            .unwrap_or_default()
    }

    fn tls_info(&self) -> Option<ruvicorn_core::tls::info::ConnectionInfo> {
        locked(&self.core).endpoint.tls_info(self.conn)
    }

    /// The endpoint has datagrams to send since a send operation ran.
    fn output_due(&mut self) -> bool {
        locked(&self.core).dirty
    }

    fn release(&mut self, stream: u32, len: usize) {
        self.run(|e, now, conn| {
            e.release(now, conn, u64::from(stream), len as u64);
        });
    }

    fn send_response(
        &mut self,
        stream: u32,
        status: u16,
        headers: &[(Vec<u8>, Vec<u8>)],
        end: bool,
    ) -> Result<(), SendError> {
        self.run(|e, now, conn| {
            e.send_response(now, conn, u64::from(stream), status, headers, end)
                .map_err(send_error)
        })
    }

    fn send_continue(&mut self, stream: u32) -> Result<(), SendError> {
        self.run(|e, now, conn| {
            e.send_continue(now, conn, u64::from(stream))
                .map_err(send_error)
        })
    }

    fn send_data(&mut self, stream: u32, data: Bytes, end: bool) -> Result<(), SendError> {
        self.run(|e, now, conn| {
            e.send_data(now, conn, u64::from(stream), data, end)
                .map_err(send_error)
        })
    }

    fn send_trailers(
        &mut self,
        stream: u32,
        trailers: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<(), SendError> {
        self.run(|e, now, conn| {
            e.send_trailers(now, conn, u64::from(stream), trailers)
                .map_err(send_error)
        })
    }

    fn reset(&mut self, stream: u32, code: u32) {
        self.run(|e, now, conn| {
            e.reset(now, conn, u64::from(stream), h3_code(code));
        });
    }

    fn forget(&mut self, stream: u32) {
        self.run(|e, now, conn| e.forget(now, conn, u64::from(stream)));
    }

    fn graceful_shutdown(&mut self) {
        self.run(|e, now, conn| e.goaway_one(now, conn));
    }

    fn abort(&mut self, code: u32) {
        self.run(|e, now, conn| e.close(now, conn, h3_code(code)));
    }
}

/// A connection's event as the stream mode reads it, or None when it is the endpoint's
/// business (a new connection) or a stream id the mode cannot name.
fn mode_event(event: Event) -> Option<(u64, http2::Event)> {
    let id = |stream: u64| u32::try_from(stream).ok();
    Some(match event {
        Event::Connected { .. } | Event::Migrated { .. } => return None,
        Event::Request { conn, stream, head } => (
            conn,
            http2::Event::Request {
                stream: id(stream)?,
                head,
            },
        ),
        Event::Data { conn, stream, data } => (
            conn,
            http2::Event::Data {
                stream: id(stream)?,
                data,
            },
        ),
        Event::End { conn, stream } => (
            conn,
            http2::Event::End {
                stream: id(stream)?,
            },
        ),
        Event::Reset { conn, stream, code } => (
            conn,
            http2::Event::Reset {
                stream: id(stream)?,
                code: u32::try_from(code).unwrap_or(u32::MAX),
            },
        ),
        Event::Sent { conn, stream } => (
            conn,
            http2::Event::Sent {
                stream: id(stream)?,
            },
        ),
        Event::Closed { conn, error } => (conn, http2::Event::Closed { error }),
    })
}

/// A connection's client address, and the same as a Python `(host, port)`: the scope's
/// client, and where `sendto` sends its datagrams, made again only when the address changes.
struct Peer {
    addr: SocketAddr,
    tuple: Py<PyTuple>,
}

impl Peer {
    fn new(py: Python<'_>, addr: SocketAddr) -> PyResult<Self> {
        Ok(Self {
            addr,
            tuple: peer_tuple(py, addr)?,
        })
    }
}

/// A QUIC connection's protocol and its client's address.
struct ConnEntry {
    protocol: Py<HttpProtocol>,
    peer: Peer,
}

/// The asyncio-facing side of one UDP socket's QUIC endpoint; see the module documentation.
#[pyclass(frozen, module = "ruvicorn._native")]
pub struct QuicEndpoint {
    server: Py<ServerState>,
    core: Arc<Mutex<Core>>,
    event_loop: Py<PyAny>,
    /// The datagram transport's `sendto`, from connection_made to connection_lost.
    sendto: Mutex<Option<Py<PyAny>>>,
    sockname: Mutex<Option<Py<PyAny>>>,
    conns: Mutex<IdMap<ConnEntry>>,
    /// Requests a connection may run at once (the engine's stream limit).
    max_streams: u32,
    /// The one timer: when it fires, and its handle.
    timer: Mutex<Option<(Instant, Py<PyAny>)>>,
    /// A pump is running: a nested one (an app sending from inside a dispatch) leaves its
    /// work to it.
    pumping: AtomicBool,
    /// The socket's other worker can be handed what this one cannot use (a channel to it
    /// exists; see `ruvicorn_core::http3::forward`).
    forwarding: bool,
}

impl QuicEndpoint {
    fn state(&self) -> &ServerState {
        self.server.get()
    }

    /// Send what the engine has, hand out its events, until both are quiet; then arm the
    /// timer at the earliest deadline.
    fn pump(slf: &Bound<'_, Self>) -> PyResult<()> {
        let this = slf.get();
        if this.pumping.swap(true, Ordering::Acquire) {
            return Ok(());
        }
        let result = Self::pump_rounds(slf);
        this.pumping.store(false, Ordering::Release);
        result
    }

    fn pump_rounds(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let sendto = locked(&this.sendto).as_ref().map(|t| t.clone_ref(py));
        let mut first_error = None;
        for _ in 0..MAX_PUMP_ROUNDS {
            let (mut out, mut transmits, events, deadline) = {
                let mut core = locked(&this.core);
                let now = Instant::now();
                core.dirty = false;
                let mut out = std::mem::take(&mut core.out);
                let mut transmits = std::mem::take(&mut core.transmits);
                while let Some(transmit) = core.endpoint.poll_transmit(now, &mut out) {
                    transmits.push(transmit);
                }
                let events = core.endpoint.take_events();
                (out, transmits, events, core.endpoint.poll_timeout())
            };
            if let Some(sendto) = &sendto {
                Self::send(slf, sendto.bind(py), &out, &transmits)?;
            }
            out.clear();
            transmits.clear();
            {
                let mut core = locked(&this.core);
                core.out = out;
                core.transmits = transmits;
            }
            let quiet = events.is_empty();
            if let Err(err) = Self::dispatch(slf, events) {
                first_error.get_or_insert(err);
            }
            if quiet && !locked(&this.core).dirty {
                Self::arm(slf, deadline)?;
                return first_error.map_or(Ok(()), Err);
            }
        }
        // Still busy: the rest on the loop's next turn.
        Self::arm(slf, Some(Instant::now()))?;
        first_error.map_or(Ok(()), Err)
    }

    /// Send each datagram of `out` (as `transmits` divide it) to its destination.
    fn send(
        slf: &Bound<'_, Self>,
        sendto: &Bound<'_, PyAny>,
        out: &[u8],
        transmits: &[Transmit],
    ) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let mut start = 0;
        for transmit in transmits {
            let end = start + transmit.size;
            let Some(contents) = out.get(start..end) else {
                break;
            };
            start = end;
            let addr = Self::address(py, this, transmit)?;
            // A send failure is the network's: QUIC retransmits.
            let _ = sendto.call1((PyBytes::new(py, contents), addr));
        }
        if let Some(metrics) = &this.state().metrics {
            metrics.bytes_out(start);
        }
        Ok(())
    }

    /// Where `transmit` goes, as `sendto` takes it: its connection's client address; the
    /// endpoint's own answers' made each time.
    fn address(py: Python<'_>, this: &Self, transmit: &Transmit) -> PyResult<Py<PyTuple>> {
        match transmit.conn {
            Some(conn) => Self::peer(py, this, conn, transmit.destination),
            None => peer_tuple(py, transmit.destination),
        }
    }

    /// `(host, port)` of `conn`'s client at `addr`: the connection's own, made again only
    /// when its address changed (and then kept, if the connection is set up).
    fn peer(py: Python<'_>, this: &Self, conn: u64, addr: SocketAddr) -> PyResult<Py<PyTuple>> {
        let cached = locked(&this.conns)
            .get(&conn)
            .filter(|c| c.peer.addr == addr)
            .map(|c| c.peer.tuple.clone_ref(py));
        if let Some(tuple) = cached {
            return Ok(tuple);
        }
        let peer = Peer::new(py, addr)?;
        let tuple = peer.tuple.clone_ref(py);
        // The old tuple is released after the lock.
        let old = locked(&this.conns)
            .get_mut(&conn)
            .map(|c| std::mem::replace(&mut c.peer, peer));
        drop(old);
        Ok(tuple)
    }

    /// Keep the one timer at or before `deadline`; a timer firing early finds nothing due
    /// and is armed again.
    fn arm(slf: &Bound<'_, Self>, deadline: Option<Instant>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let Some(deadline) = deadline else {
            return Ok(());
        };
        let old = {
            let mut timer = locked(&this.timer);
            if timer.as_ref().is_some_and(|(at, _)| *at <= deadline) {
                return Ok(());
            }
            timer.take()
        };
        if let Some((_, handle)) = old {
            handle.bind(py).call_method0(key!(py, "cancel"))?;
        }
        let event_loop = this.event_loop.bind(py);
        let now: f64 = event_loop.call_method0(key!(py, "time"))?.extract()?;
        let delay = deadline
            .saturating_duration_since(Instant::now())
            .as_secs_f64();
        let callback = slf.getattr(key!(py, "on_timer"))?;
        let handle = event_loop.call_method1(key!(py, "call_at"), (now + delay, callback))?;
        *locked(&this.timer) = Some((deadline, handle.unbind()));
        Ok(())
    }

    /// New connections get their protocol; every other event goes to its connection's
    /// mode, which then takes them in one decision.
    fn dispatch(slf: &Bound<'_, Self>, events: Vec<Event>) -> PyResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let py = slf.py();
        let this = slf.get();
        let mut connected = Vec::new();
        let mut moved = Vec::new();
        let mut touched: Vec<u64> = Vec::new();
        {
            let mut core = locked(&this.core);
            for event in events {
                match event {
                    Event::Connected { conn, remote } => {
                        connected.push((conn, remote));
                        continue;
                    }
                    Event::Migrated { conn, remote } => {
                        moved.push((conn, remote));
                        continue;
                    }
                    _ => {}
                }
                if let Some((conn, event)) = mode_event(event) {
                    core.inboxes.entry(conn).or_default().push(event);
                    if !touched.contains(&conn) {
                        touched.push(conn);
                    }
                }
            }
        }
        let mut first_error = None;
        for (conn, remote) in connected {
            if let Err(err) = Self::connected(slf, conn, remote) {
                first_error.get_or_insert(err);
            }
        }
        for (conn, remote) in moved {
            if let Err(err) = Self::moved(slf, conn, remote) {
                first_error.get_or_insert(err);
            }
        }
        for conn in touched {
            let protocol = locked(&this.conns)
                .get(&conn)
                .map(|c| c.protocol.clone_ref(py));
            let Some(protocol) = protocol else {
                locked(&this.core).inboxes.remove(&conn);
                continue;
            };
            let result = HttpProtocol::decide(protocol.bind(py), |c, fx| c.h2_received(&[], fx));
            if let Err(err) = result {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The client of `conn` moved to `remote`: its requests from now on say so, and its
    /// datagrams go there (the address is made once for both: sending to the new path may
    /// have made it already).
    fn moved(slf: &Bound<'_, Self>, conn: u64, remote: SocketAddr) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let protocol = locked(&this.conns)
            .get(&conn)
            .map(|c| c.protocol.clone_ref(py));
        let Some(protocol) = protocol else {
            return Ok(());
        };
        let client = Self::peer(py, this, conn, remote)?;
        protocol.get().moved_to(py, client)
    }

    /// A QUIC connection is being set up: its protocol, made as asyncio makes a TCP
    /// connection's, switched to the stream mode over this endpoint.
    fn connected(slf: &Bound<'_, Self>, conn: u64, remote: SocketAddr) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let protocol = Bound::new(py, HttpProtocol::new_quic(this.server.clone_ref(py)))?;
        let peer = Peer::new(py, remote)?;
        let transport = Bound::new(
            py,
            QuicTransport {
                endpoint: slf.clone().unbind(),
                conn,
                peer: peer.tuple.clone_ref(py),
                closed: AtomicBool::new(false),
            },
        )?;
        let entry = ConnEntry {
            protocol: protocol.clone().unbind(),
            peer,
        };
        locked(&this.conns).insert(conn, entry);
        protocol.call_method1(key!(py, "connection_made"), (transport,))?;
        let engine = Box::new(H3Link {
            core: this.core.clone(),
            conn,
        });
        let state = this.state();
        HttpProtocol::decide(&protocol, |c, _| {
            c.start_streams(engine, this.max_streams, state);
        })
    }

    /// Give the engine a datagram (`size` bytes counted in), then send and dispatch what
    /// came of it.
    fn receive<T>(
        slf: &Bound<'_, Self>,
        size: usize,
        f: impl FnOnce(&mut Endpoint, Instant) -> T,
    ) -> PyResult<T> {
        let this = slf.get();
        let state = this.state();
        if let Some(metrics) = &state.metrics {
            metrics.bytes_in(size);
        }
        let mut core = locked(&this.core);
        if state.is_draining() {
            // No new connection starts on a draining worker. While a replacement shares
            // the socket, a client's first packet goes to it through the channel (or, with
            // none, is left unanswered: the client's retransmission may reach it). When
            // the service stops, it is refused at once.
            core.endpoint
                .set_new_connections(match state.is_restarting() {
                    true if this.forwarding => NewConnections::Forward,
                    true => NewConnections::Ignore,
                    false => NewConnections::Refuse,
                });
        }
        let out = f(&mut core.endpoint, Instant::now());
        drop(core);
        Self::pump(slf)?;
        Ok(out)
    }

    /// The connection's protocol closed it: CONNECTION_CLOSE (nothing if the engine is done
    /// with it already), and `connection_lost` on the loop's next turn, as asyncio does.
    fn close_conn(slf: &Bound<'_, Self>, conn: u64) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        {
            let mut core = locked(&this.core);
            core.endpoint.close(Instant::now(), conn, codes::NO_ERROR);
            core.inboxes.remove(&conn);
            core.dirty = true;
        }
        let entry = locked(&this.conns).remove(&conn);
        if let Some(ConnEntry { protocol, .. }) = entry {
            let lost = protocol.bind(py).getattr(key!(py, "connection_lost"))?;
            this.event_loop
                .bind(py)
                .call_method1(key!(py, "call_soon"), (lost, py.None()))?;
        }
        Self::pump(slf)
    }
}

/// `(host, port)` of a client's address, as the scope says it.
fn peer_tuple(py: Python<'_>, remote: SocketAddr) -> PyResult<Py<PyTuple>> {
    let pair = [
        remote.ip().to_string().into_pyobject(py)?.into_any(),
        remote.port().into_pyobject(py)?.into_any(),
    ];
    Ok(PyTuple::new(py, pair)?.unbind())
}

/// Parse asyncio's `(host, port, ...)` address of a datagram (the host read in place).
fn socket_addr(addr: &Bound<'_, PyAny>) -> Option<SocketAddr> {
    let tuple = addr.cast::<PyTuple>().ok()?;
    let host = tuple.get_borrowed_item(0).ok()?;
    let ip: IpAddr = host.cast::<PyString>().ok()?.to_str().ok()?.parse().ok()?;
    let port: u16 = tuple.get_borrowed_item(1).ok()?.extract().ok()?;
    Some(SocketAddr::new(ip, port))
}

#[pymethods]
impl QuicEndpoint {
    /// An endpoint serving `server`'s app with its TLS configuration (which HTTP/3 needs).
    /// `forwarding`: a channel to the socket's other worker exists, and
    /// `datagram_received` returns what to send on it.
    #[new]
    #[pyo3(signature = (server, event_loop, forwarding=false))]
    fn new(server: Py<ServerState>, event_loop: Py<PyAny>, forwarding: bool) -> PyResult<Self> {
        let settings = &server.get().settings;
        let Some(tls) = &settings.tls else {
            return Err(PyRuntimeError::new_err("HTTP/3 needs TLS (--ssl-certfile)"));
        };
        let streams = &settings.streams;
        let h3 = http3::Settings {
            max_concurrent_streams: streams.max_concurrent_streams,
            max_header_list_size: u64::from(streams.max_header_list_size),
            max_fields: streams.max_fields,
            max_field_size: streams.max_field_size,
            max_requests: streams.max_requests,
            ..http3::Settings::default()
        };
        let endpoint = Endpoint::new((*tls.config).clone(), &h3)
            .map_err(|err| PyRuntimeError::new_err(format!("HTTP/3: {err}")))?;
        Ok(Self {
            server,
            core: Arc::new(Mutex::new(Core {
                endpoint,
                inboxes: IdMap::default(),
                dirty: false,
                out: Vec::new(),
                transmits: Vec::new(),
            })),
            event_loop,
            sendto: Mutex::new(None),
            sockname: Mutex::new(None),
            conns: Mutex::new(IdMap::default()),
            max_streams: h3.max_concurrent_streams,
            timer: Mutex::new(None),
            pumping: AtomicBool::new(false),
            forwarding,
        })
    }

    fn connection_made(&self, transport: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = transport.py();
        let sockname =
            transport.call_method1(key!(py, "get_extra_info"), (key!(py, "sockname"),))?;
        *locked(&self.sockname) = Some(sockname.unbind());
        *locked(&self.sendto) = Some(transport.getattr(key!(py, "sendto"))?.unbind());
        Ok(())
    }

    /// One datagram from `addr`; anything unparsable is dropped. Returns the message to
    /// hand the socket's other worker when the datagram is not this endpoint's (only with
    /// `forwarding`), else None.
    fn datagram_received<'py>(
        slf: &Bound<'py, Self>,
        data: &Bound<'py, PyBytes>,
        addr: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let Some(remote) = socket_addr(addr) else {
            return Ok(None);
        };
        let data = data.as_bytes();
        let verdict = Self::receive(slf, data.len(), |endpoint, now| {
            endpoint.datagram_received(now, remote, data)
        })?;
        Ok((verdict == Verdict::Forward && slf.get().forwarding)
            .then(|| PyBytes::new(slf.py(), &forward::encode(remote, data))))
    }

    /// A message from the socket's other worker: a datagram it could not use.
    fn forwarded_received(slf: &Bound<'_, Self>, message: &Bound<'_, PyBytes>) -> PyResult<()> {
        let Some((remote, data)) = forward::decode(message.as_bytes()) else {
            return Ok(());
        };
        Self::receive(slf, 0, |endpoint, now| {
            endpoint.forwarded_received(now, remote, data);
        })
    }

    /// The engine's deadline came (loss detection, idle timeouts, draining).
    fn on_timer(slf: &Bound<'_, Self>) -> PyResult<()> {
        let this = slf.get();
        *locked(&this.timer) = None;
        locked(&this.core).endpoint.handle_timeout(Instant::now());
        Self::pump(slf)
    }

    /// The socket is closed: nothing more is sent, and the timer stops.
    fn connection_lost(&self, py: Python<'_>, exc: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        drop(exc);
        *locked(&self.sendto) = None;
        let timer = locked(&self.timer).take();
        if let Some((_, handle)) = timer {
            handle.bind(py).call_method0(key!(py, "cancel"))?;
        }
        Ok(())
    }

    /// QUIC connections not yet over.
    #[getter]
    fn connections(&self) -> usize {
        locked(&self.core).endpoint.connections()
    }
}

/// What a QUIC connection's protocol sees as its transport: its peer, the socket's name,
/// and close; what it writes leaves through the endpoint.
#[pyclass(frozen, module = "ruvicorn._native")]
pub struct QuicTransport {
    endpoint: Py<QuicEndpoint>,
    conn: u64,
    peer: Py<PyTuple>,
    closed: AtomicBool,
}

#[pymethods]
impl QuicTransport {
    #[pyo3(signature = (name, default=None))]
    fn get_extra_info(&self, py: Python<'_>, name: &str, default: Option<Py<PyAny>>) -> Py<PyAny> {
        match name {
            "peername" => self.peer.clone_ref(py).into_any(),
            "sockname" => locked(&self.endpoint.get().sockname)
                .as_ref()
                .map(|s| s.clone_ref(py))
                .unwrap_or_else(|| py.None()),
            _ => default.unwrap_or_else(|| py.None()),
        }
    }

    /// Send what the connection's last decision left in the engine.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        QuicEndpoint::pump(self.endpoint.bind(py))
    }

    fn is_closing(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if self.closed.swap(true, Ordering::Relaxed) {
            return Ok(());
        }
        QuicEndpoint::close_conn(self.endpoint.bind(py), self.conn)
    }

    fn abort(&self, py: Python<'_>) -> PyResult<()> {
        self.close(py)
    }
}
