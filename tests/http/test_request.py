"""Request.from_wire: the server's constructor, whose headers are decoded on first use."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio

from kitpy.http.headers import Headers
from kitpy.http.request import Request
from kitpy.http.url import URL

RAW = [(b"host", b"example.com"), (b"x-name", b"caf\xe9"), (b"x-name", b"two")]


def _wire(body: bytes | None = None) -> Request:
    async def chunks() -> AsyncIterator[bytes]:
        yield body or b""

    url = URL.from_target("http", "example.com", "/a?b=1")
    return Request.from_wire(
        "get", url, list(RAW), None if body is None else chunks(), client=("127.0.0.1", 5)
    )


def test_the_headers_are_the_wire_pairs_decoded() -> None:
    request = _wire()
    assert request.method == "GET"
    assert request.client == ("127.0.0.1", 5)
    assert request.headers.get_all("X-Name") == ["café", "two"]
    assert request.headers is request.headers  # decoded once, then kept
    request.headers.add("x-more", "1")
    assert request.headers["x-more"] == "1"


def test_headers_can_be_replaced() -> None:
    request = _wire()
    request.headers = Headers({"a": "1"})
    assert list(request.headers) == ["a"]


def test_a_clone_shares_the_headers() -> None:
    request = _wire()
    clone = request.clone_with_url(URL("https://example.com/elsewhere"))
    clone.headers.add("x-added", "yes")
    assert request.headers["x-added"] == "yes"
    assert str(clone.url) == "https://example.com/elsewhere"


def test_the_body_is_empty_or_streamed() -> None:
    assert anyio.run(_wire().body) == b""
    assert anyio.run(_wire(b"payload").body) == b"payload"
