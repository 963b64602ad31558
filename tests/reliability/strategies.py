"""Hypothesis strategies for HTTP/1.1 request bytes and WebSocket client frames.

Requests are built from parts (request line, headers, body framing) that are mostly
valid, with a few known-bad ingredients, then optionally mutated byte by byte, so the
fuzz spends its time near the parser's edges instead of on random noise that dies at
the first byte. Frames come with a model of what RFC 6455 (as wsproto applies it)
says about them, used as an oracle.
"""

from __future__ import annotations

import codecs
import os
import struct
from dataclasses import dataclass

from hypothesis import strategies as st

from .helpers import ws_frame

SOAK = os.environ.get("KITPY_SOAK") == "1"


def examples(ci: int, soak: int) -> int:
    return soak if SOAK else ci


# -- HTTP --------------------------------------------------------------------------------

METHODS = [
    b"GET",
    b"POST",
    b"PUT",
    b"HEAD",
    b"OPTIONS",
    b"DELETE",
    b"PATCH",
    b"CONNECT",
    b"TRACE",
    b"get",
    b"G\x00T",
    b"",
    b"GET GET",
    b"X" * 40,
]
TARGETS = [
    b"/",
    b"/ping",
    b"/echo",
    b"/stream",
    b"/echo?a=1&b=%zz",
    b"/%2e%2e/secret",
    b"*",
    b"http://127.0.0.1/ping",
    b"/a b",
    b"/\xff",
    b"/" + b"a" * 3000,
    b"",
    b"/ping#frag",
    b"//ping",
    b"/ping/",
]
VERSIONS = [
    b"HTTP/1.1",
    b"HTTP/1.0",
    b"HTTP/2.0",
    b"HTTP/1.1 ",
    b"http/1.1",
    b"HTTP/1",
    b"HTTP/9.9",
    b"HTTP/1.10",
    b"",
]
NAMES = [
    b"Host",
    b"Content-Length",
    b"Transfer-Encoding",
    b"Connection",
    b"Expect",
    b"Upgrade",
    b"X-A",
    b"Cookie",
    b"Content-Type",
    b"X-Forwarded-For",
    b"X A",
    b"X:A",
    b"",
    b"X\x00",
    b"\xff",
    b" Host",
    b"Host ",
    b"content-length",
]
VALUES = [
    b"127.0.0.1",
    b"0",
    b"5",
    b"-1",
    b"+5",
    b"5, 5",
    b"99999999999999999999",
    b"chunked",
    b"gzip, chunked",
    b"chunked, gzip",
    b"close",
    b"keep-alive",
    b"100-continue",
    b"websocket",
    b"a\rb",
    b"a\nb",
    b"a\x00b",
    b"\xff\xfe",
    b" padded ",
    b"",
    b"x" * 5000,
]


@st.composite
def header_lines(draw: st.DrawFn) -> list[bytes]:
    lines = []
    if draw(st.booleans()) or draw(st.booleans()):
        lines.append(b"Host: 127.0.0.1")
    for _ in range(draw(st.integers(0, 6))):
        name = draw(st.sampled_from(NAMES) | st.binary(min_size=0, max_size=12))
        value = draw(st.sampled_from(VALUES) | st.binary(max_size=40))
        sep = draw(st.sampled_from([b": ", b":", b" : ", b":\t"]))
        lines.append(name + sep + value)
    if draw(st.integers(0, 9)) == 0:  # obs-fold
        lines.append(b" folded continuation")
    return lines


