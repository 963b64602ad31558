"""Files under a site's ``static/`` folder, served as-is from ``/``.

The runtime asks :meth:`StaticFiles.respond` first for every request; a file wins over a
route at the same path (docs/routes.md, "Static files"), and ``None`` hands the request on to
the routes. The choices, in the order a request meets them:

Methods
    Only GET and HEAD are served. Any other method, even on an existing file, gives
    ``None``: a route at that path may handle it, or the router answers 404/405.

Path to file
    ``request.url.raw_path`` is split on ``/`` first and each segment percent-decoded
    once (strict UTF-8), so ``%2F`` stays inside its segment, as in routing, and can
    never name a file. ``static/app.js`` answers ``/app.js``. A folder answers with
    its ``index.html`` both with and without the trailing slash (``/docs`` and
    ``/docs/`` serve ``static/docs/index.html``; ``/`` serves ``static/index.html``),
    as sirv does behind SvelteKit's adapter-node; no redirect, and no ``/about`` ->
    ``about.html`` guessing. A file asked for with a trailing slash (``/app.js/``) is
    not served.

Containment: no path escapes the folder
    Every refusal is ``None``, never 404 and never an exception, so a route (or the
    router's 404) answers, and the response does not tell whether something exists
    outside the folder. Refused: a segment that is empty (``//etc/passwd``), ``.`` or
    ``..`` (raw or ``%2e%2e``), or holds ``/`` (``%2f``), ``\\`` (raw or ``%5c``) or
    NUL; bytes that are not UTF-8; a path whose real location (symlinks resolved) is
    not inside the real ``static/`` folder; anything but a regular file (a FIFO would
    block a worker thread forever). Symlinks that stay inside the folder are followed.

Dot files
    A segment starting with ``.`` is not served (``.env``, ``.git/config``), neither in
    the URL nor in the resolved location, except ``.well-known`` as the first segment
    (RFC 8615 puts it at the root only).

Headers
    Content-Type from the extension with a built-in table (the platform's mime.types is
    not read, so it is the same everywhere): ``.js``/``.mjs`` -> ``text/javascript``,
    ``text/*`` gets ``; charset=utf-8``, unknown -> ``application/octet-stream``, and
    ``.gz`` (any compression suffix) is the archive itself, never a Content-Encoding.
    A strong ETag ``"<size>-<mtime_ns>"`` in hex (as nginx does with size and mtime),
    Last-Modified, ``Accept-Ranges: bytes`` and ``Cache-Control: max-age=0,
    must-revalidate``: static files have no content hash in their names, so caches may
    keep them but must revalidate every time, which the 304 below makes cheap (no
    ``public``: ``must-revalidate`` already lets a shared cache store a response to a
    request with ``Authorization``, RFC 9111 section 3.5). Files
    under an ``immutable_assets`` folder (``static/assets/``, where Vite puts
    fingerprinted files) get ``public, max-age=31536000, immutable`` instead.

Precompressed copies
    With ``precompressed`` (the default), ``app.js.br`` or ``app.js.gz`` beside
    ``app.js`` is sent for ``/app.js`` to a client whose Accept-Encoding takes ``br``
    (preferred) or ``gzip``, with ``Content-Encoding``, the Content-Type of ``app.js``
    and the copy's own ETag; a file that has copies says ``Vary: Accept-Encoding``
    whichever is sent. Asked for by its own name, ``app.js.gz`` is still the archive.

Single-page apps
    :meth:`StaticFiles.fallback` serves the ``spa_fallback`` file (``index.html``) for
    a GET or HEAD whose Accept header asks for ``text/html`` when no file and no route
    answers: the front end's router then handles the URL. API calls, scripts and
    images that are missing still get their 404.

Conditional requests (RFC 9110 section 13)
    If-None-Match (weak comparison, ``*`` included) answers 304 when it matches;
    only when it is absent, If-Modified-Since answers 304 when the file is not newer
    (an invalid date is ignored). A 304 carries ETag, Last-Modified and Cache-Control.
    If-Match and If-Unmodified-Since are not evaluated.

Ranges (RFC 9110 section 14)
    GET only; HEAD ignores Range, as the RFC requires for methods other than GET.
    One range, ``bytes=a-b``, ``a-`` or ``-n``, gives 206 with Content-Range; ``b``
    past the end is clamped, ``-n`` longer than the file is the whole file. A range
    that starts at or past the end (or ``-0``) gives 416 with ``Content-Range:
    bytes */size``. More than one range is answered with the whole file as 200 (the
    RFC lets a server ignore Range; multipart/byteranges is rarely used by clients
    of static files); so is a malformed header or another unit. If-Range is honoured:
    a strong ETag equal to ours or a date equal to Last-Modified keeps the range,
    anything else (a weak ETag included) gives the whole file as 200.

Index
    ``kitpy serve`` lists the folder once at start-up (:meth:`StaticFiles.index`, in a
    worker thread, before the first request): a request for a path that named no
    file then goes to the routes at once, with no file-system call and no worker
    thread. A file changed or removed is seen at once, since indexed paths are still
    checked on disk. A worker thread looks at the folders' modification times every
    :data:`REFRESH_EVERY` seconds and lists them again when one changed, so a file
    added while the server runs (a front end rebuilt in place) is served within about
    a second. ``kitpy dev`` and :class:`~kitpy.testing.TestClient` do not index: there
    every new file is served at once.

Reading
    All file-system calls run in a worker thread (``anyio.to_thread``). The body is an
    async iterator of 64 KiB chunks that opens the file when first iterated, so a
    response dropped unsent (a hook replaced it) leaves no file open. If the file
    changed between the headers and the body (other inode, size or mtime) the
    iterator raises ``OSError``: the length and ETag already sent would be wrong, so
    the connection has to fail rather than send other bytes. HEAD, 304 and 416 never
    open the file.
"""

