"""PROXY protocol headers as a TCP load balancer sends them (for ``--proxy-protocol``)."""

from __future__ import annotations

import ipaddress
import struct

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(src: str, dst: str, sport: int, dport: int) -> bytes:
    family = "TCP4" if ipaddress.ip_address(src).version == 4 else "TCP6"
    return f"PROXY {family} {src} {dst} {sport} {dport}\r\n".encode()


def v2(src: str, dst: str, sport: int, dport: int, *, tlvs: bytes = b"", command: int = 1) -> bytes:
    """A v2 header for the two addresses (``command`` 1 PROXY, 0 LOCAL), ``tlvs`` after them."""
    a, b = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    family = 0x11 if a.version == 4 else 0x21
    body = a.packed + b.packed + struct.pack("!HH", sport, dport) + tlvs
    head = V2_SIGNATURE + bytes([0x20 | command, family])
    return head + struct.pack("!H", len(body)) + body
