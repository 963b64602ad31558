"""Gzip for compressible dynamic responses (``[server] compress = true``).

Applied by the app to its final response, after the hooks, so every layer below sees
plain bodies. A response is compressed when all of these hold:

- the client's Accept-Encoding takes ``gzip`` (q > 0);
- the status is 200-599 but not 204, 206 or 304, and it is no WebSocket (101);
- its Content-Type is text (``text/*``), JSON, JavaScript, XML, SVG or WebAssembly;
- it has no Content-Encoding yet (precompressed static files keep theirs) and no
  ``Cache-Control: no-transform``;
- its body is bytes of ``compress_min_bytes`` or more, or a stream and
  ``compress_streams`` is on (each chunk is flushed as it comes, so server-sent
  events still arrive one by one).

A compressed response gets ``Content-Encoding: gzip``, its new Content-Length (none
for a stream), a weak ETag (the bytes differ from the identity ones), and
``Vary: Accept-Encoding``; a compressible one sent as is to a client that does not
take gzip says ``Vary: Accept-Encoding`` too, so caches keep the two apart.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable

from anyio import to_thread

from kitpy.http.request import Request
from kitpy.http.response import Response

__all__ = ("accepted_codings", "compress_response", "compressible")

#: Bodies larger than this are compressed in a worker thread, off the event loop.
THREAD_BYTES = 256 * 1024
LEVEL = 6
_TYPES = ("application/json", "application/javascript", "application/xml", "application/wasm")
_SUFFIXES = ("+json", "+xml")
_NEVER = frozenset({101, 204, 206, 304})


def accepted_codings(header: str) -> set[str]:
    """Content codings an Accept-Encoding header accepts (q > 0); ``*`` counts for
    br and gzip unless they are refused by name."""
    accepted: set[str] = set()
    refused: set[str] = set()
    for item in header.split(","):
        coding, _, params = item.strip().lower().partition(";")
        coding = coding.strip()
        if not coding:
            continue
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        (accepted if quality > 0 else refused).add(coding)
    if "*" in accepted:
        accepted |= {"br", "gzip"} - refused
    if "x-gzip" in accepted:
        accepted.add("gzip")
    return accepted


def compressible(content_type: str) -> bool:
    """Whether a Content-Type is worth compressing (text, not images or archives)."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media.startswith("text/") or media in _TYPES or media == "image/svg+xml":
        return True
    return media.startswith("application/") and media.endswith(_SUFFIXES)


async def compress_response(
    request: Request, response: Response, *, min_bytes: int, streams: bool
) -> Response:
    """``response``, gzipped when the rules of this module allow it."""
    headers = response.headers
    if response.status in _NEVER or response.status < 200 or response.websocket is not None:
        return response
    if "content-encoding" in headers or "content-range" in headers:
        return response
    if not compressible(headers.get("content-type", "")):
        return response
    if "no-transform" in headers.get("cache-control", "").lower():
        return response
    body = response.body
    if body is not None and len(body) < min_bytes:
        return response
    if body is None and not streams:
        return response
    headers.add("vary", "Accept-Encoding")
    if "gzip" not in accepted_codings(request.headers.get("accept-encoding", "")):
        return response
    headers["content-encoding"] = "gzip"
    etag = headers.get("etag")
    if etag is not None and not etag.startswith("W/"):
        headers["etag"] = "W/" + etag
    if body is not None:
        if len(body) > THREAD_BYTES:
            packed = await to_thread.run_sync(_gzip, body)
        else:
            packed = _gzip(body)
        response.body = packed
        if "content-length" in headers:
            headers["content-length"] = str(len(packed))
        return response
    if response.stream is not None:
        headers.pop("content-length")
        response.stream = _gzip_stream(response.stream)
    return response


def _gzip(body: bytes) -> bytes:
    return gzip.compress(body, compresslevel=LEVEL, mtime=0)


async def _gzip_stream(stream: AsyncIterable[bytes] | Iterable[bytes]) -> AsyncIterator[bytes]:
    packer = zlib.compressobj(LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip framing
    if isinstance(stream, AsyncIterable):
        async for chunk in stream:
            yield packer.compress(bytes(chunk)) + packer.flush(zlib.Z_SYNC_FLUSH)
    else:
        for chunk in stream:
            yield packer.compress(bytes(chunk)) + packer.flush(zlib.Z_SYNC_FLUSH)
    yield packer.flush()