from __future__ import annotations

import mimetypes
import os
import re
import stat
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import BinaryIO, Literal
from urllib.parse import unquote_to_bytes

from anyio import to_thread

from kitpy.http import Headers, Request, Response
from kitpy.runtime.compress import accepted_codings

__all__ = ("StaticFiles",)

CHUNK_SIZE = 64 * 1024
#: Seconds between two looks at an indexed folder's modification times.
REFRESH_EVERY = 1.0
CACHE_CONTROL = "max-age=0, must-revalidate"
#: For files under an ``immutable_assets`` folder: their names change with their content.
IMMUTABLE_CACHE_CONTROL = "public, max-age=31536000, immutable"
#: Precompressed siblings, in the order they are preferred: ``app.js.br``, ``app.js.gz``.
_PRECOMPRESSED = (("br", ".br"), ("gzip", ".gz"))
INDEX_FILE = "index.html"
WELL_KNOWN = ".well-known"
DEFAULT_TYPE = "application/octet-stream"

# Pinned here so the answer does not depend on the Python version or the platform's
# mime.types (Python 3.11 says application/javascript for .js; RFC 9239 says text/).
_EXTRA_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".cjs": "text/javascript",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".wasm": "application/wasm",
    ".md": "text/markdown",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
}
# A compressed file is sent as the archive it is, never with a Content-Encoding.
_COMPRESSED_TYPES = {"gzip": "application/gzip", "bzip2": "application/x-bzip2"}

# A fresh MimeTypes holds Python's built-in table only (init() feeds the module-level
# one from the system files, not this instance).
_MIME = mimetypes.MimeTypes()
for _ext, _type in _EXTRA_TYPES.items():
    _MIME.add_type(_type, _ext)

# entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE (RFC 9110 section 8.8.3); etagc may hold
# commas, so a list is scanned with this rather than split on ",".
_ETAG_RE = re.compile(r'\s*(W/)?("[^"]*")\s*(?:,|$)')
_RANGE_RE = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


def _content_type(name: str) -> str:
    """The Content-Type header for a file name, by its extension."""
    mime, encoding = _MIME.guess_type(name, strict=False)
    if encoding is not None:
        return _COMPRESSED_TYPES.get(encoding, DEFAULT_TYPE)
    if mime is None:
        return DEFAULT_TYPE
    if mime.startswith("text/"):
        return f"{mime}; charset=utf-8"
    return mime


@dataclass(frozen=True, slots=True)
class _File:
    """A regular file found inside the folder, as stat saw it when the headers were made."""

    path: str  # resolved, symlinks followed
    name: str  # as the URL named it (``index.html`` for a folder), for the Content-Type
    size: int
    mtime_ns: int
    device: int
    inode: int

    def same_as(self, st: os.stat_result) -> bool:
        """Whether ``st`` still describes this file, unchanged."""
        now = (st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino)
        return now == (self.size, self.mtime_ns, self.device, self.inode)

    @property
    def etag(self) -> str:
        return f'"{self.size:x}-{self.mtime_ns:x}"'

    @property
    def mtime(self) -> int:
        """Modification time in whole seconds, the precision of an HTTP date."""
        return self.mtime_ns // 1_000_000_000

    @property
    def last_modified(self) -> str:
        return formatdate(self.mtime, usegmt=True)


