"""``kitpy dev``: a real supervisor in a subprocess, edited files, reloads."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from acceptance.kit import ECHO_ROUTE, KitpyProcess
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from kitpy.cli.dev_supervisor import is_static, is_watched

#: Bounds (seconds) on waiting for the dev server: to start, to reload, to stop.
START_TIMEOUT = 30.0
RELOAD_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
URL = re.compile(r"http://127\.0\.0\.1:(\d+)/")

INDEX = """from kitpy import text


def get(event):
    return text({text!r})
"""

BROKEN = """from kitpy import text


def get(event)
    return text("never")
"""


class DevServer(KitpyProcess):
    """``python -m kitpy dev SITE --port 0``, its output read line by line in a thread."""

    def __init__(self, site: Path) -> None:
        super().__init__("dev", str(site), "--port", "0")
        try:
            self.port = int(self.wait_for(URL, START_TIMEOUT).group(1))
        except BaseException:
            self.stop()
            raise
        self.url = f"http://127.0.0.1:{self.port}"

    def poll(self, path: str, accept: Callable[[httpx.Response], bool]) -> httpx.Response:
        """GET ``path`` until ``accept(response)`` (bounded by RELOAD_TIMEOUT)."""
        deadline = time.monotonic() + RELOAD_TIMEOUT
        last: httpx.Response | str = "no response"
        while time.monotonic() < deadline:
            try:
                response = httpx.get(self.url + path, timeout=5)
            except httpx.TransportError as exc:
                last = repr(exc)
            else:
                if accept(response):
                    return response
                last = response
            time.sleep(0.05)
        shown = last if isinstance(last, str) else f"{last.status_code} {last.text[:500]}"
        pytest.fail(f"GET {path}: never accepted; last: {shown}\noutput:\n{self.text}")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "routes").mkdir(parents=True)
    (root / "routes" / "index.py").write_text(INDEX.format(text="version 1"))
    (root / "routes" / "ws.py").write_text(textwrap.dedent(ECHO_ROUTE))
    (root / "kitpy.toml").write_text('[env]\nGREETING = "hi"\n')
    (root / "static").mkdir()
    (root / "static" / "hello.txt").write_text("static 1")
    return root


@pytest.fixture
def dev(site: Path) -> Iterator[DevServer]:
    server: DevServer | None = None
    try:
        server = DevServer(site)
        yield server
    finally:
        if server is not None:
            server.stop()


def has_text(expected: str) -> Callable[[httpx.Response], bool]:
    return lambda response: response.status_code == 200 and response.text == expected


def test_it_prints_the_url_and_the_route_table(dev: DevServer) -> None:
    assert "routes/index.py" in dev.text
    assert "routes/ws.py" in dev.text
    assert dev.poll("/", has_text("version 1")).status_code == 200


def test_an_error_in_a_handler_shows_its_traceback(dev: DevServer, site: Path) -> None:
    (site / "routes" / "boom.py").write_text("def get(event):\n    raise RuntimeError('kaboom')\n")
    page = dev.poll("/boom", lambda response: response.status_code == 500)
    assert "kaboom" in page.text
    assert "Traceback" in page.text
    assert "boom.py" in page.text


def test_an_edited_route_is_served_after_a_reload(dev: DevServer, site: Path) -> None:
    dev.poll("/", has_text("version 1"))
    (site / "routes" / "index.py").write_text(INDEX.format(text="version 2"))
    dev.poll("/", has_text("version 2"))
    (site / "routes" / "new.py").write_text(INDEX.format(text="a new route"))
    dev.poll("/new", has_text("a new route"))


def test_a_broken_route_is_shown_until_it_is_fixed(dev: DevServer, site: Path) -> None:
    dev.poll("/", has_text("version 1"))
    (site / "routes" / "index.py").write_text(BROKEN)
    page = dev.poll("/", lambda response: response.status_code == 500)
    assert re.search(r"routes/index\.py:4\b", page.text), page.text
    assert "text/html" in page.headers["content-type"]
    # Every path gets the error, not only the broken route.
    assert dev.poll("/ws", lambda response: response.status_code == 500).text == page.text

    (site / "routes" / "index.py").write_text(INDEX.format(text="fixed"))
    dev.poll("/", has_text("fixed"))
    assert dev.process.poll() is None


def test_a_broken_kitpy_toml_is_shown_until_it_is_fixed(dev: DevServer, site: Path) -> None:
    dev.poll("/", has_text("version 1"))
    (site / "kitpy.toml").write_text('[env]\nGREETING = "hi\n')
    page = dev.poll("/", lambda response: response.status_code == 500)
    assert "kitpy.toml:2" in page.text, page.text
    (site / "kitpy.toml").write_text('[env]\nGREETING = "hello"\n')
    dev.poll("/", has_text("version 1"))


def test_websockets_are_closed_with_1012_on_reload(dev: DevServer, site: Path) -> None:
    dev.poll("/", has_text("version 1"))
    with connect(f"ws://127.0.0.1:{dev.port}/ws", proxy=None, open_timeout=10) as ws:
        ws.send("ping")
        assert ws.recv(timeout=10) == "ping"
        (site / "routes" / "index.py").write_text(INDEX.format(text="version 2"))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=RELOAD_TIMEOUT)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1012
    dev.poll("/", has_text("version 2"))


def test_static_files_are_served_fresh_without_a_reload(dev: DevServer, site: Path) -> None:
    dev.poll("/hello.txt", has_text("static 1"))
    (site / "static" / "hello.txt").write_text("static 2")
    (site / ".kitpy").mkdir(exist_ok=True)
    (site / ".kitpy" / "scratch").write_text("state")
    dev.poll("/hello.txt", has_text("static 2"))
    assert "reloading" not in dev.text


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_worker_and_frees_the_port(site: Path, signum: int) -> None:
    server = DevServer(site)
    try:
        server.poll("/", has_text("version 1"))
        os.kill(server.process.pid, signum)
        assert server.process.wait(STOP_TIMEOUT) == 0
    finally:
        server.stop()
    assert "stopped" in server.text
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()


def children_of(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux /proc)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_the_worker_stops_when_the_supervisor_is_killed(site: Path) -> None:
    server = DevServer(site)
    workers: list[int] = []
    try:
        server.poll("/", has_text("version 1"))
        workers = children_of(server.process.pid)
        assert workers
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(STOP_TIMEOUT)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and any(Path(f"/proc/{w}").exists() for w in workers):
            time.sleep(0.05)
        for worker in workers:  # a zombie (exited, not yet reaped by init) is fine
            stat = Path(f"/proc/{worker}/stat")
            assert not stat.exists() or stat.read_text().split()[2] == "Z"
    finally:
        server.stop()
        for worker in workers:
            try:
                os.kill(worker, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_site_broken_from_the_start_is_served_as_an_error(site: Path) -> None:
    (site / "routes" / "index.py").write_text(BROKEN)
    server = DevServer(site)
    try:
        page = server.poll("/", lambda response: response.status_code == 500)
        assert re.search(r"routes/index\.py:4\b", page.text), page.text
        (site / "routes" / "index.py").write_text(INDEX.format(text="fixed"))
        server.poll("/", has_text("fixed"))
    finally:
        server.stop()


def test_a_missing_folder_or_a_busy_port_is_an_error(tmp_path: Path, site: Path) -> None:
    missing = subprocess.run(
        [sys.executable, "-m", "kitpy", "dev", str(tmp_path / "nowhere"), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
    )
    assert missing.returncode == 1
    assert "no such folder" in missing.stderr

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "kitpy", "dev", str(site), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: the port is in use" in result.stderr
    assert "--port 0" in result.stderr  # how to pick another
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("name", "watched"),
    [
        pytest.param("routes/index.py", True, id="route"),
        pytest.param("routes/api/[id].py", True, id="nested-route"),
        pytest.param("routes/_helpers.txt", True, id="anything-under-routes"),
        pytest.param("objects/room.py", True, id="object"),
        pytest.param("hooks.py", True, id="hooks"),
        pytest.param("matchers.py", True, id="matchers"),
        pytest.param("kitpy.toml", True, id="config"),
        pytest.param("lib/util.py", True, id="other-python"),
        pytest.param("static", True, id="the-static-folder-itself"),
        pytest.param("static/app.js", False, id="static"),
        pytest.param("static/app.py", False, id="python-under-static"),
        pytest.param("tests/test_site.py", False, id="tests"),
        pytest.param(".kitpy/objects.sqlite3", False, id="state"),
        pytest.param("routes/__pycache__/index.cpython-311.pyc", False, id="bytecode"),
        pytest.param("README.md", False, id="readme"),
        pytest.param(".venv/lib/x.py", False, id="venv"),
    ],
)
def test_which_files_reload(tmp_path: Path, name: str, watched: bool) -> None:
    assert is_watched(tmp_path, tmp_path / name) is watched


@pytest.mark.parametrize(
    ("name", "static"),
    [
        ("static/app.js", True),
        ("static/assets/index-3f2a.css", True),
        ("static/.DS_Store", False),
        ("static/app.js~", False),
        ("static", False),
        ("routes/index.py", False),
    ],
)
def test_which_files_reload_open_pages(tmp_path: Path, name: str, static: bool) -> None:
    assert is_static(tmp_path, tmp_path / name) is static


SLOW_INDEX = """import time

