//! The peer's unidirectional streams as QUIC delivers them; [`crate::http3::uni`] parses
//! them.

use quinn_proto::{StreamId, VarInt};

use super::{read_into, Conn};
use crate::http3::codes;
use crate::http3::uni::Status;

impl Conn {
    pub(super) fn read_uni(&mut self, id: StreamId) {
        let limit = self.settings.max_header_list_size;
        let Some(uni) = self.uni.get_mut(&id) else {
            return;
        };
        let (buf, bound) = uni.buf_mut();
        let end = read_into(&mut self.quic, id, buf, bound);
        let ended = end.fin || end.reset.is_some();
        match uni.parse(&mut self.peer_streams, limit, |_| {}) {
            Err(code) => return self.fail(code, "invalid unidirectional stream"),
            Ok(Status::Unknown) => {
                // §6.2.3: unknown types are ignored, their senders told to stop.
                let _ = self
                    .quic
                    .recv_stream(id)
                    .stop(VarInt::from_u32(codes::STREAM_CREATION_ERROR as u32));
                self.uni.remove(&id);
                return;
            }
            Ok(Status::Open) => {}
        }
        if ended {
            if uni.is_critical() {
                // §6.2.1, RFC 9204 §4.2: critical streams never close.
                self.fail(codes::CLOSED_CRITICAL_STREAM, "critical stream closed");
            } else {
                self.uni.remove(&id);
            }
        } else if uni.is_full() {
            self.fail(codes::EXCESSIVE_LOAD, "unidirectional stream buffer full");
        }
    }
}
