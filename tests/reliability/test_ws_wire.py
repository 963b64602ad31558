"""Issue #7, parts 1 and 4 over a real server: bad WebSocket frames and origins.

- every bad frame gets a close frame with 1002 (protocol), 1007 (invalid UTF-8) or 1009
  (too big), then the TCP connection is closed;
- fuzzed frame sequences: the echo endpoint returns exactly the messages the RFC 6455
  model says are valid, and the close code is the model's;
- a permessage-deflate "zip bomb" is stopped by the message limit, without a memory
  spike;
- cross-site upgrades are refused with 403 before any code runs, unless allowed.
"""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from .conftest import RunningSite, module_server, record_figure
from .helpers import (
    HOST,
    Frame,
    Server,
    close_code_of,
    get,
    wait_for,
    ws_close_frame,
    ws_frame,
    ws_handshake,
    ws_read_frames,
)
from .sites import WS, WS_CONFIG
from .strategies import SOAK, FrameSpec, examples, frame_specs, model

LIMIT = 65536

pytestmark = pytest.mark.timeout(900 if SOAK else 120)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from module_server(tmp_path_factory, WS, WS_CONFIG.format(extra=""))


BAD_FRAMES = {
    "unmasked": (ws_frame(0x1, b"hi", mask=False), 1002),
    "rsv1-without-deflate": (ws_frame(0x1, b"hi", rsv=4), 1002),
    "rsv3": (ws_frame(0x2, b"hi", rsv=1), 1002),
    "opcode-3": (ws_frame(0x3, b"hi"), 1002),
    "opcode-0xB": (ws_frame(0xB, b"hi"), 1002),
    "ping-126": (ws_frame(0x9, bytes(126)), 1002),
    "fragmented-ping": (ws_frame(0x9, b"x", fin=False), 1002),
    "continuation-first": (ws_frame(0x0, b"x"), 1002),
    "text-during-fragments": (ws_frame(0x1, b"a", fin=False) + ws_frame(0x1, b"b"), 1002),
    "close-1-byte": (ws_frame(0x8, b"\x03"), 1002),
    "close-code-999": (ws_close_frame(999), 1002),
    "close-code-1005": (ws_close_frame(1005), 1002),
    "close-code-5000": (ws_close_frame(5000), 1002),
    "close-reason-bad-utf8": (ws_close_frame(1000, b"\xff"), 1007),
    "text-bad-utf8": (ws_frame(0x1, b"\xc3\x28"), 1007),
    "text-bad-utf8-across-fragments": (
        ws_frame(0x1, b"\xe2\x82", fin=False) + ws_frame(0x0, b"\x28"),
        1007,
    ),
    "text-surrogate": (ws_frame(0x1, b"\xed\xa0\x80"), 1007),
    "too-big": (ws_frame(0x2, bytes(LIMIT + 1)), 1009),
    "too-big-in-fragments": (
        b"".join(ws_frame(0x2 if i == 0 else 0x0, bytes(8192), fin=i == 8) for i in range(9)),
        1009,
    ),
    "length-msb-set": (struct.pack("!BBQ", 0x82, 0xFF, 2**63) + b"\x00" * 4, 1002),
}


def _open(server: Server, **options: object) -> tuple[object, bytes]:
    sock, response, rest = ws_handshake(server.port, "/ws/echo", **options)  # type: ignore[arg-type]
    assert response.status == 101, (response.status, response.raw_head)
    return sock, rest


@pytest.mark.parametrize("name", sorted(BAD_FRAMES))
def test_bad_frame_gets_its_close_code(server: Server, name: str) -> None:
    data, code = BAD_FRAMES[name]
    sock, rest = _open(server)
    try:
        sock.sendall(data)  # type: ignore[attr-defined]
        frames, ending = ws_read_frames(sock, 5, rest)  # type: ignore[arg-type]
        assert close_code_of(frames) == code, (frames, ending)
        # then the server closes TCP (after our close reply, or on its own)
        try:
            sock.sendall(ws_close_frame(code if code != 1005 else 1000))  # type: ignore[attr-defined]
        except (ConnectionResetError, BrokenPipeError):
            # The server may already have closed TCP with our unread bytes queued: a reset.
            ending = "reset"
        else:
            _, ending = ws_read_frames(sock, 5, b"", until_close=False)  # type: ignore[arg-type]
        assert ending in ("eof", "reset"), ending
    finally:
        sock.close()  # type: ignore[attr-defined]
    assert server.alive()