from kitpy import text

time.sleep(1.0)  # a site slow to import: the reload leaves a wide gap between workers


def get(event):
    return text({text!r})
"""


def raw_get(port: int) -> str:
    """GET / on a new connection; the body, or the error."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=RELOAD_TIMEOUT) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    except OSError as exc:
        return f"error {exc!r}"
    head, _, body = data.partition(b"\r\n\r\n")
    return f"{head.split(b' ')[1].decode()} {body.decode()}" if head else "error: no answer"


def test_no_connection_is_refused_during_a_reload(dev: DevServer, site: Path) -> None:
    """The supervisor holds the socket: a client arriving mid-reload waits, never fails."""
    dev.poll("/", has_text("version 1"))
    stop = threading.Event()
    seen: list[str] = []

    def hammer() -> None:
        while not stop.is_set():  # a new connection each time: each one must be accepted
            seen.append(raw_get(dev.port))

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        for version in (2, 3):
            deadline = time.monotonic() + RELOAD_TIMEOUT
            while f"200 version {version - 1}" not in seen[-5:] and time.monotonic() < deadline:
                time.sleep(0.05)
            (site / "routes" / "index.py").write_text(SLOW_INDEX.format(text=f"version {version}"))
        deadline = time.monotonic() + RELOAD_TIMEOUT
        while "200 version 3" not in seen[-5:] and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(RELOAD_TIMEOUT)
    assert [entry for entry in seen if not entry.startswith("200 ")] == []
    assert "200 version 1" in seen and "200 version 3" in seen