@st.composite
def body_part(draw: st.DrawFn) -> tuple[list[bytes], bytes]:
    """(framing header lines, body bytes)."""
    body = draw(st.binary(max_size=300))
    kind = draw(
        st.sampled_from(
            ["none", "cl", "cl_wrong", "cl_dup", "chunked", "chunked_bad", "both", "big"]
        )
    )
    if kind == "none":
        return [], b""
    if kind == "cl":
        return [b"Content-Length: %d" % len(body)], body
    if kind == "cl_wrong":
        return [b"Content-Length: %d" % (len(body) + draw(st.integers(-5, 5)))], body
    if kind == "cl_dup":
        return [b"Content-Length: %d" % len(body), b"Content-Length: %d" % len(body)], body
    if kind == "big":
        return [b"Content-Length: %d" % draw(st.integers(65537, 10**12))], body
    chunks = b""
    for piece in [body[i : i + 50] for i in range(0, len(body), 50)]:
        chunks += b"%x\r\n" % len(piece) + piece + b"\r\n"
    chunks += b"0\r\n\r\n"
    if kind == "chunked_bad":
        chunks = (
            draw(
                st.sampled_from(
                    [
                        b"zz\r\n",
                        b"-1\r\n",
                        b"ffffffffffffffffff\r\n",
                        b"5\r\nabc\r\n",
                        b"5 ;x\r\nabcde\r\n0\r\n\r\n",
                    ]
                )
            )
            + chunks
        )
    framing = [b"Transfer-Encoding: chunked"]
    if kind == "both":
        framing.append(b"Content-Length: %d" % len(body))
    return framing, chunks


@st.composite
def http_request(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(METHODS))
    target = draw(st.sampled_from(TARGETS))
    version = draw(
        st.sampled_from(VERSIONS[:2]) if draw(st.integers(0, 4)) else st.sampled_from(VERSIONS)
    )
    framing, body = draw(body_part())
    lines = [method + b" " + target + b" " + version, *draw(header_lines()), *framing]
    lines = draw(st.permutations(lines[1:])) if draw(st.booleans()) else lines[1:]
    lines = [method + b" " + target + b" " + version, *lines]
    eol = b"\r\n" if draw(st.integers(0, 5)) else draw(st.sampled_from([b"\n", b"\r", b"\r\r\n"]))
    return eol.join(lines) + eol + eol + body


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(0, 4))):
        if not data:
            break
        op = draw(st.sampled_from(["flip", "insert", "delete", "dup", "truncate", "special"]))
        pos = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 8))]
        elif op == "dup":
            end = min(len(data), pos + draw(st.integers(1, 64)))
            data[pos:pos] = data[pos:end]
        elif op == "truncate":
            del data[pos:]
        else:
            data[pos:pos] = draw(
                st.sampled_from(
                    [b"\r\n", b"\n", b"\r", b"\x00", b"\r\n\r\n", b" ", b":", b"\t", b"\xff", b"%"]
                )
            )
    return bytes(data)


def http_inputs() -> st.SearchStrategy[bytes]:
    """Structured requests (maybe pipelined), mutated or not, and plain random bytes."""
    one = http_request()
    pipelined = st.lists(one, min_size=1, max_size=3).map(b"".join)
    return st.one_of(
        pipelined,
        mutated(pipelined),
        st.binary(max_size=200),
    )


def splits(data: bytes) -> st.SearchStrategy[list[bytes]]:
    """``data`` cut into pieces at random points."""
    if len(data) < 2:
        return st.just([data])
    return st.lists(st.integers(1, len(data) - 1), max_size=8, unique=True).map(
        lambda cuts: [
            data[a:b] for a, b in zip([0, *sorted(cuts)], [*sorted(cuts), len(data)], strict=True)
        ]
    )


# -- WebSocket -----------------------------------------------------------------------------

VALID_CLOSE = {*range(1000, 1004), *range(1007, 1014), *range(3000, 5000)}


@dataclass
class FrameSpec:
    opcode: int
    payload: bytes
    fin: bool = True
    rsv: int = 0
    mask: bool = True
    #: Encode the length in more bytes than needed (non-minimal): invalid.
    long_length: bool = False

    def encode(self) -> bytes:
        if self.long_length and len(self.payload) < 126:
            first = (0x80 if self.fin else 0) | (self.rsv << 4) | self.opcode
            head = struct.pack("!BBH", first, (0x80 if self.mask else 0) | 126, len(self.payload))
            key = b"\x01\x02\x03\x04"
            body = bytes(b ^ key[i % 4] for i, b in enumerate(self.payload))
            return head + (key + body if self.mask else self.payload)
        return ws_frame(self.opcode, self.payload, fin=self.fin, rsv=self.rsv, mask=self.mask)


