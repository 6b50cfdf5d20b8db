"""Near-valid HTTP/1.1 requests for the differential test against h11.

Each request is a valid one with, now and then, one of the deviations that smuggling and
parser-confusion attacks use: chunk extensions with good and bad quoting, leading zeros,
whitespace in odd places, bare LF or CR, duplicated framing headers, odd Host ports and
authorities, obs-fold, trailers, and always a pipelined follow-up request.

A request is a list of parts. A part is bytes, or a pair ``(wire, reference)``: the wire
bytes go to ruvicorn, the reference bytes go to h11 in their place. A pair marks a construct
RFC 9112 admits but h11 does not read, rewritten to an equivalent that h11 reads, so the
comparison stays about framing:

- BWS before ``;`` in a chunk extension (RFC 9112 7.1.1; h11 wants ``;`` right after the
  size): the reference drops the whitespace.
- A chunk size of more than 20 hex digits (leading zeros; h11 caps the digits at 20): the
  reference drops the zeros.
- An empty line before a request-line (RFC 9112 2.2 says to ignore it; h11 refuses it): the
  reference drops the line.
"""

from __future__ import annotations

import random
import string

Part = bytes | tuple[bytes, bytes]

TCHAR = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
PCHAR = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@"
FRAMING_NAMES = {"host", "content-length", "transfer-encoding", "connection", "expect"}
H11_MAX_SIZE_DIGITS = 20

VALID_HOSTS = [b"x", b"example.com:8080", b"[::1]:1", b"10.0.0.1", b"x:", b"[v1.a]", b""]
ODD_HOSTS = [
    b"x:8a",
    b"x:80:80",
    b":80",
    b"[::1",
    b"[::1]x",
    b"[::g]",
    b"u@x",
    b"x y",
    b"x%zz",
    b"a, b",
    b"x:+1",
    b"x:-1",
]
ODD_TARGETS = [
    b"/a|b{c}^`",
    b"/%zz?%",
    b"http://h:80/p?q",
    b"HTTP://h",
    b"http://[::1]:80/p",
    b"http://h:8a/p",
    b"http://u@h/p",
    b"http://:80/p",
    b"http://[::1/p",
    b"*",
    b"h:80",
    b"/p#f",
    b"/p\x7f",
    b"/p\x01",
    b"p",
]


def wire(parts: list[Part]) -> bytes:
    return b"".join(p if isinstance(p, bytes) else p[0] for p in parts)


def reference(parts: list[Part]) -> bytes:
    return b"".join(p if isinstance(p, bytes) else p[1] for p in parts)


class Mutator:
    """Decides, with a seeded generator, whether and how each element deviates."""

    def __init__(self, rng: random.Random, rate: float) -> None:
        self.rng = rng
        self.rate = rate

    def odd(self, scale: float = 1.0) -> bool:
        return self.rng.random() < self.rate * scale

    def pick(self, normal: bytes, odd: list[bytes], scale: float = 1.0) -> bytes:
        return self.rng.choice(odd) if self.odd(scale) else normal

    def eol(self) -> bytes:
        return self.pick(b"\r\n", [b"\n", b"\r", b"\r\r\n", b"\n\r"], scale=0.3)

    def token(self, lo: int = 1, hi: int = 8) -> bytes:
        return "".join(self.rng.choice(TCHAR) for _ in range(self.rng.randint(lo, hi))).encode()


def request_target(m: Mutator) -> bytes:
    if m.odd():
        return m.rng.choice(ODD_TARGETS)
    path = "/" + "".join(m.rng.choice(PCHAR) for _ in range(m.rng.randint(0, 12)))
    if m.rng.random() < 0.3:
        path += "?" + "".join(m.rng.choice(PCHAR + "/?") for _ in range(m.rng.randint(1, 8)))
    return path.encode()


def field_line(m: Mutator) -> bytes:
    name = m.token()
    while name.decode().lower() in FRAMING_NAMES:
        name = m.token()
    value = m.rng.choice([b"v", b"a b", b"caf\xc3\xa9", b'"q"', b"x\ty", m.token()])
    ows = [b"", b" ", b"\t", b" \t "]
    line = name + b":" + m.rng.choice(ows) + value + m.rng.choice(ows)
    if m.odd():
        line = m.rng.choice(
            [
                name + b" : " + value,
                name + b"\t: " + value,
                b": " + value,
                name + b"(x): " + value,
                name + b": a\x00b",
                name + b": a\x01b",
                name + b": a\x0bb",
                name + b": a\x7fb",
                name + b": a\r\n b",  # obs-fold
                name + b": a\r\n\tb",  # obs-fold
                name + b": a\rb",
                name + b": a\nb",
                name,  # no colon
            ]
        )
    return line


def length_lines(m: Mutator, n: int) -> list[bytes]:
    normal = [b"Content-Length: %d" % n]
    if not m.odd(2):
        return normal
    return m.rng.choice(
        [
            normal * 2,
            [b"Content-Length: %d" % n, b"Content-Length: %d" % (n + 1)],
            [b"Content-Length: %d, %d" % (n, n)],
            [b"Content-Length: 00%d" % n],  # valid
            [b"Content-Length:  %d \t" % n],  # valid
            [b"Content-Length: +%d" % n],
            [b"Content-Length: %x" % (n + 10)],
            [b"Content-Length: %d" % n, b"Transfer-Encoding: chunked"],
            [b"Content-Length : %d" % n],
            [b"Content-Length: %d" % n, b"X: y\r\n Content-Length: 0"],
        ]
    )