class StaticFiles:
    """Serve the files of one folder; ``respond`` gives ``None`` when none matches.

    ``immutable``: folders (relative to the folder, e.g. ``"assets"``) whose files get
    :data:`IMMUTABLE_CACHE_CONTROL`; ``precompressed``: serve ``x.br`` / ``x.gz``
    beside ``x``; ``spa_fallback``: the file :meth:`fallback` serves.
    """

    def __init__(
        self,
        directory: Path,
        *,
        immutable: Sequence[str] = (),
        precompressed: bool = True,
        spa_fallback: str | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.immutable = tuple(tuple(folder.strip("/").split("/")) for folder in immutable)
        self.precompressed = precompressed
        self.spa_fallback = spa_fallback
        #: The URL paths of the files found by :meth:`index` (None: not indexed, every
        #: GET or HEAD asks the disk).
        self.indexed: frozenset[str] | None = None
        #: Every folder the index walked, with its modification time then.
        self._folders: dict[str, int] = {}

    def index(self) -> None:
        """Remember which URL paths name a file now (blocking: run it in a thread).

        Afterwards a request for any other path is handed on to the routes at once,
        without a worker thread; a path in the index is still checked on disk, so a
        file changed or removed since is seen. :meth:`refresh` takes in files added
        later. ``kitpy serve`` indexes at start-up and refreshes every second.
        """
        folders: dict[str, int] = {}
        self.indexed = frozenset(self._walk(folders))
        self._folders = folders

    def refresh(self) -> bool:
        """Index again if a folder changed since (blocking); True when it did.

        A file added, removed or renamed changes its folder's modification time, so
        this costs one ``stat`` per folder while nothing changed.
        """
        for folder, mtime_ns in self._folders.items():
            try:
                if os.stat(folder).st_mtime_ns == mtime_ns:
                    continue
            except OSError:
                pass
            self.index()
            return True
        if not self._folders and self.directory.is_dir():  # static/ made after start-up
            self.index()
            return True
        return False

    async def respond(self, request: Request) -> Response | None:
        """The response for ``request`` if it names a servable file, else ``None``."""
        if request.method not in ("GET", "HEAD"):
            return None
        segments = _url_segments(request.url.raw_path)
        if segments is None:
            return None
        if self.indexed is not None and _indexed_path(segments) not in self.indexed:
            return None
        return await self._serve(request, segments)

    async def fallback(self, request: Request) -> Response | None:
        """The single-page app's page for a GET/HEAD of an HTML page no route answers.

        ``None`` without ``spa_fallback``, for other methods, or when the client does
        not ask for HTML (``fetch`` of a missing API path, a script, an image).
        """
        if self.spa_fallback is None or request.method not in ("GET", "HEAD"):
            return None
        if "text/html" not in request.headers.get("accept", ""):
            return None
        return await self._serve(request, self.spa_fallback.split("/"))

    async def _serve(self, request: Request, segments: list[str]) -> Response | None:
        found = await to_thread.run_sync(self._find, segments)
        if found is None:
            return None
        cache_control = CACHE_CONTROL
        if any(tuple(segments[: len(folder)]) == folder for folder in self.immutable):
            cache_control = IMMUTABLE_CACHE_CONTROL
        if not self.precompressed:
            return _file_response(request, found, cache_control)
        siblings = await to_thread.run_sync(self._siblings, found)
        if not siblings:
            return _file_response(request, found, cache_control)
        accepted = accepted_codings(request.headers.get("accept-encoding", ""))
        for coding, sibling in siblings:
            if coding in accepted:
                return _file_response(request, sibling, cache_control, coding)
        return _file_response(request, found, cache_control, "identity")

    def _siblings(self, found: _File) -> list[tuple[str, _File]]:
        """``(coding, file)`` for each precompressed copy of ``found``, best first."""
        present: list[tuple[str, _File]] = []
        root = os.path.realpath(self.directory)
        for coding, suffix in _PRECOMPRESSED:
            candidate = found.path + suffix
            try:
                real = os.path.realpath(candidate)
                st = os.stat(real)
            except (OSError, ValueError, RuntimeError):
                continue
            if _inside(root, real) and stat.S_ISREG(st.st_mode):
                present.append(
                    (
                        coding,
                        _File(real, found.name, st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino),
                    )
                )
        return present

    def paths(self) -> list[str]:
        """Decoded URL paths of every file served, sorted; a folder's ``index.html``
        adds the folder's own path (``/docs``, ``/``). Reads the disk: call it outside
        the event loop or in a thread."""
        return sorted(self._walk({}))

    def _walk(self, folders: dict[str, int]) -> set[str]:
        """The URL paths :meth:`paths` lists; ``folders`` gets each folder's mtime."""
        urls: set[str] = set()
        if not self.directory.is_dir():
            return urls
        root = os.path.realpath(self.directory)

        def walk(parts: list[str], ancestors: frozenset[str]) -> None:
            folder = os.path.join(root, *parts)
            try:
                real = os.path.realpath(folder)
                folders[folder] = os.stat(folder).st_mtime_ns
                names = sorted(os.listdir(folder))
            except OSError:
                return
            if real in ancestors:  # a symlink back up the tree
                return
            for name in names:
                segments = [*parts, name]
                if not _segment_ok(name, len(parts)) or not _utf8(name):
                    continue
                path = os.path.join(folder, name)
                if os.path.isdir(path):
                    if _inside(root, os.path.realpath(path)):
                        walk(segments, ancestors | {real})
                elif self._find(segments) is not None:
                    urls.add("/" + "/".join(segments))
                    if name == INDEX_FILE:
                        urls.add("/" + "/".join(parts))

        walk([], frozenset())
        return urls

    def _find(self, segments: list[str]) -> _File | None:
        """The regular file that URL segments name, or None. Blocking: run in a thread.

        The last segment is ``""`` for a path ending in ``/``: only a folder's index
        answers that.
        """
        try:
            root = os.path.realpath(self.directory)
            if not os.path.isdir(root):
                return None
            *parents, last = segments
            if last == "":
                candidate = os.path.join(root, *parents, INDEX_FILE)
            else:
                candidate = os.path.join(root, *parents, last)
                if os.path.isdir(candidate):
                    candidate = os.path.join(candidate, INDEX_FILE)
            real = os.path.realpath(candidate)
            if not _inside(root, real):
                return None
            st = os.stat(real)
        except (OSError, ValueError, RuntimeError):
            # OSError: missing, unreadable, ELOOP, name too long; ValueError: a name
            # the OS rejects; RuntimeError: a symlink loop on some Python versions.
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        return _File(
            real, os.path.basename(candidate), st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino
        )


def _indexed_path(segments: list[str]) -> str:
    """The :meth:`StaticFiles.paths` entry decoded URL segments would be served from."""
    if segments[-1] == "":  # a folder's index: /docs/ -> /docs, / -> /
        segments = segments[:-1]
    return "/" + "/".join(segments)


def _url_segments(raw_path: str) -> list[str] | None:
    """Split a raw (percent-encoded) path into decoded segments; None if refused.

    Split first, then decode each segment once, so ``%2F`` cannot become a separator.
    ``/`` gives ``[""]``, ``/docs/`` gives ``["docs", ""]``.
    """
    if not raw_path.startswith("/"):
        return None
    raw_segments = raw_path[1:].split("/")
    segments: list[str] = []
    for index, raw in enumerate(raw_segments):
        try:
            segment = unquote_to_bytes(raw).decode("utf-8") if "%" in raw else raw
        except UnicodeDecodeError:
            return None
        is_last = index == len(raw_segments) - 1
        if segment == "" and is_last:
            segments.append(segment)
            continue
        if not _segment_ok(segment, index):
            return None
        segments.append(segment)
    return segments


def _segment_ok(segment: str, index: int) -> bool:
    """Whether one decoded path segment may name a file or folder in the folder."""
    if not segment or "/" in segment or "\\" in segment or "\x00" in segment:
        return False
    if segment.startswith("."):  # also "." and ".."
        return index == 0 and segment == WELL_KNOWN
    return True


def _utf8(name: str) -> bool:
    """Whether a name read from the disk can be spelled in a URL (no surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _inside(root: str, real: str) -> bool:
    """Whether the resolved ``real`` lies in the resolved ``root``, dot rules included."""
    try:
        relative = Path(real).relative_to(root)
    except ValueError:
        return False
    parts = relative.parts
    return bool(parts) and all(_segment_ok(p, i) for i, p in enumerate(parts))


def _file_response(
    request: Request, found: _File, cache_control: str = CACHE_CONTROL, coding: str | None = None
) -> Response:
    """``found`` as a response; ``coding``: it is a precompressed copy in that coding
    (``"identity"``: the plain file of one that has copies), so it varies by
    Accept-Encoding."""
    headers = Headers(
        {
            "etag": found.etag,
            "last-modified": found.last_modified,
            "cache-control": cache_control,
        }
    )
    if coding is not None:
        headers["vary"] = "Accept-Encoding"
    if _not_modified(request.headers, found):
        return Response(None, 304, headers)

    headers["content-type"] = _content_type(found.name)
    if coding not in (None, "identity"):
        headers["content-encoding"] = str(coding)
    headers["accept-ranges"] = "bytes"
    start, length, status = 0, found.size, 200
    if request.method == "GET":
        byte_range = _requested_range(request.headers, found)
        if isinstance(byte_range, str):  # "unsatisfiable"
            headers["content-range"] = f"bytes */{found.size}"
            headers["content-length"] = "0"
            del headers["content-type"]
            return Response(None, 416, headers)
        if byte_range is not None:
            start, end = byte_range
            length, status = end - start + 1, 206
            headers["content-range"] = f"bytes {start}-{end}/{found.size}"
    headers["content-length"] = str(length)
    if request.method == "HEAD" or length == 0:
        return Response(None, status, headers)
    return Response(_read_chunks(found, start, length), status, headers)


def _not_modified(headers: Headers, found: _File) -> bool:
    """RFC 9110 section 13.2.2: If-None-Match first; If-Modified-Since only without it."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        if if_none_match.strip() == "*":
            return True
        ours = found.etag
        return any(tag == ours for _weak, tag in _entity_tags(if_none_match))
    since = _http_date(headers.get("if-modified-since"))
    return since is not None and found.mtime <= since


def _requested_range(
    headers: Headers, found: _File
) -> tuple[int, int] | Literal["unsatisfiable"] | None:
    """The one satisfiable (first, last) byte range, "unsatisfiable", or None for all."""
    value = headers.get("range")
    if value is None:
        return None
    if_range = headers.get("if-range")
    if if_range is not None and not _if_range_holds(if_range.strip(), found):
        return None
    unit, _, spec = value.partition("=")
    if unit.strip().lower() != "bytes":
        return None
    ranges = [r for r in spec.split(",") if r.strip()]
    if len(ranges) != 1:
        return None  # several ranges (or none): the whole file, see the module docstring
    match = _RANGE_RE.match(ranges[0])
    if match is None:
        return None
    first, last = match.groups()
    size = found.size
    if first == "":
        if last == "":
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return max(size - suffix, 0), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # invalid range-spec: ignore the header (RFC 9110 section 14.1.1)
    if start >= size:
        return "unsatisfiable"
    end = min(int(last), size - 1) if last else size - 1
    return start, end


def _if_range_holds(value: str, found: _File) -> bool:
    """If-Range (RFC 9110 section 13.1.5): strong ETag match or exact Last-Modified."""
    if value.startswith(('"', "W/")):
        tags = _entity_tags(value)
        return len(tags) == 1 and not tags[0][0] and tags[0][1] == found.etag
    date = _http_date(value)
    return date is not None and date == found.mtime


def _entity_tags(value: str) -> list[tuple[bool, str]]:
    """(weak, opaque-tag) pairs of a comma-separated entity-tag list; bad items skipped."""
    return [(bool(m.group(1)), m.group(2)) for m in _ETAG_RE.finditer(value)]


def _http_date(value: str | None) -> int | None:
    """An HTTP date as epoch seconds, or None when absent or invalid."""
    if value is None:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp())


def _open_unchanged(found: _File, start: int) -> BinaryIO:
    """Open the file and check it is the one the headers describe. Blocking."""
    # O_NONBLOCK: should a FIFO have replaced the file, open() must not hang the thread.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    file = os.fdopen(os.open(found.path, flags), "rb")
    try:
        if not found.same_as(os.fstat(file.fileno())):
            raise OSError(f"{found.path} changed while being served")
        file.seek(start)
    except BaseException:
        file.close()
        raise
    return file


async def _read_chunks(found: _File, start: int, length: int) -> AsyncIterator[bytes]:
    """Yield ``length`` bytes from ``start`` in CHUNK_SIZE pieces, reading in a thread."""
    file = await to_thread.run_sync(_open_unchanged, found, start)
    try:
        remaining = length
        while remaining > 0:
            chunk = await to_thread.run_sync(file.read, min(CHUNK_SIZE, remaining))
            if not chunk:
                raise OSError(f"{found.path} shrank while being served")
            remaining -= len(chunk)
            yield chunk
    finally:
        # Closing a regular file does not block; an await here could be cancelled
        # and leave the file open.
        file.close()
