"""Gzip of dynamic responses: which ones, and streams flushed chunk by chunk."""

from __future__ import annotations

import zlib

import anyio
import pytest

from kitpy.http.headers import Headers
from kitpy.http.request import Request
from kitpy.http.response import Response
from kitpy.http.websocket import WebSocketPair
from kitpy.runtime.compress import accepted_codings, compress_response, compressible


def request(accept_encoding: str = "gzip") -> Request:
    return Request(
        "GET", "http://127.0.0.1/x", headers=Headers({"accept-encoding": accept_encoding})
    )


@pytest.mark.parametrize(
    ("header", "gzip_ok"),
    [("gzip", True), ("gzip;q=0", False), ("br, *", True), ("*, gzip;q=0", False), ("", False),
     ("deflate, x-gzip", True), ("identity", False)],
)  # fmt: skip
def test_accepted_codings(header: str, gzip_ok: bool) -> None:
    assert ("gzip" in accepted_codings(header)) is gzip_ok


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [("text/html; charset=utf-8", True), ("application/json", True),
     ("application/ld+json", True), ("image/svg+xml", True), ("image/png", False),
     ("application/octet-stream", False), ("application/gzip", False), ("", False)],
)  # fmt: skip
def test_compressible(content_type: str, expected: bool) -> None:
    assert compressible(content_type) is expected


def test_a_stream_is_gzipped_chunk_by_chunk_when_opted_in() -> None:
    async def events() -> object:
        yield b"data: one\n\n"
        yield b"data: two\n\n"

    async def main() -> None:
        response = Response(events(), headers={"content-type": "text/event-stream"})
        response = await compress_response(request(), response, min_bytes=1024, streams=True)
        assert response.headers["content-encoding"] == "gzip"
        assert "content-length" not in response.headers
        unpacker = zlib.decompressobj(16 + zlib.MAX_WBITS)
        assert response.stream is not None
        pieces = [unpacker.decompress(chunk) async for chunk in response.stream]  # type: ignore[union-attr]
        # Each event can be decoded as soon as its chunk arrives (sync flush).
        assert pieces[:2] == [b"data: one\n\n", b"data: two\n\n"]

    anyio.run(main)


def test_what_is_never_compressed() -> None:
    async def main() -> None:
        body = b"x" * 4096
        client, _server = WebSocketPair()
        cases = [
            Response(status=101, websocket=client),
            Response(body, 206, {"content-type": "text/plain", "content-range": "bytes 0-1/9"}),
            Response(body, headers={"content-type": "text/plain", "content-encoding": "br"}),
            Response(body, headers={"content-type": "text/plain", "cache-control": "no-transform"}),
        ]
        for response in cases:
            out = await compress_response(request(), response, min_bytes=1, streams=True)
            assert out.headers.get("content-encoding") in (None, "br")

    anyio.run(main)