@st.composite
def frame_specs(draw: st.DrawFn) -> FrameSpec:
    kind = draw(st.sampled_from(["text", "binary", "cont", "ping", "pong", "close", "weird"]))
    fin = (
        draw(st.booleans()) if kind in ("text", "binary", "cont") else (draw(st.integers(0, 9)) > 0)
    )
    rsv = 0 if draw(st.integers(0, 9)) else draw(st.integers(1, 7))
    mask = draw(st.integers(0, 14)) > 0
    long_length = draw(st.integers(0, 19)) == 0
    if kind == "text":
        if draw(st.integers(0, 4)):
            payload = draw(st.text(max_size=40)).encode("utf-8", "surrogatepass")
        else:
            payload = draw(st.binary(max_size=20))
        return FrameSpec(0x1, payload, fin, rsv, mask, long_length)
    if kind == "binary":
        size = draw(st.sampled_from([0, 1, 10, 125, 126, 200, 1000, 5000]))
        return FrameSpec(0x2, bytes(size), fin, rsv, mask, long_length)
    if kind == "cont":
        return FrameSpec(0x0, draw(st.binary(max_size=30)), fin, rsv, mask, long_length)
    if kind in ("ping", "pong"):
        size = draw(st.sampled_from([0, 5, 125, 126, 300]))
        return FrameSpec(0x9 if kind == "ping" else 0xA, bytes(size), fin, rsv, mask, long_length)
    if kind == "close":
        choice = draw(st.integers(0, 4))
        if choice == 0:
            payload = b""
        elif choice == 1:
            payload = b"\x03"
        else:
            code = draw(
                st.sampled_from(
                    [
                        1000,
                        1001,
                        1002,
                        1004,
                        1005,
                        1006,
                        1007,
                        1012,
                        1014,
                        1015,
                        999,
                        2000,
                        3000,
                        4999,
                        5000,
                        65535,
                    ]
                )
            )
            reason = draw(st.sampled_from([b"", b"bye", b"\xff\xfe", "\u00e9".encode()]))
            payload = struct.pack("!H", code) + reason
        return FrameSpec(0x8, payload, fin, rsv, mask, long_length)
    return FrameSpec(draw(st.sampled_from([3, 4, 5, 6, 7, 0xB, 0xC, 0xF])), b"x", fin, rsv, mask)


@dataclass
class Expected:
    messages: list[str | bytes]
    #: Close code the server must answer with (1002/1007/1009), or None.
    error: int | None
    #: The peer's close code, when a valid close frame came before any error.
    close: int | None


def model(frames: list[FrameSpec], limit: int) -> Expected:
    """What the server must make of ``frames`` (RFC 6455 as wsproto enforces it)."""
    messages: list[str | bytes] = []
    current: list[bytes] | None = None
    current_text = False
    decoder = codecs.getincrementaldecoder("utf-8")()
    size = 0
    for frame in frames:
        if not frame.mask or frame.rsv or frame.opcode in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF):
            return Expected(messages, 1002, None)
        if frame.long_length and len(frame.payload) < 126:  # encode() ignores it above
            return Expected(messages, 1002, None)
        if frame.opcode >= 8:
            if len(frame.payload) > 125 or not frame.fin:
                return Expected(messages, 1002, None)
            if frame.opcode == 0x8:
                payload = frame.payload
                if len(payload) == 1:
                    return Expected(messages, 1002, None)
                if not payload:
                    return Expected(messages, None, 1005)
                code = struct.unpack("!H", payload[:2])[0]
                if code not in VALID_CLOSE:
                    return Expected(messages, 1002, None)
                try:
                    payload[2:].decode("utf-8")
                except UnicodeDecodeError:
                    return Expected(messages, 1007, None)
                return Expected(messages, None, code)
            continue  # ping / pong
        if frame.opcode == 0x0:
            if current is None:
                return Expected(messages, 1002, None)
        else:
            if current is not None:
                return Expected(messages, 1002, None)
            current, current_text, size = [], frame.opcode == 0x1, 0
            decoder.reset()
        if current_text:
            try:
                decoder.decode(frame.payload, final=frame.fin)
            except UnicodeDecodeError:
                return Expected(messages, 1007, None)
        size += len(frame.payload)
        if size > limit:
            return Expected(messages, 1009, None)
        current.append(frame.payload)
        if frame.fin:
            data = b"".join(current)
            messages.append(data.decode("utf-8") if current_text else data)
            current = None
    return Expected(messages, None, None)
