"""StaticFiles: file lookup, containment, content types, ETag/304, Range, HEAD, streaming."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import AsyncGenerator, AsyncIterable, Iterator
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest

from kitpy.http import Request, Response
from kitpy.runtime.static import StaticFiles

pytestmark = pytest.mark.anyio

CHUNK = 64 * 1024
MTIME = 1_700_000_000  # Tue, 14 Nov 2023 22:13:20 GMT
LAST_MODIFIED = "Tue, 14 Nov 2023 22:13:20 GMT"
APP_JS = b"console.log('hi');\n"
DIGITS = b"0123456789"

FILES: dict[str, bytes] = {
    "index.html": b"<h1>home</h1>",
    "app.js": APP_JS,
    "digits.txt": DIGITS,
    "empty.txt": b"",
    "hello world.txt": b"spaced",
    "café.txt": b"accent",
    "_private.txt": b"underscore is fine",
    "docs/index.html": b"<h1>docs</h1>",
    "docs/guide.md": b"# guide",
    "nodex/keep.txt": b"no index here",
    "a/b.txt": b"nested",
    ".env": b"SECRET=1",
    ".git/config": b"[core]",
    "docs/.hidden": b"hidden",
    ".well-known/security.txt": b"Contact: x",
    "docs/.well-known/x.txt": b"not at the root",
}


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """tmp_path/static with FILES, and secrets beside it (outside the folder)."""
    (tmp_path / "secret").write_bytes(b"top secret")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_bytes(b"top secret")
    static = tmp_path / "static"
    for name, data in FILES.items():
        path = static / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (MTIME + 0.5, MTIME + 0.5))
    return static


def symlink(link: Path, target: Path) -> None:
    try:
        link.symlink_to(target, target_is_directory=target.is_dir())
    except (OSError, NotImplementedError):
        pytest.skip("symlinks are not available here")


def make_request(path: str, method: str = "GET", headers: dict[str, str] | None = None) -> Request:
    return Request(method, f"http://localhost{path}", headers=headers)


async def fetch(
    static: Path, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> Response | None:
    return await StaticFiles(static).respond(make_request(path, method, headers))


async def must_fetch(
    static: Path, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> Response:
    response = await fetch(static, path, method, headers)
    assert response is not None, f"{method} {path} was not served"
    return response


async def chunks_of(response: Response) -> list[bytes]:
    if response.stream is None:
        return [response.body] if response.body else []
    assert isinstance(response.stream, AsyncIterable)
    return [chunk async for chunk in response.stream]


async def body_of(response: Response) -> bytes:
    return b"".join(await chunks_of(response))


# --- lookup ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("/app.js", APP_JS, id="file"),
        pytest.param("/a/b.txt", b"nested", id="nested"),
        pytest.param("/", b"<h1>home</h1>", id="root-index"),
        pytest.param("/index.html", b"<h1>home</h1>", id="index-by-name"),
        pytest.param("/docs", b"<h1>docs</h1>", id="folder-index-no-slash"),
        pytest.param("/docs/", b"<h1>docs</h1>", id="folder-index-slash"),
        pytest.param("/docs/index.html", b"<h1>docs</h1>", id="folder-index-by-name"),
        pytest.param("/hello%20world.txt", b"spaced", id="percent-encoded-space"),
        pytest.param("/caf%C3%A9.txt", b"accent", id="percent-encoded-utf8"),
        pytest.param("/%61pp.js", APP_JS, id="percent-encoded-letter"),
        pytest.param("/_private.txt", b"underscore is fine", id="underscore"),
        pytest.param("/.well-known/security.txt", b"Contact: x", id="well-known"),
    ],
)
async def test_serves_the_file_the_path_names(site: Path, path: str, expected: bytes) -> None:
    response = await must_fetch(site, path)
    assert response.status == 200
    assert await body_of(response) == expected
    assert response.headers["content-length"] == str(len(expected))


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/missing.js", id="missing"),
        pytest.param("/docs/missing", id="missing-nested"),
        pytest.param("/nodex", id="folder-without-index"),
        pytest.param("/nodex/", id="folder-without-index-slash"),
        pytest.param("/app.js/", id="file-with-trailing-slash"),
        pytest.param("/app.js/x", id="file-as-folder"),
        pytest.param("/a%2Fb.txt", id="encoded-slash-stays-in-segment"),
        pytest.param("/a%2fb.txt", id="encoded-slash-lower"),
        pytest.param("/%ff.txt", id="not-utf8"),
    ],
)
async def test_no_file_gives_none(site: Path, path: str) -> None:
    assert await fetch(site, path) is None


async def test_missing_static_folder_gives_none_and_no_paths(tmp_path: Path) -> None:
    static = StaticFiles(tmp_path / "static")
    assert await static.respond(make_request("/app.js")) is None
    assert await static.respond(make_request("/")) is None
    assert static.paths() == []


async def test_root_without_index_gives_none(tmp_path: Path) -> None:
    (tmp_path / "app.js").write_bytes(APP_JS)
    assert await fetch(tmp_path, "/") is None
    assert await fetch(tmp_path, "/app.js") is not None


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
async def test_other_methods_give_none_even_for_a_file(site: Path, method: str) -> None:
    assert await fetch(site, "/app.js", method) is None


async def test_query_string_is_ignored(site: Path) -> None:
    response = await must_fetch(site, "/app.js?v=3")
    assert await body_of(response) == APP_JS


# --- containment ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/../secret", id="dotdot"),
        pytest.param("/a/../../secret", id="dotdot-nested"),
        pytest.param("/a/../b.txt", id="dotdot-staying-inside"),
        pytest.param("/./app.js", id="dot"),
        pytest.param("/%2e%2e/secret", id="encoded-dotdot"),
        pytest.param("/%2E%2E/secret", id="encoded-dotdot-upper"),
        pytest.param("/.%2e/secret", id="half-encoded-dotdot"),
        pytest.param("/..%2fsecret", id="dotdot-encoded-slash"),
        pytest.param("/..%2Fsecret", id="dotdot-encoded-slash-upper"),
        pytest.param("/%2e%2e%2fsecret", id="all-encoded"),
        pytest.param("/%2e%2e%2foutside%2fsecret.txt", id="all-encoded-nested"),
        pytest.param("/a/..%5c..%5csecret", id="encoded-backslash"),
        pytest.param("/..\\secret", id="raw-backslash"),
        pytest.param("/a\\b.txt", id="raw-backslash-inside"),
        pytest.param("/%00", id="nul"),
        pytest.param("/app.js%00", id="nul-after-name"),
        pytest.param("/app.js%00.png", id="nul-in-name"),
        pytest.param("//etc/passwd", id="double-slash-absolute"),
        pytest.param("//app.js", id="double-slash"),
        pytest.param("/a//b.txt", id="empty-segment"),
        pytest.param("/%2fetc%2fpasswd", id="encoded-absolute"),
        pytest.param("/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd", id="deep-escape"),
        pytest.param("/" + "%2e%2e/" * 40 + "etc/passwd", id="very-deep-escape"),
        pytest.param("/" + "x" * 5000, id="name-too-long"),
    ],
)
async def test_paths_outside_or_malformed_give_none(site: Path, path: str) -> None:
    for method in ("GET", "HEAD"):
        assert await fetch(site, path, method) is None


async def test_request_target_without_leading_slash_gives_none(site: Path) -> None:
    request = make_request("/app.js")
    request.url.raw_path = "app.js"
    assert await StaticFiles(site).respond(request) is None
    request.url.raw_path = "*"
    assert await StaticFiles(site).respond(request) is None


async def test_symlink_out_of_the_folder_gives_none(site: Path) -> None:
    symlink(site / "leak.txt", site.parent / "secret")
    symlink(site / "outdir", site.parent / "outside")
    assert await fetch(site, "/leak.txt") is None
    assert await fetch(site, "/outdir/secret.txt") is None
    assert await fetch(site, "/outdir") is None
    assert "/leak.txt" not in StaticFiles(site).paths()


async def test_symlink_inside_the_folder_is_followed(site: Path) -> None:
    symlink(site / "alias.js", site / "app.js")
    symlink(site / "manual", site / "docs")
    response = await must_fetch(site, "/alias.js")
    assert await body_of(response) == APP_JS
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert await body_of(await must_fetch(site, "/manual/")) == b"<h1>docs</h1>"
    assert await body_of(await must_fetch(site, "/manual/guide.md")) == b"# guide"
    paths = StaticFiles(site).paths()
    assert {"/alias.js", "/manual", "/manual/index.html", "/manual/guide.md"} <= set(paths)


async def test_symlink_to_a_dot_file_inside_gives_none(site: Path) -> None:
    symlink(site / "env.txt", site / ".env")
    assert await fetch(site, "/env.txt") is None


async def test_symlink_loop_gives_none_and_paths_terminate(site: Path) -> None:
    symlink(site / "loop1", site / "loop2")
    symlink(site / "loop2", site / "loop1")
    symlink(site / "docs" / "up", site)
    assert await fetch(site, "/loop1") is None
    assert await fetch(site, "/loop1/x") is None
    assert await body_of(await must_fetch(site, "/docs/up/app.js")) == APP_JS
    assert "/app.js" in StaticFiles(site).paths()


async def test_static_folder_reached_through_a_symlink(site: Path, tmp_path: Path) -> None:
    symlink(tmp_path / "public", site)
    assert await body_of(await must_fetch(tmp_path / "public", "/app.js")) == APP_JS
    assert await fetch(tmp_path / "public", "/../secret") is None


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
async def test_fifo_gives_none(site: Path) -> None:
    os.mkfifo(site / "pipe.txt")
    assert await fetch(site, "/pipe.txt") is None
    assert "/pipe.txt" not in StaticFiles(site).paths()


# --- dot files --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/.env", id="dot-file"),
        pytest.param("/%2eenv", id="encoded-dot-file"),
        pytest.param("/.git/config", id="dot-folder"),
        pytest.param("/.git/", id="dot-folder-itself"),
        pytest.param("/docs/.hidden", id="nested-dot-file"),
        pytest.param("/docs/.well-known/x.txt", id="well-known-not-at-root"),
        pytest.param("/.well-known/", id="well-known-folder-without-index"),
    ],
)
async def test_dot_files_are_not_served(site: Path, path: str) -> None:
    assert await fetch(site, path) is None


# --- headers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("app.js", "text/javascript; charset=utf-8"),
        ("mod.mjs", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("page.html", "text/html; charset=utf-8"),
        ("notes.txt", "text/plain; charset=utf-8"),
        ("readme.md", "text/markdown; charset=utf-8"),
        ("data.csv", "text/csv; charset=utf-8"),
        ("data.json", "application/json"),
        ("app.js.map", "application/json"),
        ("site.webmanifest", "application/manifest+json"),
        ("logo.svg", "image/svg+xml"),
        ("logo.png", "image/png"),
        ("photo.JPG", "image/jpeg"),
        ("photo.webp", "image/webp"),
        ("font.woff2", "font/woff2"),
        ("lib.wasm", "application/wasm"),
        ("doc.pdf", "application/pdf"),
        ("archive.tar.gz", "application/gzip"),
        ("blob.gz", "application/gzip"),
        ("thing.unknownext", "application/octet-stream"),
        ("LICENSE", "application/octet-stream"),
    ],
)
async def test_content_type_from_extension(tmp_path: Path, name: str, expected: str) -> None:
    (tmp_path / name).write_bytes(b"x")
    response = await must_fetch(tmp_path, f"/{name}")
    assert response.headers["content-type"] == expected
    assert "content-encoding" not in response.headers
    await body_of(response)


async def test_folder_index_is_html(site: Path) -> None:
    response = await must_fetch(site, "/docs")
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    await body_of(response)


async def test_response_headers(site: Path) -> None:
    response = await must_fetch(site, "/app.js")
    st = (site / "app.js").stat()
    assert response.status == 200
    assert response.headers["etag"] == f'"{st.st_size:x}-{st.st_mtime_ns:x}"'
    assert not response.headers["etag"].startswith("W/")
    assert response.headers["last-modified"] == LAST_MODIFIED
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["cache-control"] == "max-age=0, must-revalidate"
    assert response.headers["content-length"] == str(len(APP_JS))
    assert "content-range" not in response.headers
    assert await body_of(response) == APP_JS


async def test_etag_changes_with_the_file(site: Path) -> None:
    first = (await must_fetch(site, "/app.js")).headers["etag"]
    os.utime(site / "app.js", (MTIME + 10, MTIME + 10))
    second = (await must_fetch(site, "/app.js")).headers["etag"]
    (site / "app.js").write_bytes(APP_JS + b"more")
    os.utime(site / "app.js", (MTIME + 10, MTIME + 10))
    third = (await must_fetch(site, "/app.js")).headers["etag"]
    assert len({first, second, third}) == 3


async def test_empty_file(site: Path) -> None:
    response = await must_fetch(site, "/empty.txt")
    assert response.status == 200
    assert response.headers["content-length"] == "0"
    assert await body_of(response) == b""


async def test_head_has_get_headers_and_no_body(site: Path) -> None:
    get = await must_fetch(site, "/app.js")
    head = await must_fetch(site, "/app.js", "HEAD")
    assert head.status == 200
    assert head.headers == get.headers
    assert head.headers["content-length"] == str(len(APP_JS))
    assert head.stream is None and head.body == b""
    await body_of(get)


async def test_head_on_a_folder_index(site: Path) -> None:
    head = await must_fetch(site, "/docs/", "HEAD")
    assert head.headers["content-length"] == str(len(FILES["docs/index.html"]))
    assert await body_of(head) == b""


# --- conditional requests ------------------------------------------------------------


async def etag_of(site: Path, path: str = "/app.js") -> str:
    return (await must_fetch(site, path, "HEAD")).headers["etag"]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize(
    "template",
    [
        pytest.param("{etag}", id="same"),
        pytest.param("W/{etag}", id="weak-form"),
        pytest.param('"other", {etag}', id="in-a-list"),
        pytest.param('"a,b",{etag}', id="after-a-tag-with-a-comma"),
        pytest.param("*", id="star"),
    ],
)
async def test_if_none_match_gives_304(site: Path, template: str, method: str) -> None:
    etag = await etag_of(site)
    response = await must_fetch(
        site, "/app.js", method, {"if-none-match": template.format(etag=etag)}
    )
    assert response.status == 304
    assert response.headers["etag"] == etag
    assert response.headers["last-modified"] == LAST_MODIFIED
    assert response.headers["cache-control"] == "max-age=0, must-revalidate"
    assert "content-length" not in response.headers
    assert await body_of(response) == b""


@pytest.mark.parametrize("value", ['"nope"', 'W/"nope"', "garbage", '"a", "b"', ""], ids=repr)
async def test_if_none_match_other_gives_200(site: Path, value: str) -> None:
    response = await must_fetch(site, "/app.js", headers={"if-none-match": value})
    assert response.status == 200
    assert await body_of(response) == APP_JS


@pytest.mark.parametrize(
    ("since", "status"),
    [
        pytest.param(LAST_MODIFIED, 304, id="equal"),
        pytest.param(formatdate(MTIME + 3600, usegmt=True), 304, id="later"),
        pytest.param("Tue, 14 Nov 2023 22:13:20 -0000", 304, id="minus-zero-zone"),
        pytest.param(formatdate(MTIME - 1, usegmt=True), 200, id="earlier"),
        pytest.param("yesterday", 200, id="invalid"),
        pytest.param("", 200, id="empty"),
    ],
)
async def test_if_modified_since(site: Path, since: str, status: int) -> None:
    response = await must_fetch(site, "/app.js", headers={"if-modified-since": since})
    assert response.status == status
    assert await body_of(response) == (APP_JS if status == 200 else b"")


async def test_if_none_match_takes_precedence_over_if_modified_since(site: Path) -> None:
    headers = {"if-none-match": '"stale"', "if-modified-since": LAST_MODIFIED}
    response = await must_fetch(site, "/app.js", headers=headers)
    assert response.status == 200
    assert await body_of(response) == APP_JS


async def test_304_wins_over_range(site: Path) -> None:
    headers = {"if-none-match": await etag_of(site), "range": "bytes=0-1"}
    assert (await must_fetch(site, "/app.js", headers=headers)).status == 304


# --- ranges -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("range_", "content_range", "expected"),
    [
        pytest.param("bytes=0-4", "bytes 0-4/10", b"01234", id="first-last"),
        pytest.param("bytes=3-3", "bytes 3-3/10", b"3", id="one-byte"),
        pytest.param("bytes=5-", "bytes 5-9/10", b"56789", id="open-ended"),
        pytest.param("bytes=-3", "bytes 7-9/10", b"789", id="suffix"),
        pytest.param("bytes=8-1000", "bytes 8-9/10", b"89", id="end-clamped"),
        pytest.param("bytes=-1000", "bytes 0-9/10", DIGITS, id="suffix-longer-than-file"),
        pytest.param("bytes=0-", "bytes 0-9/10", DIGITS, id="whole-as-range"),
        pytest.param("Bytes = 1 - 2", "bytes 1-2/10", b"12", id="case-and-spaces"),
        pytest.param("bytes=2-3,", "bytes 2-3/10", b"23", id="empty-list-element"),
    ],
)
async def test_single_range_gives_206(
    site: Path, range_: str, content_range: str, expected: bytes
) -> None:
    response = await must_fetch(site, "/digits.txt", headers={"range": range_})
    assert response.status == 206
    assert response.headers["content-range"] == content_range
    assert response.headers["content-length"] == str(len(expected))
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["etag"] == await etag_of(site, "/digits.txt")
    assert await body_of(response) == expected


@pytest.mark.parametrize(
    ("path", "range_", "size"),
    [
        pytest.param("/digits.txt", "bytes=10-", 10, id="start-at-end"),
        pytest.param("/digits.txt", "bytes=20-30", 10, id="past-end"),
        pytest.param("/digits.txt", "bytes=-0", 10, id="empty-suffix"),
        pytest.param("/empty.txt", "bytes=0-", 0, id="empty-file"),
        pytest.param("/empty.txt", "bytes=-5", 0, id="empty-file-suffix"),
    ],
)
async def test_unsatisfiable_range_gives_416(site: Path, path: str, range_: str, size: int) -> None:
    response = await must_fetch(site, path, headers={"range": range_})
    assert response.status == 416
    assert response.headers["content-range"] == f"bytes */{size}"
    assert response.headers["content-length"] == "0"
    assert await body_of(response) == b""


@pytest.mark.parametrize(
    "range_",
    [
        pytest.param("bytes=0-1,4-5", id="multiple-ranges"),
        pytest.param("bytes=0-1, 20-30", id="multiple-with-unsatisfiable"),
        pytest.param("bytes=5-2", id="last-before-first"),
        pytest.param("bytes=abc", id="malformed"),
        pytest.param("bytes=-", id="no-numbers"),
        pytest.param("bytes=", id="no-ranges"),
        pytest.param("items=0-1", id="other-unit"),
        pytest.param("0-1", id="no-unit"),
    ],
)
async def test_ignored_range_gives_the_whole_file(site: Path, range_: str) -> None:
    response = await must_fetch(site, "/digits.txt", headers={"range": range_})
    assert response.status == 200
    assert "content-range" not in response.headers
    assert response.headers["content-length"] == "10"
    assert await body_of(response) == DIGITS


async def test_head_ignores_range(site: Path) -> None:
    response = await must_fetch(site, "/digits.txt", "HEAD", {"range": "bytes=0-1"})
    assert response.status == 200
    assert response.headers["content-length"] == "10"
    assert "content-range" not in response.headers


@pytest.mark.parametrize(
    ("if_range", "status"),
    [
        pytest.param("{etag}", 206, id="same-etag"),
        pytest.param('"stale"', 200, id="other-etag"),
        pytest.param("W/{etag}", 200, id="weak-etag-never-matches"),
        pytest.param(LAST_MODIFIED, 206, id="same-date"),
        pytest.param(formatdate(MTIME - 60, usegmt=True), 200, id="other-date"),
        pytest.param("garbage", 200, id="garbage"),
    ],
)
async def test_if_range(site: Path, if_range: str, status: int) -> None:
    etag = await etag_of(site, "/digits.txt")
    headers = {"range": "bytes=2-4", "if-range": if_range.format(etag=etag)}
    response = await must_fetch(site, "/digits.txt", headers=headers)
    assert response.status == status
    assert await body_of(response) == (b"234" if status == 206 else DIGITS)


# --- streaming --------------------------------------------------------------------------


@pytest.fixture
def big(site: Path) -> bytes:
    data = bytes(range(256)) * (3 * CHUNK // 256) + b"tail" * 31  # 3 chunks and 124 bytes
    (site / "big.bin").write_bytes(data)
    return data


async def test_large_file_is_streamed_in_chunks(site: Path, big: bytes) -> None:
    response = await must_fetch(site, "/big.bin")
    assert response.body is None and response.stream is not None
    assert response.headers["content-length"] == str(len(big))
    chunks = await chunks_of(response)
    assert [len(c) for c in chunks] == [CHUNK, CHUNK, CHUNK, 124]
    assert b"".join(chunks) == big


async def test_range_of_a_large_file_spans_chunks(site: Path, big: bytes) -> None:
    start, end = CHUNK - 10, 2 * CHUNK + 10
    response = await must_fetch(site, "/big.bin", headers={"range": f"bytes={start}-{end}"})
    assert response.status == 206
    assert response.headers["content-range"] == f"bytes {start}-{end}/{len(big)}"
    chunks = await chunks_of(response)
    assert max(len(c) for c in chunks) <= CHUNK
    assert b"".join(chunks) == big[start : end + 1]


async def test_file_is_opened_only_when_the_body_is_read(site: Path) -> None:
    response = await must_fetch(site, "/app.js")
    (site / "app.js").unlink()
    with pytest.raises(FileNotFoundError):
        await body_of(response)


async def test_file_changed_after_the_headers_fails_the_body(site: Path) -> None:
    response = await must_fetch(site, "/digits.txt")
    (site / "digits.txt").write_bytes(b"short")
    with pytest.raises(OSError, match="changed while being served"):
        await body_of(response)


async def test_stream_closed_early_closes_the_file(site: Path, big: bytes) -> None:
    response = await must_fetch(site, "/big.bin")
    stream = response.stream
    assert isinstance(stream, AsyncGenerator)
    assert await anext(stream) == big[:CHUNK]
    await stream.aclose()
    # filterwarnings=error turns a leaked file's ResourceWarning into a failure


STATIC_MODULE = os.path.join("kitpy", "runtime", "static.py")


def _called_from_static() -> bool:
    # Walk raw frames: traceback helpers read source lines, which calls os.stat again.
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename.endswith(STATIC_MODULE):
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


@pytest.fixture
def disk_calls_on_loop_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Names of os calls made on the event-loop (main) thread, and a count of all."""
    on_loop: list[str] = []
    total: list[str] = []
    for name in ("stat", "open", "listdir", "fstat", "lstat"):
        original = getattr(os, name)

        def spy(
            *args: object, _original: Any = original, _name: str = name, **kwargs: object
        ) -> object:
            total.append(_name)
            # Count only calls made by the static-files code itself: other tests in the
            # same process may leave unrelated file activity on the main thread.
            if threading.current_thread() is threading.main_thread() and _called_from_static():
                on_loop.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(os, name, spy)
    yield on_loop
    assert total, "the spies saw no disk access"


