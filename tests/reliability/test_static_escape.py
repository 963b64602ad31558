"""Issue #7, part 4: static files never escape static/; private site files never served.

Two levels: the app in process (a Request with the raw target as a client sent it, so
no client library normalises ``..`` away) and the real server over a raw socket. The
oracle is the same for both: no byte of a file outside static/ (each holds SECRET), no
SQLite file, no /etc/passwd, and never a 500.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kitpy.runtime.app import SiteApp

from .conftest import ServeDir
from .helpers import HOST, exchange, get, parse_responses, write_site
from .inproc import call, site_app
from .sites import SECRET, STATIC, STATIC_CONFIG

TRAVERSALS = [
    "/../secret.txt",
    "/../../../../etc/passwd",
    "/%2e%2e/secret.txt",
    "/%2E%2E/secret.txt",
    "/.%2e/secret.txt",
    "/%2e./secret.txt",
    "/sub/../../secret.txt",
    "/sub/%2e%2e/%2e%2e/secret.txt",
    "/..%2fsecret.txt",
    "/%2e%2e%2fsecret.txt",
    "/sub%2f..%2f..%2fsecret.txt",
    "/%252e%252e/secret.txt",
    "/%c0%ae%c0%ae/secret.txt",
    "/..\\secret.txt",
    "/..%5csecret.txt",
    "/%5c..%5csecret.txt",
    "/sub\\..\\..\\secret.txt",
    "/sub%5c..%5c..%5csecret.txt",
    "/ok.txt%00",
    "/ok.txt%00.png",
    "/%00../secret.txt",
    "//etc/passwd",
    "/%2fetc%2fpasswd",
    "/%2f%2e%2e%2fsecret.txt",
    "/link_out",
    "/abs_link",
    "/dirlink/secret.txt",
    "/dirlink/kitpy.toml",
    "/dirlink/.kitpy/storage.sqlite3",
    "/.hidden",
    "/%2ehidden",
    "/sub/../.hidden",
    "/.kitpy/storage.sqlite3",
    "/%2ekitpy/storage.sqlite3",
    "/.kitpy/",
    "/kitpy.toml",
    "/hooks.py",
    "/routes/source.py",
    "/source.py",
    "/routes/_private.py",
    "/_private",
    "/_private.py",
    "/static/../secret.txt",
    "/secret.txt",
    "/.well-known/../secret.txt",
    "/.well-known/%2e%2e/secret.txt",
]

#: Inside the folder: must still be served.
ALLOWED = {
    "/ok.txt": b"public file\n",
    "/sub/inner.txt": b"inner file\n",
    "/inner_link": b"inner file\n",
    "/.well-known/security.txt": b"Contact: mailto:x@example.com\n",
}


def _forbidden(body: bytes) -> str | None:
    if SECRET.encode() in body:
        return "a file outside static/ (or a dot file) leaked"
    if body.startswith(b"SQLite format 3"):
        return "the storage file leaked"
    if b"root:x:0:0" in body:
        return "/etc/passwd leaked"
    return None


def _site(root: Path) -> Path:
    site = write_site(root, STATIC, STATIC_CONFIG)
    static = site / "static"
    os.symlink("../secret.txt", static / "link_out")
    os.symlink("/etc/passwd", static / "abs_link")
    os.symlink("..", static / "dirlink")
    os.symlink("sub/inner.txt", static / "inner_link")
    (site / ".kitpy").mkdir(exist_ok=True)
    (site / ".kitpy" / "storage.sqlite3").write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    return site


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[SiteApp]:
    async with site_app(_site(tmp_path / "site"), tmp_path / "state") as site:
        yield site


async def _fetch(app: SiteApp, target: str, method: str = "GET") -> tuple[int, bytes]:
    answer = await call(app, target, method=method)
    return answer.status, answer.body


@pytest.mark.anyio
@pytest.mark.parametrize("target", TRAVERSALS)
async def test_no_escape_in_process(app: SiteApp, target: str) -> None:
    for method in ("GET", "HEAD"):
        status, body = await _fetch(app, target, method)
        assert _forbidden(body) is None, (target, status, body[:200])
        assert status in (308, 400, 403, 404, 405), (target, method, status, body[:200])


@pytest.mark.anyio
@pytest.mark.parametrize("target", sorted(ALLOWED))
async def test_inside_static_still_served(app: SiteApp, target: str) -> None:
    status, body = await _fetch(app, target)
    assert (status, body) == (200, ALLOWED[target])


@pytest.mark.anyio
async def test_route_answers_not_its_source(app: SiteApp) -> None:
    status, body = await _fetch(app, "/source")
    assert (status, body) == (200, b"route answered")


def test_no_escape_over_the_wire(serve_dir: ServeDir, tmp_path: Path) -> None:
    """Raw request targets through the real server: no leak, no 500, server alive."""
    server = serve_dir(_site(tmp_path / "wire"))
    for target in [*TRAVERSALS, "/ok.txt/", "/sub/", "/sub"]:
        for method in ("GET", "HEAD"):
            raw = (
                f"{method} {target} HTTP/1.1\r\nHost: {HOST}:{server.port}\r\n"
                "Connection: close\r\n\r\n"
            ).encode("latin-1")
            got = exchange(server.port, raw, timeout=5)
            assert got.closed, (target, "connection not closed after Connection: close")
            responses = parse_responses(got.data, head=method == "HEAD")
            if responses:  # a refusal may also be a plain 400 + close
                status = responses[0].status
                assert status != 200 or target in ("/sub/", "/sub"), (target, status)
                assert status < 500, (target, method, status)
                assert _forbidden(responses[0].body) is None, (target, responses[0].body)
            else:
                assert got.data == b"", (target, got.data[:200])
    for target, content in ALLOWED.items():
        response = get(server.port, target)
        assert (response.status, response.body) == (200, content)
    assert server.alive()
