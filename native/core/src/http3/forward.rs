//! Two workers on one UDP socket: which of them a datagram is for, and how one hands a
//! datagram to the other.
//!
//! A worker slot's UDP socket is read by its worker and, during a rolling restart, by
//! that worker's replacement too; the kernel gives each datagram to whichever reads first.
//! Each endpoint issues connection ids signed with a key of its own (quinn-proto's
//! [`HashedConnectionIdGenerator`]), so the destination connection id alone tells "mine"
//! from "not mine" without anything linkable on the wire. What an endpoint cannot use is
//! handed, with the client's address, to the slot's other worker over a unix datagram
//! channel ([`encode`], [`decode`]); a datagram that came that way is never handed on
//! again.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use quinn_proto::{ConnectionId, ConnectionIdGenerator, HashedConnectionIdGenerator};

/// The length of the connection ids [`HashedConnectionIdGenerator`] issues.
pub(crate) const CID_LEN: usize = 8;
/// The longest connection id QUIC v1 allows.
const MAX_CID_LEN: usize = 20;

/// Who should handle a datagram, by its first packet's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// This endpoint's connection, or nothing anyone could use (quinn-proto drops it).
    Mine,
    /// A packet of a connection whose id this endpoint did not issue.
    Theirs,
    /// An Initial (or 0-RTT) packet whose id is not this endpoint's: a client's first
    /// packet (a new connection), or a packet of a handshake another endpoint answered.
    Unknown,
}

/// Recognises the connection ids one endpoint issues.
pub(crate) struct Ids {
    check: HashedConnectionIdGenerator,
}

impl Ids {
    pub(crate) fn new(key: u64) -> Self {
        Self {
            check: Self::generator(key),
        }
    }

    /// A generator issuing the ids `Ids::new(key)` recognises.
    pub(crate) fn generator(key: u64) -> HashedConnectionIdGenerator {
        HashedConnectionIdGenerator::from_key(key)
    }

    fn mine(&self, cid: &[u8]) -> bool {
        cid.len() == CID_LEN && self.check.validate(&ConnectionId::new(cid)).is_ok()
    }

    /// Whose datagram `data` is; `known` says whether a client's first-packet id names a
    /// connection this endpoint accepted.
    pub(crate) fn owner(&self, data: &[u8], known: impl Fn(&ConnectionId) -> bool) -> Owner {
        let Some(&first) = data.first() else {
            return Owner::Mine;
        };
        if first & 0x80 == 0 {
            // Short header: the destination id follows the first byte.
            return match data.get(1..=CID_LEN) {
                Some(cid) if !self.mine(cid) => Owner::Theirs,
                _ => Owner::Mine,
            };
        }
        // Long header (RFC 8999: the same in every version): version, id length, id.
        let version = data.get(1..5);
        let cid = data
            .get(5)
            .and_then(|&len| data.get(6..6 + usize::from(len)));
        let (Some(version), Some(cid)) = (version, cid) else {
            return Owner::Mine;
        };
        if version == [0; 4] || cid.len() > MAX_CID_LEN || self.mine(cid) {
            return Owner::Mine;
        }
        match (first >> 4) & 0x3 {
            // Initial, 0-RTT.
            0 | 1 if known(&ConnectionId::new(cid)) => Owner::Mine,
            0 | 1 => Owner::Unknown,
            // Handshake.
            2 => Owner::Theirs,
            // Retry: only servers send it.
            _ => Owner::Mine,
        }
    }
}

/// A datagram from `remote` as it travels to the other worker.
pub fn encode(remote: SocketAddr, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(19 + data.len());
    match remote.ip() {
        IpAddr::V4(ip) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(6);
            out.extend_from_slice(&ip.octets());
        }
    }
    out.extend_from_slice(&remote.port().to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// The client's address and the datagram of a forwarded message; None when malformed.
pub fn decode(message: &[u8]) -> Option<(SocketAddr, &[u8])> {
    let (&tag, rest) = message.split_first()?;
    let (ip, rest) = match tag {
        4 => {
            let (ip, rest) = rest.split_first_chunk::<4>()?;
            (IpAddr::V4(Ipv4Addr::from(*ip)), rest)
        }
        6 => {
            let (ip, rest) = rest.split_first_chunk::<16>()?;
            (IpAddr::V6(Ipv6Addr::from(*ip)), rest)
        }
        _ => return None,
    };
    let (port, data) = rest.split_first_chunk::<2>()?;
    Some((SocketAddr::new(ip, u16::from_be_bytes(*port)), data))
}

#[cfg(test)]
mod tests {
    use quinn_proto::ConnectionIdGenerator;

    use super::{Ids, Owner, CID_LEN};

    const KEY: u64 = 0x5eed;

    fn own_id() -> Vec<u8> {
        Ids::generator(KEY).generate_cid().to_vec()
    }

    fn other_id() -> Vec<u8> {
        Ids::generator(KEY + 1).generate_cid().to_vec()
    }

    fn short(cid: &[u8]) -> Vec<u8> {
        [&[0x40][..], cid, &[0; 20]].concat()
    }

    /// A QUIC v1 long-header packet of `kind` (0 Initial, 1 0-RTT, 2 Handshake, 3 Retry).
    fn long(kind: u8, cid: &[u8]) -> Vec<u8> {
        let len = u8::try_from(cid.len()).expect("id length");
        [&[0xc0 | kind << 4, 0, 0, 0, 1, len][..], cid, &[0; 20]].concat()
    }

    fn owner(data: &[u8]) -> Owner {
        Ids::new(KEY).owner(data, |_| false)
    }

    #[test]
    fn the_destination_id_alone_says_whose_a_packet_is() {
        assert_eq!(own_id().len(), CID_LEN);
        assert_eq!(owner(&short(&own_id())), Owner::Mine);
        assert_eq!(owner(&short(&other_id())), Owner::Theirs);
        assert_eq!(owner(&long(2, &own_id())), Owner::Mine);
        assert_eq!(owner(&long(2, &other_id())), Owner::Theirs);
        // A client's Initial names its own random id, or (later) the server's.
        assert_eq!(owner(&long(0, &own_id())), Owner::Mine);
        assert_eq!(owner(&long(0, &other_id())), Owner::Unknown);
        assert_eq!(owner(&long(1, &[7; 12])), Owner::Unknown);
    }

    #[test]
    fn the_first_id_of_an_accepted_connection_is_ours() {
        let first = [9; 16];
        let known = |cid: &quinn_proto::ConnectionId| cid[..] == first;
        assert_eq!(Ids::new(KEY).owner(&long(0, &first), known), Owner::Mine);
        assert_eq!(
            Ids::new(KEY).owner(&long(0, &[8; 16]), known),
            Owner::Unknown
        );
    }

    #[test]
    fn what_nobody_could_use_stays_here() {
        // Too short to hold an id, a version negotiation, an id past 20 bytes, a Retry:
        // quinn-proto drops (or answers) them; handing them over would help no one.
        for data in [
            &[][..],
            &[0x40, 1, 2],
            &[0xc0, 0, 0, 0, 1],
            &[0xc0, 0, 0, 0, 1, 8, 1],
            &long(0, &[1; 8])[..1],
        ] {
            assert_eq!(owner(data), Owner::Mine, "{data:?}");
        }
        let mut negotiation = long(0, &other_id());
        negotiation[1..5].copy_from_slice(&[0; 4]);
        assert_eq!(owner(&negotiation), Owner::Mine);
        assert_eq!(owner(&long(0, &[1; 21])), Owner::Mine);
        assert_eq!(owner(&long(3, &other_id())), Owner::Mine);
    }
}
