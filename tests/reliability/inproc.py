"""Drive a site's app in process with raw request targets (no client normalisation)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from kitpy.http.headers import Headers
from kitpy.http.request import Request
from kitpy.http.response import Response
from kitpy.http.url import URL
from kitpy.runtime.app import SiteApp, load_app

HOST = "127.0.0.1"


@dataclass
class Answer:
    status: int
    headers: Headers
    body: bytes


async def read_body(response: Response) -> bytes:
    body = response.body or b""
    stream = response.stream
    if stream is not None:
        if hasattr(stream, "__aiter__"):
            body += b"".join([chunk async for chunk in stream])  # type: ignore[union-attr]
        else:
            body += b"".join(stream)  # type: ignore[arg-type]
    return body


@asynccontextmanager
async def site_app(site: Path, state_dir: Path) -> AsyncIterator[SiteApp]:
    app = load_app(site, state_dir=state_dir)
    try:
        async with app.lifespan():
            yield app
    finally:
        app.close()


async def call(
    app: SiteApp,
    target: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    peer: tuple[str, int] = (HOST, 5555),
    host: str = f"{HOST}:8000",
    body: bytes | None = None,
) -> Answer:
    all_headers = {"host": host, **(headers or {})}
    url = URL.from_target("http", all_headers["host"], target)
    request = Request(method, url, all_headers, body, client=peer)
    response = await app(request)
    return Answer(response.status, response.headers, await read_body(response))
