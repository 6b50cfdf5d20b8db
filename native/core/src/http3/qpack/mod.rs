//! QPACK field sections (RFC 9204) without a dynamic table.
//!
//! ruvicorn advertises `SETTINGS_QPACK_MAX_TABLE_CAPACITY = 0` and
//! `SETTINGS_QPACK_BLOCKED_STREAMS = 0`, so a conforming peer only uses the static table and
//! literals; any reference to a dynamic table is a decoding error. Encoding uses the static
//! table where an entry matches and plain (not Huffman-coded) literals otherwise, so the
//! peer never needs an acknowledgement from us either. Public: bench/wsload's HTTP/3
//! client encodes its requests and decodes its responses with it too.

pub(crate) mod huffman;
mod huffman_table;
mod static_table;

use std::sync::OnceLock;

use static_table::STATIC;

/// Why a field section could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Malformed, or refers to a dynamic table: QPACK_DECOMPRESSION_FAILED.
    Invalid,
    /// Decoded fields exceed the limit (names, values and 32 bytes each, RFC 9114 §4.2.2).
    TooLarge,
    /// The input ended inside an integer or string (part of a stream's instructions may
    /// still be coming; inside a field section it is [`Error::Invalid`]).
    Truncated,
}

pub type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// Decode one field section; `max_size` bounds the decoded list.
pub fn decode(input: &[u8], max_size: u64) -> Result<Fields, Error> {
    decode_section(input, max_size).map_err(|error| match error {
        Error::Truncated => Error::Invalid,
        other => other,
    })
}

fn decode_section(mut input: &[u8], max_size: u64) -> Result<Fields, Error> {
    let required_insert_count = integer(&mut input, 8)?;
    if required_insert_count != 0 {
        return Err(Error::Invalid);
    }
    // Sign bit and Delta Base: meaningless without a dynamic table, but part of the grammar.
    integer(&mut input, 7)?;
    let mut fields = Vec::new();
    let mut size: u64 = 0;
    while let Some(&first) = input.first() {
        let (name, value) = if first & 0x80 != 0 {
            // Indexed field line: 1 T index(6).
            let entry = static_entry(first & 0x40, integer(&mut input, 6)?)?;
            (entry.0.to_vec(), entry.1.to_vec())
        } else if first & 0x40 != 0 {
            // Literal with name reference: 0 1 N T index(4), then the value.
            let entry = static_entry(first & 0x10, integer(&mut input, 4)?)?;
            (entry.0.to_vec(), string(&mut input, 7)?)
        } else if first & 0x20 != 0 {
            // Literal with literal name: 0 0 1 N H length(3), then the value.
            let name = string(&mut input, 3)?;
            (name, string(&mut input, 7)?)
        } else {
            // Post-base forms: only meaningful with a dynamic table.
            return Err(Error::Invalid);
        };
        size += name.len() as u64 + value.len() as u64 + 32;
        if size > max_size {
            return Err(Error::TooLarge);
        }
        fields.push((name, value));
    }
    Ok(fields)
}

/// Encode `fields` as one field section (static table and plain literals only).
pub fn encode<'a>(fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>, out: &mut Vec<u8>) {
    // Required Insert Count 0, Delta Base 0.
    out.extend_from_slice(&[0, 0]);
    for (name, value) in fields {
        let (exact, named) = static_index(name, value);
        if let Some(index) = exact {
            put_integer(out, 0xc0, 6, index as u64);
            continue;
        }
        match named {
            Some(index) => put_integer(out, 0x50, 4, index as u64),
            None => {
                put_integer(out, 0x20, 3, name.len() as u64);
                out.extend_from_slice(name);
            }
        }
        put_integer(out, 0, 7, value.len() as u64);
        out.extend_from_slice(value);
    }
}

/// The static table sorted by name and value: each entry with its index, and the first
/// index of its name.
type SortedEntry = ((&'static [u8], &'static [u8]), usize, usize);

fn sorted_static() -> &'static [SortedEntry] {
    static SORTED: OnceLock<Vec<SortedEntry>> = OnceLock::new();
    SORTED.get_or_init(|| {
        let mut sorted: Vec<SortedEntry> = STATIC
            .iter()
            .enumerate()
            .map(|(index, &entry)| {
                let first = STATIC.iter().position(|&(n, _)| n == entry.0);
                (entry, index, first.unwrap_or(index))
            })
            .collect();
        sorted.sort_unstable();
        sorted
    })
}

/// The static table's index of (`name`, `value`), and of the first entry named `name`:
/// a binary search, where each field of each response would otherwise scan the table.
fn static_index(name: &[u8], value: &[u8]) -> (Option<usize>, Option<usize>) {
    let sorted = sorted_static();
    match sorted.binary_search_by(|(entry, _, _)| (entry.0, entry.1).cmp(&(name, value))) {
        Ok(at) => (Some(sorted[at].1), Some(sorted[at].2)),
        Err(at) => {
            // Entries of one name sort together: a neighbour of the gap has it, if any.
            let named = [at.checked_sub(1), Some(at)]
                .into_iter()
                .flatten()
                .filter_map(|i| sorted.get(i))
                .find(|(entry, _, _)| entry.0 == name)
                .map(|&(_, _, first)| first);
            (None, named)
        }
    }
}

fn static_entry(is_static: u8, index: u64) -> Result<(&'static [u8], &'static [u8]), Error> {
    if is_static == 0 {
        return Err(Error::Invalid);
    }
    let index = usize::try_from(index).map_err(|_| Error::Invalid)?;
    STATIC.get(index).copied().ok_or(Error::Invalid)
}

/// A prefixed integer (RFC 7541 §5.1) whose prefix is the low `bits` of the first byte.
pub(crate) fn integer(input: &mut &[u8], bits: u32) -> Result<u64, Error> {
    let (&first, mut rest) = input.split_first().ok_or(Error::Truncated)?;
    let max = (1u64 << bits) - 1;
    let mut value = u64::from(first) & max;
    if value == max {
        let mut shift = 0u32;
        loop {
            let (&byte, tail) = rest.split_first().ok_or(Error::Truncated)?;
            rest = tail;
            // 62 bits is QUIC's own bound on every length and index.
            if shift > 56 {
                return Err(Error::Invalid);
            }
            value += u64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
    }
    *input = rest;
    Ok(value)
}

/// A string literal whose H flag sits just above a `bits`-bit length prefix.
fn string(input: &mut &[u8], bits: u32) -> Result<Vec<u8>, Error> {
    let huffman = input.first().is_some_and(|b| b & (1 << bits) != 0);
    let len = integer(input, bits)?;
    let len = usize::try_from(len).map_err(|_| Error::Invalid)?;
    if len > input.len() {
        return Err(Error::Truncated);
    }
    let (raw, rest) = input.split_at(len);
    *input = rest;
    if huffman {
        huffman::decode(raw).ok_or(Error::Invalid)
    } else {
        Ok(raw.to_vec())
    }
}

fn put_integer(out: &mut Vec<u8>, flags: u8, bits: u32, value: u64) {
    let max = (1u64 << bits) - 1;
    if value < max {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max as u8);
    let mut rest = value - max;
    while rest >= 0x80 {
        out.push((rest as u8 & 0x7f) | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

#[cfg(test)]
mod tests;