PAGE_ROUTE = """from kitpy import html


def get(event):
    return html("<!doctype html><html><body><p>from a route</p></body></html>")
"""


def test_pages_get_the_live_reload_script(dev: DevServer, site: Path) -> None:
    (site / "static" / "page.html").write_text("<html><BODY><p>static</p></BODY></html>\n")
    (site / "routes" / "page.py").write_text(PAGE_ROUTE)
    for path in ("/page.html", "/page"):
        page = dev.poll(path, lambda response: response.status_code == 200)
        assert page.text.index("data-kitpy-dev-reload") < page.text.lower().rindex("</body>")
        assert "/__kitpy/reload" in page.text
        assert int(page.headers["content-length"]) == len(page.content)
        head = httpx.head(dev.url + path, timeout=5)  # HEAD announces GET's length
        assert (head.status_code, head.content) == (200, b"")
        assert head.headers["content-length"] == page.headers["content-length"]
    (site / "routes" / "boom.py").write_text("def get(event):\n    raise RuntimeError('x')\n")
    dev.poll("/boom", lambda response: response.status_code == 500)
    browser = {"accept": "text/html"}  # the error page is HTML for a browser
    page = httpx.get(dev.url + "/boom", headers=browser, timeout=5)
    assert page.status_code == 500 and "data-kitpy-dev-reload" in page.text
    head = httpx.head(dev.url + "/boom", headers=browser, timeout=5)
    assert head.headers["content-length"] == page.headers["content-length"]
    assert dev.poll("/hello.txt", has_text("static 1")).text == "static 1"
    assert "data-kitpy-dev-reload" not in dev.poll("/", has_text("version 1")).text


