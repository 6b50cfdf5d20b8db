//! Output held back to go out in one write.
//!
//! An app streaming a response sends part after part in one step of its Task; each part
//! written at once costs a system call and, on loopback, the receiving side's work too.
//! While the app's step runs (`HttpProtocol::app_stepping`), the body parts an HTTP/1.1
//! connection's app sends within [`HOLD_WINDOW`] of one written at once gather in a
//! [`Cork`]: the first part of a burst goes out at once, the rest of the burst together.
//! The cork is written when the step ends (the app suspends or returns), at the first
//! part after the window, when it holds [`CORK_LIMIT`] bytes, or ahead of anything else
//! the connection writes or does to its transport; so the order on the wire is the order
//! of the sends, and only an app that blocks its loop right after a burst delays it.
//! Once the transport paused the connection (its reader does not keep up), nothing more
//! is held: the transport's own flow control bounds what waits for that reader. Over TLS
//! the parts are held in the clear, up to one record's worth, and encrypted when they are
//! released (`Tls::seal`), so a record spans several small parts.
//!
//! It also frames a single large body part: the app's own `bytes` between the framing.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use super::effects::{Effects, Wire};
use super::{Conn, HttpProtocol, Mode};

/// Bytes held before they are written anyway: bounds a connection's memory and keeps
/// the transport's flow control in charge of anything larger.
pub(super) const CORK_LIMIT: usize = 1024 * 1024;

/// The same over TLS: one record's worth. The sealed output is a copy made at release,
/// so larger bursts gain nothing from being held.
const TLS_CORK_LIMIT: usize = 16 * 1024;

/// How long after a part written at once the parts that follow are held.
const HOLD_WINDOW: Duration = Duration::from_millis(1);

/// A connection's held output and when holding applies.
#[derive(Default)]
pub(crate) struct HoldBack {
    pub(super) cork: Option<Box<Cork>>,
    /// When the part that opened the current window was written.
    window_opened: Option<Instant>,
    /// The transport paused the connection once: nothing more is held.
    reader_behind: bool,
}

impl HoldBack {
    /// The transport paused writing: its reader fell behind.
    pub(super) fn reader_fell_behind(&mut self) {
        self.reader_behind = true;
    }
}

/// A body part at least this long is written from the app's own `bytes` (a vectored
/// write) when the transport's `writelines` applies flow control, and encrypted from
/// them in place over TLS: below it, one copy into a single buffer costs less.
pub(super) const LARGE_BODY: usize = 16 * 1024;

/// Output in order: `copied` bytes, with app `bytes` objects written between them
/// (`bodies`: each at the offset of `copied` it follows).
#[derive(Default)]
pub(crate) struct Cork {
    copied: Vec<u8>,
    bodies: Vec<(usize, Py<PyBytes>)>,
    len: usize,
}

impl Cork {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Take the bytes `fx` would write, in their order, after what is held already;
    /// `vectored`: a large body stays the app's own object.
    pub(super) fn absorb(&mut self, py: Python<'_>, fx: &mut Effects, vectored: bool) {
        self.copy(&std::mem::take(&mut fx.write));
        if let Some(body) = fx.write_body.take() {
            let bytes = body.bind(py).as_bytes();
            if vectored && bytes.len() >= LARGE_BODY {
                self.len += bytes.len();
                self.bodies.push((self.copied.len(), body));
            } else {
                self.copy(bytes);
            }
        }
        self.copy(std::mem::take(&mut fx.write_suffix));
        self.copy(&std::mem::take(&mut fx.write_tail));
    }

    fn copy(&mut self, bytes: &[u8]) {
        self.len += bytes.len();
        self.copied.extend_from_slice(bytes);
    }

    /// The held output in order, each piece handed to `piece`: stretches of the copied
    /// bytes, and the app's own `bytes` between them.
    fn for_each_piece<'a>(&'a self, mut piece: impl FnMut(Piece<'a>)) {
        let mut at = 0;
        for (offset, body) in &self.bodies {
            if *offset > at {
                piece(Piece::Copied(&self.copied[at..*offset]));
            }
            piece(Piece::Body(body));
            at = *offset;
        }
        if at < self.copied.len() {
            piece(Piece::Copied(&self.copied[at..]));
        }
    }

