"""REDbot, an independent HTTP checker, on a real ``kitpy serve``: nothing it calls wrong.

Five exchanges, as docs/reliability.md lists them: a static file, a JSON endpoint, a
304 (If-None-Match with the file's ETag), a range request (206) and a HEAD. REDbot
also makes its own follow-up requests (conditional, ranged, compressed) for each. No
note may be BAD; a WARNING is allowed only when docs/reliability.md explains why
kitpy does it on purpose (``DELIBERATE`` below, by REDbot's exact summary).

REDbot runs from a virtualenv of its own, made here once from PyPI (``pip install
redbot``) and kept in ``KITPY_REDBOT_VENV`` (default: a folder in the temp dir): one of
its dependencies (sniffpy, through httplint) installs a top-level ``tests`` package,
which would shadow this repository's ``tests`` in the project's own environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import module_server
from .helpers import HOST, Server

SITE = {
    "static/notes.txt": "kitpy static file\n" * 200,
    "routes/api/items.py": """
        async def get(event):
            return {"body": {"items": list(range(20)), "name": "kitpy"}}
    """,
}
#: WARNINGs docs/reliability.md calls deliberate (by REDbot's summary), per exchange.
DELIBERATE = {
    # A dynamic response's caching is the application's to say (Cache-Control in
    # its response); kitpy adds none, as other servers and frameworks do.
    "json": {"This response allows caches to assign their own freshness lifetimes to it."},
}
CHECKER = Path(__file__).with_name("redbot_check.py")
REDBOT_VENV = Path(
    os.environ.get("KITPY_REDBOT_VENV", Path(tempfile.gettempdir()) / "kitpy-redbot-venv")
)


@pytest.fixture(scope="module")
def redbot_python() -> Path:
    """The Python of REDbot's own virtualenv, made (once) from PyPI."""
    python = REDBOT_VENV / "bin" / "python"
    ready = REDBOT_VENV / "redbot-installed"
    if not ready.exists():
        subprocess.run(
            [sys.executable, "-m", "venv", "--clear", str(REDBOT_VENV)], check=True, timeout=300
        )
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "redbot>=2.7"],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert done.returncode == 0, f"pip install redbot failed: {done.stderr[-2000:]}"
        ready.write_text("redbot\n")
    return python


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from module_server(tmp_path_factory, SITE, "")


def redbot(
    python: Path, url: str, method: str = "GET", headers: list[tuple[str, str]] | None = None
) -> Any:
    done = subprocess.run(
        [str(python), str(CHECKER), url, method, json.dumps(headers or [])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.mark.timeout(1200)  # the first run installs REDbot
def test_redbot_finds_nothing_wrong(server: Server, redbot_python: Path) -> None:
    base = f"http://{HOST}:{server.port}"
    etag = httpx.get(f"{base}/notes.txt").headers["etag"]
    exchanges = {
        "static": ("/notes.txt", "GET", [], 200),
        "json": ("/api/items", "GET", [], 200),
        "304": ("/notes.txt", "GET", [("If-None-Match", etag)], 304),
        "range": ("/notes.txt", "GET", [("Range", "bytes=10-99")], 206),
        "head": ("/notes.txt", "HEAD", [], 200),
    }
    problems = []
    for name, (path, method, headers, status) in exchanges.items():
        result = redbot(redbot_python, base + path, method, headers)
        if result["error"] or result["status"] != status:
            problems.append(f"{name}: status {result['status']}, error {result['error']}")
        allowed = DELIBERATE.get(name, set())
        for level, category, summary in result["notes"]:
            if level == "bad" or (level == "warning" and summary not in allowed):
                problems.append(f"{name}: {level} [{category}] {summary}")
    assert not problems, "\n".join(problems)
    # REDbot's own follow-up requests found the validators and ranges working.
    summaries = {note[2] for note in redbot(redbot_python, f"{base}/notes.txt")["notes"]}
    assert "If-None-Match conditional requests are supported." in summaries
    assert "A ranged request returned the correct partial content." in summaries