def test_open_pages_are_told_to_reload(dev: DevServer, site: Path) -> None:
    dev.poll("/", has_text("version 1"))
    with connect(f"ws://127.0.0.1:{dev.port}/__kitpy/reload", proxy=None) as page:
        (site / "static" / "hello.txt").write_text("static 2")  # no restart: a message
        assert page.recv(timeout=RELOAD_TIMEOUT) == "reload"
        assert "reloading" not in dev.text
        (site / "routes" / "index.py").write_text(INDEX.format(text="version 2"))
        with pytest.raises(ConnectionClosed) as closed:  # a restart: the socket closes
            page.recv(timeout=RELOAD_TIMEOUT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    dev.poll("/", has_text("version 2"))


def test_a_folder_that_is_no_site_gets_a_warning(tmp_path: Path) -> None:
    server = DevServer(tmp_path)
    try:
        server.poll("/", lambda response: response.status_code == 404)
    finally:
        server.stop()
    assert "does not look like a site" in server.text


COOKIE_ROUTE = """def get(event):
    event.cookies.set("session", "abc")  # Secure by default off localhost
    return {"body": {"ok": True}}
"""


def test_a_secure_cookie_over_plain_http_is_warned_once(dev: DevServer, site: Path) -> None:
    (site / "routes" / "login.py").write_text(COOKIE_ROUTE)
    (site / "routes" / "boom.py").write_text("def get(event):\n    raise RuntimeError('x')\n")
    dev.poll("/login", lambda response: response.status_code == 200)
    assert "Secure" not in dev.text  # 127.0.0.1: the cookie is not Secure, no warning
    remote = {"host": f"devbox.example:{dev.port}", "accept": "text/html"}
    for _ in range(2):
        response = httpx.get(dev.url + "/login", headers=remote, timeout=10)
        assert "Secure" in response.headers["set-cookie"]
    page = httpx.get(dev.url + "/boom", headers=remote, timeout=10)
    assert page.status_code == 500
    assert "data-kitpy-dev-notice" in page.text and "&#x27;session&#x27; is Secure" in page.text
    warning = "the cookie 'session' is Secure, but devbox.example is served over plain http"
    deadline = time.monotonic() + RELOAD_TIMEOUT
    while warning not in dev.text and time.monotonic() < deadline:
        time.sleep(0.05)
    assert dev.text.count(warning) == 1, dev.text


LOGGING_ROUTE = """import logging

logger = logging.getLogger(__name__)


def get(event):
    logger.info("info from the route")
    logger.debug("debug from the route")
    return {"body": "logged"}
"""


def test_info_logs_of_the_site_are_shown(dev: DevServer, site: Path) -> None:
    (site / "routes" / "logs.py").write_text(LOGGING_ROUTE)
    dev.poll("/logs", lambda response: response.status_code == 200)
    deadline = time.monotonic() + RELOAD_TIMEOUT
    while "info from the route" not in dev.text and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "INFO info from the route" in dev.text
    assert "debug from the route" not in dev.text  # --log-level info is the default