    /// The held output as byte slices in order (what the TLS layer encrypts).
    pub(super) fn slices<'a>(&'a self, py: Python<'a>) -> Vec<&'a [u8]> {
        let mut slices = Vec::with_capacity(self.bodies.len() * 2 + 1);
        self.for_each_piece(|piece| {
            slices.push(match piece {
                Piece::Copied(bytes) => bytes,
                Piece::Body(body) => body.bind(py).as_bytes(),
            });
        });
        slices
    }

    /// What to write: one `bytes`, or the parts for `writelines`.
    pub(super) fn into_wire(self, py: Python<'_>) -> PyResult<Option<Wire<'_>>> {
        if self.bodies.is_empty() {
            return Ok((!self.copied.is_empty()).then(|| Wire::One(PyBytes::new(py, &self.copied))));
        }
        let mut parts = Vec::with_capacity(self.bodies.len() * 2 + 1);
        self.for_each_piece(|piece| {
            parts.push(match piece {
                Piece::Copied(bytes) => PyBytes::new(py, bytes),
                Piece::Body(body) => body.bind(py).clone(),
            });
        });
        if parts.len() == 1 {
            return Ok(parts.pop().map(Wire::One));
        }
        Ok(Some(Wire::Parts(PyTuple::new(py, parts)?, self.len)))
    }
}

/// One piece of a cork's output.
enum Piece<'a> {
    Copied(&'a [u8]),
    Body(&'a Py<PyBytes>),
}

impl Conn {
    /// A body part that more parts follow was decided into `fx` during the app's step:
    /// hold its output back if it falls in a window (see the module documentation), else
    /// let it out and open one. What else `fx` does (closing, say) lets the held output
    /// out at once, as does reaching [`CORK_LIMIT`] ([`TLS_CORK_LIMIT`] over TLS).
    pub(crate) fn hold_output(&mut self, py: Python<'_>, fx: &mut Effects, vectored: bool) {
        let holding = &mut self.hold;
        if !matches!(self.mode, Mode::Http1) || holding.reader_behind {
            return;
        }
        // The TLS layer reads the app's `bytes` in place as it encrypts them.
        let vectored = vectored || self.tls.is_some();
        let now = Instant::now();
        match holding.window_opened {
            Some(opened) if now.duration_since(opened) < HOLD_WINDOW => {}
            _ => {
                holding.window_opened = Some(now);
                return;
            }
        }
        let mut cork = holding.cork.take().unwrap_or_default();
        cork.absorb(py, fx, vectored);
        let limit = if self.tls.is_some() {
            TLS_CORK_LIMIT
        } else {
            CORK_LIMIT
        };
        if cork.len() >= limit || !fx.is_empty() {
            fx.corked = Some(cork);
        } else {
            holding.cork = Some(cork);
        }
    }
}

impl HttpProtocol {
    pub(super) fn set_corked(&self, corked: bool) {
        self.corked.store(corked, Ordering::Relaxed);
    }

    /// Whether `send()` may hold output back: an app's step is running.
    pub(crate) fn app_stepping(&self) -> bool {
        self.app_stepping.load(Ordering::Relaxed)
    }

    /// An app's step begins.
    pub(crate) fn step_begins(&self) {
        self.app_stepping.store(true, Ordering::Relaxed);
    }

    /// An app's step ended: what it held back is written. A failure there is reported
    /// as unraisable: the step's own outcome still belongs to the app's Task.
    pub(crate) fn step_ended(slf: &Bound<'_, Self>) {
        let this = slf.get();
        this.app_stepping.store(false, Ordering::Relaxed);
        // `decide` clears the flag (the loss of the connection may have dropped the cork
        // already: then the decision finds nothing to write).
        if this.corked.load(Ordering::Relaxed) {
            if let Err(err) = Self::decide(slf, |_, fx| fx.release_held = true) {
                err.write_unraisable(slf.py(), Some(slf.as_any()));
            }
        }
    }
}
