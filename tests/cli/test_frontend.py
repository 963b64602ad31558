"""Serving a built front end (Vite's output) with ``kitpy serve``: real process, httpx.

SPA fallback, immutable fingerprinted assets, precompressed siblings, and gzip of
dynamic responses.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import httpx
import pytest

from tests.acceptance.kit import Server, write_site

INDEX = "<!doctype html><html><body><div id=app></div></body></html>\n"
APP_JS = "console.log('app');\n" * 200
BIG_TEXT = "kitpy " * 1000

FILES = {
    "kitpy.toml": """
        [server]
        spa_fallback = true
        immutable_assets = ["assets"]
        compress = true
        compress_min_bytes = 512
    """,
    "static/index.html": INDEX,
    "static/robots.txt": "User-agent: *\n",
    "static/assets/app-3f2a9c.js": APP_JS,
    "routes/api/items.py": """
        from kitpy import text

        def get(event):
            return {"body": [1, 2, 3]}

        def post(event):
            return text("kitpy " * 1000)
    """,
    "routes/api/big.py": """
        from kitpy import Response, text

        def get(event):
            return text("kitpy " * 1000)

        def put(event):
            return Response(b"\\x00" * 4096, headers={"content-type": "image/png"})

        def delete(event):
            async def chunks():
                yield b"a" * 2000
            return Response(chunks(), headers={"content-type": "text/plain"})
    """,
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    site = write_site(tmp_path_factory.mktemp("frontend") / "site", FILES)
    assets = site / "static" / "assets"
    (assets / "app-3f2a9c.js.br").write_bytes(b"brotli bytes, as a build tool left them")
    (assets / "app-3f2a9c.js.gz").write_bytes(gzip.compress(APP_JS.encode()))
    running = Server(site).start()
    try:
        yield running
    finally:
        running.stop()


def get(server: Server, path: str, **headers: str) -> httpx.Response:
    headers.setdefault("accept-encoding", "identity")
    return httpx.get(server.url + path, headers=headers, timeout=10)


HTML = "text/html,application/xhtml+xml,*/*;q=0.8"


def test_unknown_html_pages_get_the_spa_page(server: Server) -> None:
    for path in ("/", "/settings/profile", "/users/42"):
        page = get(server, path, accept=HTML)
        assert page.status_code == 200 and page.text == INDEX, path
    # API routes, files, and non-HTML requests are untouched.
    assert get(server, "/api/items", accept=HTML).json() == [1, 2, 3]
    assert get(server, "/robots.txt", accept=HTML).text == "User-agent: *\n"
    assert get(server, "/api/missing", accept="application/json").status_code == 404
    assert get(server, "/missing.js", accept="*/*").status_code == 404
    posted = httpx.post(server.url + "/nowhere", headers={"accept": HTML}, timeout=10)
    assert posted.status_code == 404


def test_fingerprinted_assets_are_immutable(server: Server) -> None:
    asset = get(server, "/assets/app-3f2a9c.js")
    assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert get(server, "/robots.txt").headers["cache-control"] == ("max-age=0, must-revalidate")
    assert get(server, "/", accept=HTML).headers["cache-control"] == ("max-age=0, must-revalidate")


def test_precompressed_siblings(server: Server) -> None:
    path = "/assets/app-3f2a9c.js"
    brotli = get(server, path, **{"accept-encoding": "gzip, br"})
    assert brotli.headers["content-encoding"] == "br"
    assert brotli.headers["content-type"] == "text/javascript; charset=utf-8"
    assert brotli.headers["vary"] == "Accept-Encoding"
    assert brotli.content == b"brotli bytes, as a build tool left them"
    zipped = httpx.get(server.url + path, headers={"accept-encoding": "gzip, br;q=0"}, timeout=10)
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.text == APP_JS  # httpx decoded it
    plain = get(server, path)
    assert "content-encoding" not in plain.headers and plain.text == APP_JS
    assert plain.headers["vary"] == "Accept-Encoding"
    assert len({brotli.headers["etag"], zipped.headers["etag"], plain.headers["etag"]}) == 3
    archive = get(server, path + ".gz", **{"accept-encoding": "gzip"})
    assert "content-encoding" not in archive.headers  # asked for by name: the archive
    assert archive.headers["content-type"] == "application/gzip"


def test_dynamic_responses_are_gzipped(server: Server) -> None:
    zipped = get(server, "/api/big", **{"accept-encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.text == BIG_TEXT
    assert int(zipped.headers["content-length"]) < len(BIG_TEXT) // 10
    assert zipped.headers["vary"] == "Accept-Encoding"
    plain = get(server, "/api/big")
    assert "content-encoding" not in plain.headers and plain.text == BIG_TEXT
    assert plain.headers["vary"] == "Accept-Encoding"
    small = get(server, "/api/items", **{"accept-encoding": "gzip"})
    assert "content-encoding" not in small.headers  # under compress_min_bytes
    image = httpx.put(server.url + "/api/big", headers={"accept-encoding": "gzip"}, timeout=10)
    assert "content-encoding" not in image.headers  # not compressible
    stream = httpx.delete(server.url + "/api/big", headers={"accept-encoding": "gzip"}, timeout=10)
    assert "content-encoding" not in stream.headers  # streams only with compress_streams
    assert stream.text == "a" * 2000
