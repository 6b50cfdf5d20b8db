//! The client's field blocks checked as the engine's HPACK decoder will read them (RFC 7541).
//!
//! The engine answers an undecodable field block with PROTOCOL_ERROR, where RFC 9113 §4.3
//! calls for COMPRESSION_ERROR, and drops a pseudo-header in trailers where §8.1 calls the
//! message malformed. So [`FieldCheck`] reads every field block fragment the frame check
//! passes on, a byte at a time, and keeps the decoder state exactly as RFC 7541 defines it:
//! the dynamic table's entry sizes (and whether each name is a pseudo-header), its maximum
//! size, and where in a representation the block is. A string is never kept: only its
//! decoded length and whether it starts with ':' matter, so nothing is allocated per field,
//! and a block split across frames or reads is read the same as a whole one.

use std::collections::VecDeque;

use crate::http3::qpack::huffman;

/// The dynamic table size the engine announces (SETTINGS_HEADER_TABLE_SIZE, the default):
/// a size update above it is a decoding error (RFC 7541 §6.3).
pub const HEADER_TABLE_SIZE: usize = 4096;

/// The static table's names (RFC 7541 Appendix A), index 1 first.
const STATIC_NAMES: [&str; 61] = [
    ":authority",
    ":method",
    ":method",
    ":path",
    ":path",
    ":scheme",
    ":scheme",
    ":status",
    ":status",
    ":status",
    ":status",
    ":status",
    ":status",
    ":status",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "accept",
    "access-control-allow-origin",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-range",
    "content-type",
    "cookie",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "link",
    "location",
    "max-forwards",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "refresh",
    "retry-after",
    "server",
    "set-cookie",
    "strict-transport-security",
    "transfer-encoding",
    "user-agent",
    "vary",
    "via",
    "www-authenticate",
];

/// An integer of at most this many bytes, prefix included: the engine's bound, which keeps
/// every value below 2^28 + 255 (RFC 7541 §5.1 leaves the limit to the decoder).
const INTEGER_BYTES: u8 = 5;
/// Bytes an entry counts beyond its name and value (RFC 7541 §4.1).
const ENTRY_OVERHEAD: usize = 32;

/// What a field block calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Undecodable: a connection error COMPRESSION_ERROR (RFC 9113 §4.3).
    Compression,
    /// A pseudo-header field in trailers: the stream's message is malformed (§8.1).
    PseudoInTrailers,
}

/// The representation being read (RFC 7541 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Indexed,
    /// A literal field, added to the table when `true` (incremental indexing).
    Literal(bool),
    SizeUpdate,
}

/// Which integer or string comes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// The representation's own integer: an index or a size.
    Head,
    Name,
    Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The first byte of a representation.
    Start,
    /// The first byte of a string (its Huffman flag and length prefix).
    StringStart,
    /// The continuation bytes of an integer: value so far, its bytes read.
    Integer(usize, u8),
    /// A string's bytes: still to come, symbols so far, its Huffman reader if coded.
    String(usize, usize, Option<huffman::Reader>),
}

/// A dynamic table entry: its name's length, whether the name is a pseudo-header, and its
/// size (RFC 7541 §4.1); whether it is a `:path` with a `#` in its value.
#[derive(Debug, Clone, Copy)]
struct Entry {
    name: usize,
    pseudo: bool,
    size: usize,
    path: bool,
    hash: bool,
}

/// The one name whose value is looked into: a `#` in `:path` makes the request malformed
/// (a fragment is never sent), and the engine would drop it unseen.
const PATH: &[u8] = b":path";
/// Static table indexes whose name is `:path`.
const STATIC_PATHS: [usize; 2] = [4, 5];

/// See the module documentation.
#[derive(Debug)]
pub struct FieldCheck {
    /// Newest first.
    table: VecDeque<Entry>,
    size: usize,
    max_size: usize,
    step: Step,
    kind: Kind,
    part: Part,
    /// The current string is Huffman-coded, and its first symbol is still to come.
    huffman: bool,
    first_pending: bool,
    /// The field's name: its length and whether it is a pseudo-header.
    name: usize,
    pseudo: bool,
    /// No field representation yet in this block: a size update may come (§4.2).
    at_start: bool,
    /// The block is trailers: a pseudo-header is a [`Fault::PseudoInTrailers`].
    trailers: bool,
    /// Bytes of the name being read that match [`PATH`] so far (`None` past a mismatch);
    /// whether the field's name is `:path`, and its value so far has a `#`.
    path_prefix: Option<usize>,
    path: bool,
    hash: bool,
    /// A `:path` with a `#` was read since the last [`Self::take_hash_in_path`].
    hash_in_path: bool,
}

