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
    let table = by_length();
    let mut out = Vec::with_capacity(input.len() * 8 / 5);
    let mut code: u32 = 0;
    let mut len: u32 = 0;
    for &byte in input {
        for shift in (0..8).rev() {
            code = (code << 1) | u32::from((byte >> shift) & 1);
            len += 1;
            if len < MIN_LEN {
                continue;
            }
            let group = &table[len as usize];
            if let Ok(at) = group.binary_search_by_key(&code, |&(c, _)| c) {
                out.push(group[at].1);
                code = 0;
                len = 0;
            } else if len >= MAX_LEN {
                return None;
            }
        }
    }
    // What is left must be a prefix of EOS (all ones), shorter than a byte.
    (len < 8 && code == (1 << len) - 1).then_some(out)
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