def chunked_lines(m: Mutator) -> list[bytes]:
    normal = [b"Transfer-Encoding: chunked"]
    if not m.odd(2):
        return normal
    return m.rng.choice(
        [
            [b"Transfer-Encoding: Chunked"],  # valid
            [b"Transfer-Encoding:\tchunked "],  # valid
            normal * 2,
            [b"Transfer-Encoding: chunked, chunked"],
            [b"Transfer-Encoding: xchunked"],
            [b"Transfer-Encoding: \x0bchunked"],
            [b"Transfer-Encoding : chunked"],
            [b"Transfer-Encoding: chunked", b"Content-Length: 3"],
            [b"Transfer-Encoding: identity", b"Transfer-Encoding: chunked"],
        ]
    )


VALID_EXTENSIONS = [
    b";a",
    b";a=b",
    b";a=b;c",
    b';a="x y"',
    b';a="q\\"s\\\\"',
    b';a=""',
    b';a="caf\xc3\xa9"',
    b'; a = "v" ;b\t=\tc',
    b';a=";b=c"',
]
ODD_EXTENSIONS = [
    b';a="x',
    b';a="x\\"',
    b';a="x\x00"',
    b';a="x\x01"',
    b';a="x\x7f"',
    b';a="\\\x00"',
    b';a="x"y',
    b';a=b"c"',
    b';"a"=b',
    b";a=b ",
    b";a\t",
    b";",
    b";=b",
    b";a=",
    b";a=b,c",
    b";a/b",
    b";a\x01",
    b";\xff",
    b";a\rb",
]


def size_line(m: Mutator, size: int) -> list[Part]:
    digits = (b"%X" if m.rng.random() < 0.2 else b"%x") % size
    if m.rng.random() < 0.15:  # leading zeros, valid at any length
        zeros = b"0" * m.rng.randint(1, 25)
        padded = zeros + digits
        if len(padded) > H11_MAX_SIZE_DIGITS:
            parts: list[Part] = [(padded, digits)]
        else:
            parts = [padded]
    else:
        parts = [digits]
    if m.odd(0.5):
        parts[-1] = m.rng.choice([b" ", b"\t", b"+", b"0x", b""]) + digits
    if m.rng.random() < 0.25:
        ext = m.rng.choice(VALID_EXTENSIONS)
        if m.rng.random() < 0.3:
            parts.append((m.rng.choice([b" ", b"\t", b" \t"]), b""))  # BWS before ";"
        parts.append(ext)
    if m.odd(1.5):
        parts.append(m.rng.choice(ODD_EXTENSIONS))
    if m.odd(0.5):
        parts.append(b" ")  # whitespace right before the CRLF
    parts.append(m.eol())
    return parts


def chunked_body(m: Mutator, payload: bytes) -> list[Part]:
    parts: list[Part] = []
    i = 0
    while i < len(payload):
        n = m.rng.randint(1, max(1, len(payload) // 2))
        piece = payload[i : i + n]
        i += n
        parts += size_line(m, len(piece))
        parts.append(piece)
        parts.append(m.pick(b"\r\n", [b"\n", b"\r", b"", b"x\r\n", b"\r\n\r\n"], scale=0.7))
    parts += size_line(m, 0)
    for _ in range(m.rng.choice([0, 0, 1, 2])):
        trailer = m.rng.choice(
            [
                b"X-Trailer: " + m.token(),
                b"Content-Length: 100",
                b"Transfer-Encoding: chunked",
                b"Host: evil",
                b"X-Empty:",
            ]
        )
        if m.odd():
            trailer = m.rng.choice(
                [b"X-T : v", b": v", b"X-T: a\x00b", b"X-T: a\r\n b", b" X-T: v", b"X-T"]
            )
        parts += [trailer, m.eol()]
    parts.append(m.eol())
    return parts


def near_valid_request(rng: random.Random, index: int, rate: float = 0.08) -> list[Part]:
    """One request (head and body), deviating at about ``rate`` of its decision points,
    followed by the pipelined ``GET /next/<index>``."""
    m = Mutator(rng, rate)
    parts: list[Part] = []
    if m.odd(0.5):
        parts.append((b"\r\n", b""))
    method = rng.choice([b"GET", b"POST", b"PUT", b"OPTIONS", m.token()])
    sp = [b"  ", b"\t", b" \t"]
    version = m.pick(b"HTTP/1.1", [b"HTTP/1.2", b"http/1.1", b"HTTP/1.1 ", b"HTTP/2.0"], 0.5)
    line = method + m.pick(b" ", sp, 0.5) + request_target(m) + m.pick(b" ", sp, 0.5) + version
    parts += [line, m.eol()]
    lines: list[bytes] = []
    if not m.odd(0.5):
        lines.append(b"Host: " + m.pick(rng.choice(VALID_HOSTS), ODD_HOSTS, 2))
    if m.odd(0.5):
        lines.append(b"Host: " + rng.choice(VALID_HOSTS))
    lines += [field_line(m) for _ in range(rng.randint(0, 4))]
    framing = rng.choice(["none", "length", "chunked", "chunked"])
    payload = rng.randbytes(rng.choice([0, 1, 5, 17, 300]))
    body: list[Part] = []
    if framing == "length":
        lines += length_lines(m, len(payload))
        body = [payload]
    elif framing == "chunked":
        lines += chunked_lines(m)
        body = chunked_body(m, payload)
    rng.shuffle(lines)
    for field in lines:
        parts += [field, m.eol()]
    parts.append(m.eol())
    parts += body
    if m.odd(0.5):
        parts.append((b"\r\n", b""))
    parts.append(b"GET /next/%d HTTP/1.1\r\nHost: x\r\n\r\n" % index)
    return parts
