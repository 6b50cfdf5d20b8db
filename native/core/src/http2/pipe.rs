//! The in-memory duplex the engine reads from and writes to.
//!
//! Shared between [`super::Http2`] (which pushes input and takes output) and the engine
//! (which owns its own handle as its I/O object); an uncontended mutex keeps it `Send`
//! for the binding's connection, which lives behind a lock of its own.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

#[derive(Default)]
struct Buffers {
    input: Vec<u8>,
    /// Bytes of `input` already read by the engine.
    consumed: usize,
    eof: bool,
    output: Vec<u8>,
}

#[derive(Clone, Default)]
pub(super) struct Pipe(Arc<Mutex<Buffers>>);

impl Pipe {
    fn lock(&self) -> MutexGuard<'_, Buffers> {
        // A panic elsewhere never leaves the buffers half-updated: use them as they are.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn push_input(&self, bytes: &[u8]) {
        let mut buffers = self.lock();
        if buffers.consumed == buffers.input.len() {
            buffers.input.clear();
            buffers.consumed = 0;
        }
        buffers.input.extend_from_slice(bytes);
    }

    pub(super) fn close_input(&self) {
        self.lock().eof = true;
    }

    /// Frames written beside the engine's (after a pass of it, so between its frames).
    pub(super) fn push_output(&self, bytes: &[u8]) {
        self.lock().output.extend_from_slice(bytes);
    }

    pub(super) fn take_output(&self) -> Vec<u8> {
        std::mem::take(&mut self.lock().output)
    }
}

impl AsyncRead for Pipe {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut buffers = self.lock();
        let start = buffers.consumed;
        let available = buffers.input.len() - start;
        if available == 0 {
            // EOF is a read of nothing; otherwise wait for the next push.
            return if buffers.eof {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            };
        }
        let len = available.min(buf.remaining());
        buf.put_slice(&buffers.input[start..start + len]);
        buffers.consumed += len;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Pipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.lock().output.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
