//! Huffman-coded string literals (RFC 7541 §5.2), decoding only: ruvicorn sends its field
//! values as plain literals, but clients usually Huffman-code theirs.

use std::sync::OnceLock;

use super::huffman_table::CODES;

/// The shortest and longest codes of the table (EOS, 30 bits, is longer and never valid).
const MIN_LEN: u32 = 5;
const MAX_LEN: u32 = 30;

/// Codes grouped by length, each group sorted by code: `(code, byte)`.
fn by_length() -> &'static [Vec<(u32, u8)>] {
    static TABLE: OnceLock<Vec<Vec<(u32, u8)>>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = vec![Vec::new(); MAX_LEN as usize + 1];
        for (byte, &(code, len)) in (0..=u8::MAX).zip(CODES.iter()) {
            table[usize::from(len)].push((code, byte));
        }
        for group in &mut table {
            group.sort_unstable();
        }
        table
    })
}

/// Decode `input`; `None` when it holds EOS, a code that does not exist, or padding that is
/// longer than 7 bits or not all ones (RFC 7541 §5.2: each is a decoding error).
pub(crate) fn decode(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() * 8 / 5);
    let mut reader = Reader::default();
    for &byte in input {
        if !reader.byte(byte, |symbol| out.push(symbol)) {
            return None;
        }
    }
    reader.end().then_some(out)
}

/// A Huffman-coded string read a byte at a time, so that a string split across pieces of
/// input decodes as a whole one does, and a caller that needs only the symbols' count (the
/// HTTP/2 field block check) allocates nothing: the bits of the code being read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reader {
    code: u32,
    len: u32,
}

impl Reader {
    /// Read `byte`, handing each symbol it completes to `symbol`; false at EOS or a code
    /// that does not exist.
    pub(crate) fn byte(&mut self, byte: u8, mut symbol: impl FnMut(u8)) -> bool {
        let table = by_length();
        for shift in (0..8).rev() {
            self.code = (self.code << 1) | u32::from((byte >> shift) & 1);
            self.len += 1;
            if self.len < MIN_LEN {
                continue;
            }
            let group = &table[self.len as usize];
            if let Ok(at) = group.binary_search_by_key(&self.code, |&(c, _)| c) {
                symbol(group[at].1);
                self.code = 0;
                self.len = 0;
            } else if self.len >= MAX_LEN {
                return false;
            }
        }
        true
    }

    /// Whether the string may end here: what is left is a prefix of EOS (all ones), shorter
    /// than a byte.
    pub(crate) fn end(&self) -> bool {
        self.len < 8 && self.code == (1 << self.len) - 1
    }
}

#[cfg(test)]
pub(crate) fn encode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut acc: u64 = 0;
    let mut bits = 0;
    for &byte in input {
        let (code, len) = CODES[usize::from(byte)];
        acc = (acc << len) | u64::from(code);
        bits += u32::from(len);
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    if bits > 0 {
        out.push(((acc << (8 - bits)) as u8) | ((1u8 << (8 - bits)) - 1));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7541_example() {
        // RFC 7541 C.4.1: "www.example.com".
        let coded = [
            0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
        ];
        assert_eq!(decode(&coded).as_deref(), Some(&b"www.example.com"[..]));
        assert_eq!(encode(b"www.example.com"), coded);
    }

    #[test]
    fn every_byte_round_trips() {
        let all: Vec<u8> = (0..=u8::MAX).collect();
        assert_eq!(decode(&encode(&all)), Some(all));
    }

    #[test]
    fn bad_padding_and_eos_fail() {
        // '0' is 00000; padding of zeros is invalid.
        assert_eq!(decode(&[0b0000_0000]), None);
        // A whole byte of padding is too long.
        assert_eq!(decode(&[0b0000_0111, 0xff]), None);
        // EOS itself (30 ones) inside the string.
        assert_eq!(decode(&[0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(decode(&[]), Some(Vec::new()));
    }
}