async def test_disk_access_stays_off_the_event_loop(
    site: Path, big: bytes, disk_calls_on_loop_thread: list[str]
) -> None:
    static = StaticFiles(site)
    for path, headers in [("/big.bin", {}), ("/docs", {}), ("/app.js", {"range": "bytes=1-2"})]:
        response = await static.respond(make_request(path, headers=headers))
        assert response is not None
        await body_of(response)
    assert await static.respond(make_request("/missing")) is None
    assert disk_calls_on_loop_thread == []


# --- paths ------------------------------------------------------------------------------


async def test_paths_lists_every_served_url(site: Path) -> None:
    assert StaticFiles(site).paths() == [
        "/",
        "/.well-known/security.txt",
        "/_private.txt",
        "/a/b.txt",
        "/app.js",
        "/café.txt",
        "/digits.txt",
        "/docs",
        "/docs/guide.md",
        "/docs/index.html",
        "/empty.txt",
        "/hello world.txt",
        "/index.html",
        "/nodex/keep.txt",
    ]


async def test_every_listed_path_is_served(site: Path) -> None:
    static = StaticFiles(site)
    for path in static.paths():
        raw = "/".join(part.replace(" ", "%20") for part in path.split("/"))
        response = await static.respond(make_request(raw.replace("é", "%C3%A9"), "HEAD"))
        assert response is not None, path


