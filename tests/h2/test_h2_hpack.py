"""RFC 7541 (HPACK) as the server's decoder must apply it: every decoding error is a connection
error of type COMPRESSION_ERROR (RFC 9113 §4.3); every valid representation decodes."""

from __future__ import annotations

import pytest
from h2client import (
    ErrorCodes,
    F,
    H2Conn,
    T,
    Target,
    block,
    integer,
    raw,
    request,
)
from hpack import Encoder
from hyperframe.frame import SettingsFrame

GET = block(request())


def literal(name: bytes, value: bytes = b"v", huffman_name: bool = False) -> bytes:
    """§6.2.2 literal field without indexing, new name."""
    return (
        b"\x00" + integer(len(name), 7, 0x80 * huffman_name) + name + integer(len(value), 7) + value
    )


BAD_BLOCKS = {
    # §2.3.3 index address space, §6.1
    "indexed-field-index-0": GET + b"\x80",
    "indexed-field-past-the-tables": GET + integer(70, 7, 0x80),
    "literal-name-index-past-the-tables": GET + integer(62, 6, 0x40) + b"\x01v",
    "literal-without-indexing-name-index-past": GET + integer(63, 4) + b"\x01v",
    # §4.2 / §6.3 dynamic table size updates
    "size-update-after-a-field": GET[:1] + integer(0, 5, 0x20) + GET[1:],
    # §5.2 Huffman string literals
    "huffman-containing-eos": GET + literal(b"\xff\xff\xff\xff", huffman_name=True),
    "huffman-padding-longer-than-7-bits": GET + literal(b"\x1f\xff", huffman_name=True),
    "huffman-padding-not-eos-prefix": GET + literal(b"\x18", huffman_name=True),
    # §5.1 / §5.2 integers and lengths
    "integer-overflow": GET + b"\xff" + b"\xff" * 10 + b"\x01",
    "string-longer-than-the-block": GET + b"\x00\x0aab",
    "truncated-field": GET + b"\x40",
}


@pytest.mark.parametrize("case", list(BAD_BLOCKS))
def test_undecodable_field_block(conn: H2Conn, case: str) -> None:
    conn.send(raw(T.HEADERS, F.END_STREAM | F.END_HEADERS, 1, BAD_BLOCKS[case]))
    conn.expect_goaway(ErrorCodes.COMPRESSION_ERROR)


def test_size_update_above_the_settings_limit(conn: H2Conn) -> None:
    limit = conn.server_settings.get(SettingsFrame.HEADER_TABLE_SIZE, 4096)
    conn.send(raw(T.HEADERS, F.END_STREAM | F.END_HEADERS, 1, integer(limit + 1, 5, 0x20) + GET))
    conn.expect_goaway(ErrorCodes.COMPRESSION_ERROR)


GOOD_BLOCKS = {
    "huffman-strings": bytes(Encoder().encode(request(extra=[("x-h", "huffman")]), huffman=True)),
    "plain-strings": bytes(Encoder().encode(request(extra=[("x-p", "plain")]), huffman=False)),
    "never-indexed": GET + b"\x10" + literal(b"x-secret")[1:],
    "size-update-to-0-first": integer(0, 5, 0x20) + GET,
    "two-size-updates-first": integer(0, 5, 0x20) + integer(4096, 5, 0x20) + GET,
    "incremental-indexing-new-name": GET + b"\x40" + literal(b"x-idx")[1:],
}


@pytest.mark.parametrize("case", list(GOOD_BLOCKS))
def test_field_representations_decode(conn: H2Conn, case: str) -> None:
    conn.send(raw(T.HEADERS, F.END_STREAM | F.END_HEADERS, 1, GOOD_BLOCKS[case]))
    assert conn.response(1).status == 200


def test_dynamic_table_entries_are_reused_across_requests(conn: H2Conn) -> None:
    """The second request is mostly references into the dynamic table the first one filled."""
    encoder = Encoder()
    fields = request(extra=[("x-repeated", "r" * 100)])
    first, second = bytes(encoder.encode(fields)), bytes(encoder.encode(fields))
    assert len(second) < len(first) // 4
    conn.send(raw(T.HEADERS, F.END_STREAM | F.END_HEADERS, 1, first))
    assert conn.response(1).status == 200
    conn.send(raw(T.HEADERS, F.END_STREAM | F.END_HEADERS, 3, second))
    assert conn.response(3).status == 200


def test_dynamic_table_eviction(h2server: Target) -> None:
    """Entries past SETTINGS_HEADER_TABLE_SIZE are evicted the same way on both sides."""
    with h2server.connect() as c:
        table = c.server_settings.get(SettingsFrame.HEADER_TABLE_SIZE, 4096)
        encoder = Encoder()
        encoder.header_table_size = table
        for i in range(6):
            fields = request(extra=[(f"x-fill-{i}", "f" * (table // 3))])
            c.send(
                raw(
                    T.HEADERS,
                    F.END_STREAM | F.END_HEADERS,
                    1 + 2 * i,
                    bytes(encoder.encode(fields)),
                )
            )
            assert c.response(1 + 2 * i).status == 200