def test_fuzzed_frames_follow_the_model(server: Server) -> None:
    fds_before = server.fds()

    @settings(
        max_examples=examples(60, 1_000),
        derandomize=not SOAK,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(frame_specs(), min_size=1, max_size=10))
    def one(frames: list[FrameSpec]) -> None:
        expected = model(frames, LIMIT)
        sock, rest = _open(server)
        try:
            sock.sendall(b"".join(f.encode() for f in frames))  # type: ignore[attr-defined]
            got: list[Frame] = []
            if expected.error is None and expected.close is None:
                # A clean sequence: wait for every echo, then close ourselves.
                deadline = time.monotonic() + 5
                while len(_data(got)) < len(expected.messages) and time.monotonic() < deadline:
                    more, _ = ws_read_frames(sock, 1, rest, until_close=False)  # type: ignore[arg-type]
                    got += more
                    rest = b""
                sock.sendall(ws_close_frame(1000))  # type: ignore[attr-defined]
            more, ending = ws_read_frames(sock, 5, rest)  # type: ignore[arg-type]
            got += more
        finally:
            sock.close()  # type: ignore[attr-defined]
        echoed = _data(got)
        if expected.error is None and expected.close is None:
            assert echoed == expected.messages, (echoed, expected)
        else:
            # Echoes still in flight when the connection closes may be dropped
            # (RFC 6455 5.5.1), but nothing else may appear.
            assert echoed == expected.messages[: len(echoed)], (echoed, expected)
        code = close_code_of(got)
        if expected.error is not None:
            assert code == expected.error, (got, expected)
        else:
            assert code is not None, (got, ending)

    one()
    assert server.alive()
    assert wait_for(lambda: server.fds() <= fds_before, 10), (fds_before, server.fds())


def _data(frames: list[Frame]) -> list[str | bytes]:
    return [f.payload.decode() if f.opcode == 1 else f.payload for f in frames if f.opcode < 3]


def _deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def test_deflate_bomb_is_stopped(server: Server) -> None:
    sock, rest = _open(server, extra={"Sec-WebSocket-Extensions": "permessage-deflate"})
    rss_before = server.rss_kib()
    try:
        bomb = _deflate(bytes(200 * 1024 * 1024))  # 200 MiB of zeros, ~200 KiB on the wire
        sock.sendall(ws_frame(0x2, bomb, rsv=4))  # type: ignore[attr-defined]
        frames, _ = ws_read_frames(sock, 10, rest)  # type: ignore[arg-type]
    finally:
        sock.close()  # type: ignore[attr-defined]
    assert close_code_of(frames) == 1009, frames
    grown = server.rss_kib() - rss_before
    record_figure("deflate_bomb_rss_growth_kib", grown)
    assert grown < 64 * 1024, f"RSS grew by {grown} KiB inflating a bomb"


def test_deflate_still_works(server: Server) -> None:
    sock, rest = _open(server, extra={"Sec-WebSocket-Extensions": "permessage-deflate"})
    try:
        sock.sendall(ws_frame(0x1, _deflate(b"hello " * 100), rsv=4))  # type: ignore[attr-defined]
        frames, _ = ws_read_frames(sock, 5, rest, until_close=False)  # type: ignore[arg-type]
        sock.sendall(ws_close_frame(1000))  # type: ignore[attr-defined]
    finally:
        sock.close()  # type: ignore[attr-defined]
    assert len(frames) == 1 and frames[0].opcode == 1, frames
    payload = frames[0].payload
    inflated = zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")
    assert inflated == b"hello " * 100


# -- origins -------------------------------------------------------------------------------


def _upgrade_status(server: Server, origin: str | None, host: str | None = None) -> int:
    sock, response, _ = ws_handshake(server.port, "/ws/echo", origin=origin, host=host)
    sock.close()
    return response.status


def test_cross_site_upgrade_refused(server: Server) -> None:
    port = server.port
    assert _upgrade_status(server, None) == 101  # not a browser
    assert _upgrade_status(server, f"http://{HOST}:{port}") == 101  # same host and port
    for origin in [
        "http://evil.example",
        f"http://evil.example:{port}",
        f"http://{HOST}:{port + 1}",
        f"https://{HOST}",
        f"http://{HOST}:{port}.evil.example",
        f"http://{HOST}@evil.example:{port}",
        "null",
        "",
        f"http://{HOST}:{port}/",
        "file://",
    ]:
        status = _upgrade_status(server, origin)
        assert status == 403, (origin, status)
    # Host and Origin both forged to the same value: fine (not a browser attack).
    assert _upgrade_status(server, "http://a.example", host="a.example") == 101


def test_403_runs_no_code(running_site: RunningSite) -> None:
    """The refused upgrade never reaches the endpoint or its hooks."""
    files = {
        **WS,
        "hooks.py": """
            async def handle(event, resolve):
                print("HOOK-RAN", event.url.path, flush=True)
                return await resolve(event)
        """,
    }
    server = running_site(files, WS_CONFIG.format(extra=""))
    assert _upgrade_status(server, "http://evil.example") == 403
    time.sleep(0.2)
    assert "HOOK-RAN" not in server.log()
    assert _upgrade_status(server, None) == 101
    assert wait_for(lambda: "HOOK-RAN" in server.log(), 3)


@pytest.mark.parametrize(
    ("allowed", "origin", "status"),
    [
        ('["https://app.example"]', "https://app.example", 101),
        ('["https://app.example"]', "https://APP.example", 101),
        ('["https://app.example"]', "https://app.example.evil", 403),
        ('["https://app.example"]', "http://app.example", 403),
        ('["*"]', "http://evil.example", 101),
        ("[]", "http://evil.example", 403),
    ],
)
def test_allowed_origins(running_site: RunningSite, allowed: str, origin: str, status: int) -> None:
    server = running_site(WS, WS_CONFIG.format(extra=f"allowed_origins = {allowed}"))
    assert _upgrade_status(server, origin) == status
    assert get(server.port, "/ping").status == 200