@pytest.mark.skipif(os.name != "posix", reason="needs byte file names")
async def test_names_that_are_not_utf8_are_neither_listed_nor_served(site: Path) -> None:
    try:
        (site / os.fsdecode(b"bad\xff.txt")).write_bytes(b"x")
    except (OSError, UnicodeError):
        pytest.skip("the file system rejects the name")
    assert not any("bad" in path for path in StaticFiles(site).paths())
    assert await fetch(site, "/bad%ff.txt") is None


# --- the start-up index (kitpy serve) ---------------------------------------------------

SERVED_PATHS = ["/app.js", "/a/b.txt", "/", "/index.html", "/docs", "/docs/", "/%61pp.js"]
UNSERVED_PATHS = ["/missing.js", "/docs/missing", "/nodex", "/nodex/", "/app.js/", "/%ff.txt"]


def indexed(static: Path) -> StaticFiles:
    files = StaticFiles(static)
    files.index()
    return files


async def test_an_indexed_folder_answers_as_an_unindexed_one(site: Path) -> None:
    files = indexed(site)
    for path in SERVED_PATHS:
        response = await files.respond(make_request(path))
        plain = await must_fetch(site, path)
        assert response is not None, path
        assert (response.status, await body_of(response)) == (200, await body_of(plain)), path
    for path in UNSERVED_PATHS:
        assert await files.respond(make_request(path)) is None, path


