use super::*;

fn hex(text: &str) -> Vec<u8> {
    let nibbles: Vec<u8> = text
        .chars()
        .filter_map(|c| c.to_digit(16))
        .map(|d| d as u8)
        .collect();
    assert_eq!(nibbles.len() % 2, 0, "whole bytes: {text}");
    nibbles.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
}

/// Read `block` as one field block, a byte at a time.
fn block(check: &mut FieldCheck, block: &[u8], trailers: bool) -> Result<(), Fault> {
    check.start_block(trailers);
    for &byte in block {
        check.byte(byte)?;
    }
    if check.may_end() {
        Ok(())
    } else {
        Err(Fault::Compression)
    }
}

/// Each block read in turn; the table's size and entry count after each.
fn blocks(texts: &[&str]) -> Vec<(usize, usize)> {
    let mut check = FieldCheck::new();
    texts
        .iter()
        .map(|text| {
            assert_eq!(block(&mut check, &hex(text), false), Ok(()), "{text}");
            (check.size, check.table.len())
        })
        .collect()
}

#[test]
fn rfc7541_c3_requests_without_huffman() {
    let sizes = blocks(&[
        "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
        "8286 84be 5808 6e6f 2d63 6163 6865",
        "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
    ]);
    assert_eq!(sizes, [(57, 1), (110, 2), (164, 3)]);
}

#[test]
fn rfc7541_c4_requests_with_huffman() {
    let sizes = blocks(&[
        "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
        "8286 84be 5886 a8eb 1064 9cbf",
        "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
    ]);
    assert_eq!(sizes, [(57, 1), (110, 2), (164, 3)]);
}

#[test]
fn rfc7541_c5_responses_with_eviction() {
    // C.5 decodes with a 256-byte table: a size update down to it comes first.
    let sizes = blocks(&[
        "3fe1 01 4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230
         3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861
         6d70 6c65 2e63 6f6d",
        "4803 3330 37c1 c0bf",
        "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
         54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
         5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
         3d31",
    ]);
    assert_eq!(sizes, [(222, 4), (222, 4), (215, 3)]);
}

#[test]
fn undecodable_blocks_are_compression_errors() {
    let get = "8286 84";
    for (case, text) in [
        ("index 0", "80"),
        ("indexed past the tables", "ff07"),
        ("literal name index past the tables", "7f00 0176"),
        ("literal without indexing, name past", "0f30 0176"),
        ("size update after a field", "82 20"),
        ("Huffman string holding EOS", "0084 ffff ffff 00"),
        ("Huffman padding longer than 7 bits", "0082 1fff 00"),
        ("Huffman padding not a prefix of EOS", "0081 18 00"),
        ("integer of more than five bytes", "ffff ffff ffff 01"),
        ("string longer than the block", "000a 6162"),
        ("truncated field", "40"),
        ("truncated integer", "ff"),
    ] {
        let bytes = hex(&format!("{get} {text}"));
        let mut check = FieldCheck::new();
        assert_eq!(
            block(&mut check, &bytes, false),
            Err(Fault::Compression),
            "{case}"
        );
    }
}

#[test]
fn size_updates_are_bounded_by_the_setting() {
    let mut check = FieldCheck::new();
    // 4096 = 31 + 4065: 0x3f, 0xe1 0x1f.
    assert_eq!(block(&mut check, &hex("3fe1 1f 3fe1 1f 82"), false), Ok(()));
    let mut check = FieldCheck::new();
    assert_eq!(
        block(&mut check, &hex("3fe2 1f 82"), false),
        Err(Fault::Compression)
    );
    // A size update of 0 empties the table; the dynamic entry is then gone.
    let mut check = FieldCheck::new();
    assert_eq!(block(&mut check, &hex("4001 6101 62"), false), Ok(()));
    assert_eq!(block(&mut check, &hex("be"), false), Ok(()));
    assert_eq!(
        block(&mut check, &hex("20 be"), false),
        Err(Fault::Compression)
    );
}

#[test]
fn pseudo_headers_in_trailers_are_reported() {
    for text in ["84", "44 012f", "00 033a 7878 00"] {
        // Indexed :path; a literal with the name :path indexed; a literal name ":xx".
        let bytes = hex(text);
        let mut check = FieldCheck::new();
        check.start_block(true);
        let fault = bytes.iter().try_for_each(|&b| check.byte(b));
        assert_eq!(fault, Err(Fault::PseudoInTrailers), "{text}");
        let mut check = FieldCheck::new();
        assert_eq!(block(&mut check, &bytes, false), Ok(()), "{text} in a head");
    }
    // A pseudo-header entry added to the dynamic table is one when referred to later.
    let mut check = FieldCheck::new();
    assert_eq!(block(&mut check, &hex("44 012f"), false), Ok(()));
    assert_eq!(
        block(&mut check, &hex("be"), true),
        Err(Fault::PseudoInTrailers)
    );
    assert_eq!(block(&mut check, &hex("0f01 0178"), true), Ok(()));
}

#[test]
fn huffman_coded_pseudo_names_are_seen() {
    let name = huffman::encode(b":path");
    let mut bytes = vec![0x00, 0x80 | name.len() as u8];
    bytes.extend(&name);
    bytes.extend(hex("012f"));
    let mut check = FieldCheck::new();
    assert_eq!(
        block(&mut check, &bytes, true),
        Err(Fault::PseudoInTrailers)
    );
    let plain = huffman::encode(b"x-path");
    let mut bytes = vec![0x00, 0x80 | plain.len() as u8];
    bytes.extend(&plain);
    bytes.extend(hex("012f"));
    let mut check = FieldCheck::new();
    assert_eq!(block(&mut check, &bytes, true), Ok(()));
}

#[test]
fn a_hash_in_a_huffman_coded_path_is_seen() {
    let with = |name: &[u8], value: &[u8]| {
        let name = huffman::encode(name);
        let value = huffman::encode(value);
        let mut bytes = vec![0x00, 0x80 | name.len() as u8];
        bytes.extend(&name);
        bytes.push(0x80 | value.len() as u8);
        bytes.extend(&value);
        let mut check = FieldCheck::new();
        assert_eq!(block(&mut check, &bytes, false), Ok(()));
        check.take_hash_in_path()
    };
    assert!(with(b":path", b"/a#b"));
    assert!(!with(b":path", b"/a?b"));
    assert!(!with(b":paths", b"/a#b"), "another name");
    assert!(!with(b"x-path", b"/a#b"), "another name");
    assert!(!with(b":pat", b"/a#b"), "another name");
}