impl Default for FieldCheck {
    fn default() -> Self {
        Self::new()
    }
}

impl FieldCheck {
    pub fn new() -> Self {
        Self {
            table: VecDeque::new(),
            size: 0,
            max_size: HEADER_TABLE_SIZE,
            step: Step::Start,
            kind: Kind::Indexed,
            part: Part::Head,
            huffman: false,
            first_pending: false,
            name: 0,
            pseudo: false,
            at_start: true,
            trailers: false,
            path_prefix: None,
            path: false,
            hash: false,
            hash_in_path: false,
        }
    }

    /// Whether a `:path` with a `#` was read since the last call.
    pub fn take_hash_in_path(&mut self) -> bool {
        std::mem::take(&mut self.hash_in_path)
    }

    /// A field block begins (a HEADERS frame); `trailers` when it is the stream's second.
    pub fn start_block(&mut self, trailers: bool) {
        self.at_start = true;
        self.trailers = trailers;
    }

    /// Whether the block may end here (END_HEADERS): not inside a representation.
    pub fn may_end(&self) -> bool {
        self.step == Step::Start
    }

    /// Read one byte of the block.
    pub fn byte(&mut self, byte: u8) -> Result<(), Fault> {
        match self.step {
            Step::Start => {
                let (kind, prefix) = if byte & 0x80 != 0 {
                    (Kind::Indexed, 7)
                } else if byte & 0x40 != 0 {
                    (Kind::Literal(true), 6)
                } else if byte & 0x20 != 0 {
                    if !self.at_start {
                        return Err(Fault::Compression);
                    }
                    (Kind::SizeUpdate, 5)
                } else {
                    (Kind::Literal(false), 4)
                };
                if kind != Kind::SizeUpdate {
                    self.at_start = false;
                }
                self.kind = kind;
                self.part = Part::Head;
                self.integer_start(byte, prefix)
            }
            Step::StringStart => {
                self.huffman = byte & 0x80 != 0;
                self.integer_start(byte, 7)
            }
            Step::Integer(value, bytes) => {
                let value = value + (usize::from(byte & 0x7f) << (7 * u32::from(bytes - 1)));
                if byte & 0x80 == 0 {
                    self.integer(value)
                } else if bytes + 1 == INTEGER_BYTES {
                    Err(Fault::Compression)
                } else {
                    self.step = Step::Integer(value, bytes + 1);
                    Ok(())
                }
            }
            Step::String(left, mut symbols, mut reader) => {
                let mut first = None;
                let mut looked = self.looked_into();
                match reader.as_mut() {
                    Some(reader) => {
                        let count = |symbol| {
                            first.get_or_insert(symbol);
                            looked.symbol(symbols, symbol);
                            symbols += 1;
                        };
                        if !reader.byte(byte, count) {
                            return Err(Fault::Compression);
                        }
                    }
                    None => {
                        first = Some(byte);
                        looked.symbol(symbols, byte);
                        symbols += 1;
                    }
                }
                self.keep_looked(looked);
                if let Some(first) = first.filter(|_| self.first_pending) {
                    self.first_pending = false;
                    self.pseudo = first == b':';
                }
                if left > 1 {
                    self.step = Step::String(left - 1, symbols, reader);
                    return Ok(());
                }
                if reader.is_some_and(|r| !r.end()) {
                    return Err(Fault::Compression);
                }
                self.string(symbols)
            }
        }
    }

    fn integer_start(&mut self, byte: u8, prefix: u32) -> Result<(), Fault> {
        let mask = (1u8 << prefix) - 1;
        let value = byte & mask;
        if value < mask {
            self.integer(usize::from(value))
        } else {
            self.step = Step::Integer(usize::from(mask), 1);
            Ok(())
        }
    }