async def test_a_path_outside_the_index_asks_no_disk(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = indexed(site)

    def no_disk(segments: list[str]) -> None:
        raise AssertionError(f"the disk was asked for {segments}")

    monkeypatch.setattr(files, "_find", no_disk)
    for path in ("/users/42", "/api/room", "/missing.js", "/docs/missing"):
        assert await files.respond(make_request(path)) is None


async def test_the_index_sees_changed_and_removed_files_and_new_ones_once_refreshed(
    site: Path,
) -> None:
    files = indexed(site)
    assert files.refresh() is False  # nothing changed: nothing listed again
    (site / "a" / "b.txt").write_bytes(b"changed")
    (site / "app.js").unlink()
    (site / "a" / "new.txt").write_bytes(b"new")
    (site / "fresh").mkdir()
    (site / "fresh" / "index.html").write_bytes(b"<p>fresh</p>")
    changed = await files.respond(make_request("/a/b.txt"))
    assert changed is not None and await body_of(changed) == b"changed"
    assert await files.respond(make_request("/app.js")) is None
    assert await files.respond(make_request("/a/new.txt")) is None  # not listed yet
    assert files.refresh() is True
    for path, body in (("/a/new.txt", b"new"), ("/fresh", b"<p>fresh</p>")):
        response = await files.respond(make_request(path))
        assert response is not None and await body_of(response) == body, path
    assert files.refresh() is False