    /// An integer was read whole.
    fn integer(&mut self, value: usize) -> Result<(), Fault> {
        self.step = Step::Start;
        match (self.part, self.kind) {
            (Part::Head, Kind::Indexed) => {
                let entry = self.entry_at(value)?;
                self.hash_in_path |= entry.path && entry.hash;
                return self.field(entry.pseudo);
            }
            (Part::Head, Kind::SizeUpdate) => {
                if value > HEADER_TABLE_SIZE {
                    return Err(Fault::Compression);
                }
                self.max_size = value;
                self.evict(0);
            }
            (Part::Head, Kind::Literal(_)) => {
                self.hash = false;
                if value == 0 {
                    self.part = Part::Name;
                    self.path_prefix = Some(0);
                } else {
                    let entry = self.entry_at(value)?;
                    (self.name, self.pseudo, self.path) = (entry.name, entry.pseudo, entry.path);
                    self.part = Part::Value;
                }
                self.step = Step::StringStart;
            }
            (Part::Name | Part::Value, _) if value == 0 => {
                self.first_pending = self.part == Part::Name;
                return self.string(0);
            }
            (Part::Name | Part::Value, _) => {
                self.first_pending = self.part == Part::Name;
                let reader = self.huffman.then(huffman::Reader::default);
                self.step = Step::String(value, 0, reader);
            }
        }
        Ok(())
    }

    /// A string was read whole: `len` bytes once decoded.
    fn string(&mut self, len: usize) -> Result<(), Fault> {
        self.step = Step::Start;
        if self.part == Part::Name {
            if len == 0 {
                self.pseudo = false;
            }
            self.path = self.path_prefix == Some(PATH.len());
            self.name = len;
            self.part = Part::Value;
            self.step = Step::StringStart;
            return Ok(());
        }
        if self.kind == Kind::Literal(true) {
            let size = self.name + len + ENTRY_OVERHEAD;
            self.evict(size);
            if size <= self.max_size {
                let (name, pseudo, path, hash) = (self.name, self.pseudo, self.path, self.hash);
                self.table.push_front(Entry {
                    name,
                    pseudo,
                    size,
                    path,
                    hash,
                });
                self.size += size;
            }
        }
        self.hash_in_path |= self.path && self.hash;
        let pseudo = self.pseudo;
        self.field(pseudo)
    }

    /// What the string being read is looked into for: a name compared with [`PATH`], a
    /// `:path` value searched for `#`.
    fn looked_into(&self) -> Looked {
        match self.part {
            Part::Name => Looked::Name(self.path_prefix),
            _ if self.path => Looked::PathValue(self.hash),
            _ => Looked::Nothing,
        }
    }

    fn keep_looked(&mut self, looked: Looked) {
        match looked {
            Looked::Name(prefix) => self.path_prefix = prefix,
            Looked::PathValue(hash) => self.hash = hash,
            Looked::Nothing => {}
        }
    }

    /// A field was read whole.
    fn field(&mut self, pseudo: bool) -> Result<(), Fault> {
        if pseudo && self.trailers {
            // Reported once per block: the stream is reset at the first.
            self.trailers = false;
            return Err(Fault::PseudoInTrailers);
        }
        Ok(())
    }

    /// The entry at `index` in the static then dynamic table (RFC 7541 §2.3.3); a static
    /// one's size is not needed.
    fn entry_at(&self, index: usize) -> Result<Entry, Fault> {
        if let Some(name) = index.checked_sub(1).and_then(|i| STATIC_NAMES.get(i)) {
            return Ok(Entry {
                name: name.len(),
                pseudo: name.starts_with(':'),
                size: 0,
                path: STATIC_PATHS.contains(&index),
                hash: false,
            });
        }
        index
            .checked_sub(STATIC_NAMES.len() + 1)
            .and_then(|i| self.table.get(i))
            .copied()
            .ok_or(Fault::Compression)
    }

    /// Evict until an entry of `room` bytes fits, or the table is empty (RFC 7541 §4.4).
    fn evict(&mut self, room: usize) {
        while self.size + room > self.max_size {
            let Some(entry) = self.table.pop_back() else {
                break;
            };
            self.size -= entry.size;
        }
    }
}

/// A string's symbols, as far as they matter: see [`FieldCheck::looked_into`].
#[derive(Debug, Clone, Copy)]
enum Looked {
    Nothing,
    /// A name: how many of its first symbols match [`PATH`] (`None` past a mismatch).
    Name(Option<usize>),
    /// A `:path` value: whether a `#` was seen.
    PathValue(bool),
}

impl Looked {
    /// The symbol at `index` in the string.
    fn symbol(&mut self, index: usize, symbol: u8) {
        match self {
            Self::Name(prefix) => {
                *prefix = prefix
                    .filter(|&n| n == index && PATH.get(n) == Some(&symbol))
                    .map(|n| n + 1);
            }
            Self::PathValue(hash) => *hash |= symbol == b'#',
            Self::Nothing => {}
        }
    }
}

#[cfg(test)]
#[path = "hpack_check_tests.rs"]
mod tests;
