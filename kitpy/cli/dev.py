"""``kitpy dev [DIR]``: the development server, reloaded on every change.

Theory of operation
-------------------
Two processes. The *supervisor* (``kitpy dev``) never imports the site: it watches the
site's files with watchfiles and runs the site in a *worker* subprocess
(``python -m kitpy.cli.dev --worker ...``), which is ``kitpy serve`` with three
differences: ``dev=True`` (a 500 shows its traceback), WebSockets are closed with 1012
("service restart") when it stops, so browsers reconnect at once, and a coloured,
concise request log.

When a watched file changes (anything under ``routes/`` or ``objects/``, ``hooks.py``,
``matchers.py``, ``kitpy.toml``, or another Python file of the site outside
``static/`` and ``tests/``) the supervisor stops the worker with SIGTERM (graceful
shutdown: requests in flight finish, storage is flushed, ``.kitpy/`` is kept) and
starts a new one on the same port.

A site that does not load (a syntax error in a route, a broken kitpy.toml) does not
stop the dev server: the worker then serves a small error app instead, on the same
port, answering every request with a 500 page that shows the error (file, line,
message). The page reloads itself when the worker is replaced, i.e. once the file is
saved again.

Two pipes tie the processes together:

- *ready*: the worker writes ``ok PORT`` or ``broken PORT`` once it listens, so the
  supervisor learns the port ``--port 0`` picked and keeps it for later workers;
- *lifeline*: the supervisor holds its write end; when the supervisor dies (even
  with SIGKILL) the worker reads end-of-file and shuts itself down, so no worker is
  left holding the port.

The worker runs in its own session: Ctrl-C reaches only the supervisor, which then
stops the worker (SIGTERM, then SIGKILL after a grace period) and exits 0.
"""

from __future__ import annotations

import argparse
import html
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from kitpy.errors import InitError, KitpyError
from kitpy.http.response import Response
from kitpy.http.response import html as html_response
from kitpy.http.response import json as json_response
from kitpy.http.websocket import WebSocketPair

if TYPE_CHECKING:
    from kitpy.runtime.app import SiteApp

__all__ = (
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "RELOAD_CLOSE_CODE",
    "DevError",
    "dev_command",
    "is_watched",
    "worker_main",
)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5173
#: Close code for WebSockets when a reload stops the worker (RFC 6455 registry:
#: 1012 "Service Restart"), so clients reconnect without backing off.
RELOAD_CLOSE_CODE = 1012

#: Folders whose files all count (besides other Python files of the site).
WATCHED_DIRS = ("routes", "objects")
#: Files at the site root that count, whatever their suffix.
WATCHED_FILES = ("hooks.py", "matchers.py", "kitpy.toml")
#: Never watched: state, static files (served fresh from disk), the site's tests.
IGNORED_DIRS = frozenset(
    {".kitpy", "static", "tests", "__pycache__", "node_modules", ".git", ".venv", "venv"}
)

#: Editor droppings that must not trigger a reload (backups, swap and probe files).
IGNORED_SUFFIXES = ("~", ".swp", ".swx", ".tmp", ".pyc")

#: Seconds a worker gets to start listening before the supervisor gives up on it.
START_TIMEOUT = 60.0
#: Seconds a worker gets to shut down gracefully before it is killed.
STOP_TIMEOUT = 15.0
#: How often the supervisor wakes up to notice a worker that died on its own (ms);
#: also how long the first worker waits for the file watcher to be in place.
POLL_MS = 200


class DevError(KitpyError):
    """``kitpy dev`` cannot start (no such folder, port in use...)."""


# -- output ----------------------------------------------------------------------------


class _Style:
    """ANSI colours when the stream is a terminal (NO_COLOR / FORCE_COLOR honoured)."""

    CODES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33",
             "blue": "34", "magenta": "35", "cyan": "36"}  # fmt: skip

    def __init__(self, stream: TextIO) -> None:
        if os.environ.get("NO_COLOR"):
            self.enabled = False
        elif os.environ.get("FORCE_COLOR"):
            self.enabled = True
        else:
            self.enabled = hasattr(stream, "isatty") and stream.isatty()

    def __call__(self, text: str, *styles: str) -> str:
        if not self.enabled or not styles:
            return text
        codes = ";".join(self.CODES[name] for name in styles)
        return f"\x1b[{codes}m{text}\x1b[0m"


def _say(stream: TextIO, text: str) -> None:
    stream.write(text + "\n")
    stream.flush()


def _status_style(status: int) -> str:
    if status < 200:
        return "magenta"
    if status < 300:
        return "green"
    if status < 400:
        return "cyan"
    if status < 500:
        return "yellow"
    return "red"


# -- which files count -------------------------------------------------------------------


def is_watched(site: Path, path: Path) -> bool:
    """True when a change of ``path`` (inside ``site``) should reload the worker."""
    try:
        parts = path.resolve().relative_to(site.resolve()).parts
    except ValueError:
        return False
    if not parts:
        return False
    if parts == ("static",):
        return True  # the folder itself came or went: the app checks for it at load
    if any(part in IGNORED_DIRS for part in parts) or parts[-1].endswith(IGNORED_SUFFIXES):
        return False
    if parts[-1].isdigit():  # vim's "4913" write probe
        return False
    if len(parts) == 1 and parts[0] in WATCHED_FILES:
        return True
    if any(part.startswith(".") for part in parts):
        return False
    if parts[0] in WATCHED_DIRS:
        return True
    return parts[-1].endswith(".py")


# -- the supervisor --------------------------------------------------------------------


@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    ready_fd: int
    lifeline_fd: int
    state: str = "starting"  # "ok", "broken", "starting", "exited"


class _Supervisor:
    def __init__(self, site: Path, host: str, port: int, out: TextIO, err: TextIO) -> None:
        self.site = site
        self.host = host
        self.port = port
        self.out = out
        self.err = err
        self.style = _Style(out)
        self.stop = threading.Event()
        self.worker: _Worker | None = None
        self.announced = False

    # The worker ---------------------------------------------------------------------

    def start_worker(self, *, show_routes: bool) -> _Worker:
        ready_read, ready_write = os.pipe()
        lifeline_read, lifeline_write = os.pipe()
        command = [
            sys.executable,
            "-m",
            "kitpy.cli.dev",
            "--worker",
            str(self.site),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--ready-fd",
            str(ready_write),
            "--lifeline-fd",
            str(lifeline_read),
        ]
        if show_routes:
            command.append("--show-routes")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if self.style.enabled:
            env["FORCE_COLOR"] = "1"
        try:
            process = subprocess.Popen(
                command,
                pass_fds=(ready_write, lifeline_read),
                start_new_session=True,
                env=env,
            )
        finally:
            os.close(ready_write)
            os.close(lifeline_read)
        worker = _Worker(process, ready_read, lifeline_write)
        self.worker = worker
        self.wait_ready(worker)
        return worker

    def wait_ready(self, worker: _Worker) -> None:
        """Wait for the worker's ``ok PORT`` / ``broken PORT``, or for it to exit."""
        deadline = time.monotonic() + START_TIMEOUT
        data = b""
        while not self.stop.is_set() and b"\n" not in data:
            left = deadline - time.monotonic()
            if left <= 0:
                _say(self.err, self.style("kitpy dev: the site did not start in time", "red"))
                self.stop_worker()
                return
            readable, _, _ = select.select([worker.ready_fd], [], [], min(left, 0.25))
            if readable:
                chunk = os.read(worker.ready_fd, 256)
                if not chunk:
                    break  # the worker exited without listening
                data += chunk
        if b"\n" not in data:
            if worker.process.poll() is not None or data == b"":
                worker.state = "exited"
            return
        state, _, port = data.split(b"\n", 1)[0].decode().partition(" ")
        worker.state = state
        if self.port == 0 and port.isdigit():
            self.port = int(port)

    def stop_worker(self) -> None:
        worker, self.worker = self.worker, None
        if worker is None:
            return
        process = worker.process
        if process.poll() is None:
            try:
                process.send_signal(signal.SIGTERM)
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                _say(self.err, self.style("kitpy dev: the worker did not stop; killing it", "red"))
                process.kill()
                process.wait()
        for fd in (worker.ready_fd, worker.lifeline_fd):
            try:
                os.close(fd)
            except OSError:
                pass

    # The loop -------------------------------------------------------------------------

    def announce(self) -> None:
        url = f"http://{_url_host(self.host)}:{self.port}/"
        _say(self.out, "")
        _say(self.out, f"  {self.style('kitpy dev', 'bold', 'magenta')}  {self.style(url, 'cyan')}")
        _say(self.out, self.style(f"  site {self.site}  (Ctrl-C to stop)", "dim"))
        _say(self.out, "")

    def run(self) -> int:
        import watchfiles

        # The first worker starts once the watcher is in place (its first timeout), so
        # a file saved right after the URL is printed is never missed.
        started = False
        for changes in watchfiles.watch(
            self.site,
            watch_filter=lambda _change, path: is_watched(self.site, Path(path)),
            stop_event=self.stop,
            rust_timeout=POLL_MS,
            yield_on_timeout=True,
            raise_interrupt=False,
        ):
            if self.stop.is_set():
                break
            if not started:
                started = True
                self.start_first_worker()
            elif changes:
                self.reload(sorted({Path(path) for _change, path in changes}))
            else:
                self.check_worker()
        self.stop_worker()
        _say(self.out, self.style("kitpy dev: stopped", "dim"))
        return 0

    def start_first_worker(self) -> None:
        worker = self.start_worker(show_routes=True)
        if worker.state == "exited" and not self.stop.is_set():
            code = worker.process.wait()
            self.stop_worker()
            raise DevError(f"the dev server could not start (worker exited with code {code})")
        if not self.stop.is_set():
            self.announce()

    def check_worker(self) -> None:
        worker = self.worker
        if worker is None or worker.state == "exited" or worker.process.poll() is None:
            return
        worker.state = "exited"
        _say(
            self.err,
            self.style(
                f"kitpy dev: the server exited (code {worker.process.returncode}); "
                "waiting for a change to restart it",
                "red",
            ),
        )

    def reload(self, paths: Sequence[Path]) -> None:
        shown = ", ".join(_relative(self.site, path) for path in paths[:3])
        if len(paths) > 3:
            shown += f" and {len(paths) - 3} more"
        _say(self.out, self.style(f"  reloading: {shown} changed", "yellow"))
        started = time.monotonic()
        self.stop_worker()
        routes_changed = any(_relative(self.site, path).startswith("routes") for path in paths)
        worker = self.start_worker(show_routes=routes_changed)
        if worker.state == "ok":
            took = (time.monotonic() - started) * 1000
            _say(self.out, self.style(f"  reloaded in {took:.0f} ms", "green"))
        elif worker.state == "exited":
            self.check_worker()


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _relative(site: Path, path: Path) -> str:
    try:
        return path.resolve().relative_to(site.resolve()).as_posix()
    except ValueError:
        return str(path)


def dev_command(
    directory: str = ".",
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run ``kitpy dev``: supervise a worker until SIGINT/SIGTERM. Returns the exit code.

    Raises:
        DevError: the folder does not exist, or the first worker could not listen.
    """
    site = Path(directory).resolve()
    if not site.is_dir():
        raise DevError(f"{directory}: no such folder (expected a site with routes/, static/ ...)")
    if not 0 <= port <= 65535:
        raise DevError(f"--port must be from 0 to 65535, got {port}")
    supervisor = _Supervisor(site, host, port, out or sys.stdout, err or sys.stderr)

    def on_signal(signum: int, _frame: object) -> None:
        supervisor.stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return supervisor.run()
    finally:
        supervisor.stop_worker()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# -- the worker ------------------------------------------------------------------------


class _LoggedApp:
    """Wrap an app to print one coloured line per request: method, path, status, time."""

    def __init__(self, app: Any, log: Callable[[str], None], style: _Style) -> None:
        self.app = app
        self.log = log
        self.style = style

    async def __call__(self, request: Any) -> Any:
        started = time.perf_counter()
        response = await self.app(request)
        took = (time.perf_counter() - started) * 1000
        target = request.url.path
        query = str(request.url.query)
        if query:
            target += "?" + query
        status = response.status
        self.log(
            f"  {self.style(request.method, 'bold')} {target} "
            f"{self.style(str(status), _status_style(status))} "
            f"{self.style(f'{took:.0f} ms', 'dim')}"
        )
        return response

    def lifespan(self) -> Any:
        return self.app.lifespan()


_ERROR_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>kitpy dev: {title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem;
       padding: 0 1rem; color: #1d2330; }}
h1 {{ color: #b42318; font-size: 1.4rem; }}
pre {{ background: #fff4f2; border: 1px solid #f3c5bd; padding: 1rem; overflow-x: auto;
      white-space: pre-wrap; }}
p {{ color: #6b7280; }}
</style>
</head>
<body>
<h1>The site does not load</h1>
<pre id="kitpy-error">{message}</pre>
<p>Fix the file and save it: the dev server reloads, and so does this page.</p>
<details><summary>Traceback</summary><pre>{traceback}</pre></details>
<script>
(() => {{
  const url = new URL("{reload_path}", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  let tries = 0;
  function watch() {{
    const ws = new WebSocket(url);
    ws.onopen = () => {{ tries = 0; }};
    ws.onclose = () => setTimeout(() => {{
      tries += 1;
      fetch(location.href, {{ cache: "no-store" }})
        .then(() => location.reload(), () => watch());
    }}, Math.min(2000, 100 * 2 ** tries));
  }}
  watch();
}})();
</script>
</body>
</html>
"""

#: Where the error page listens for the reload (a WebSocket the worker closes on exit).
RELOAD_PATH = "/__kitpy/reload"


class _ErrorApp:
    """What the worker serves while the site is broken: the error, as a 500, for all."""

    def __init__(self, message: str, details: str) -> None:
        self.message = message
        self.details = details
        self.sockets: list[Any] = []

    async def __call__(self, request: Any) -> Any:
        upgrade = request.headers.get("upgrade", "").lower() == "websocket"
        if upgrade and request.url.path == RELOAD_PATH:
            client, server = WebSocketPair()
            server.accept()
            self.sockets.append(server)  # kept open; closed with 1012 when we stop
            return Response(status=101, websocket=client)
        if request.headers.get("accept", "").startswith("application/json"):
            return json_response({"message": self.message}, status=500)
        page = _ERROR_PAGE.format(
            title=html.escape(self.message.splitlines()[0] if self.message else "error"),
            message=html.escape(self.message),
            traceback=html.escape(self.details),
            reload_path=RELOAD_PATH,
        )
        return html_response(page, status=500, headers={"cache-control": "no-store"})

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        yield


def _route_table(app: SiteApp) -> str:
    """The route table as ``kitpy routes`` prints it (indented), with its warnings."""
    from kitpy.cli.routes import render_routes, shadow_warnings

    table = render_routes(app.site) or "(no routes: add a .py file under routes/)"
    lines = [f"  {line}" for line in table.splitlines()]
    lines += [f"  {warning}" for warning in shadow_warnings(app.site)]
    return "\n".join(lines)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KitpyError):
        return str(exc)
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}: {exc.msg}"
    return f"{type(exc).__name__}: {exc}"


def _watch_lifeline(fd: int) -> None:
    """Stop this worker gracefully once the supervisor is gone (the pipe hits EOF)."""

    def wait() -> None:
        try:
            while os.read(fd, 64):
                pass
        except OSError:
            pass
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(STOP_TIMEOUT)
        os._exit(1)

    threading.Thread(target=wait, name="kitpy-dev-lifeline", daemon=True).start()


class _QuietReloads(logging.Filter):
    """Drop the server's "SIGTERM received" notice: in dev, every reload sends one."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "kitpy.server" and "shutting down" in record.getMessage())


def _configure_logging(style: _Style) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(style("  %(levelname)s", "red") + " %(message)s"))
    handler.addFilter(_QuietReloads())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)


def _run_worker(args: argparse.Namespace) -> int:
    from kitpy.runtime.app import load_app
    from kitpy.server import run

    out = sys.stdout
    style = _Style(out)
    _configure_logging(style)
    site = Path(args.site)
    if args.lifeline_fd is not None:
        _watch_lifeline(args.lifeline_fd)
    app: Any
    limits: Any = None
    allowed_origins: Any = None
    try:
        loaded = load_app(site, dev=True)
    except Exception as exc:
        message = _describe(exc)
        _say(sys.stderr, style(f"  kitpy dev: {message}", "red", "bold"))
        _say(sys.stderr, style("  fix it and save: the server reloads", "dim"))
        broken = _ErrorApp(message, "".join(traceback.format_exception(exc)))
        app = _LoggedApp(broken, lambda line: _say(out, line), style)
        state = "broken"
    else:
        server_config = loaded.site.config.server
        if server_config.limits:
            from kitpy.protocol.limits import Limits

            settings: dict[str, Any] = dict(server_config.limits)
            limits = Limits(**settings)
        allowed_origins = server_config.allowed_origins
        if args.show_routes:
            table = _route_table(loaded)
            if table:
                _say(out, table)
        app = _LoggedApp(loaded, lambda line: _say(out, line), style)
        state = "ok"

    def on_ready(addresses: list[tuple[str, int]]) -> None:
        port = addresses[0][1] if addresses else args.port
        if args.ready_fd is not None:
            try:
                os.write(args.ready_fd, f"{state} {port}\n".encode())
                os.close(args.ready_fd)
            except OSError:
                pass

    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "access_log": None,  # _LoggedApp prints a shorter, coloured line
        "shutdown_close_code": RELOAD_CLOSE_CODE,
        "on_ready": on_ready,
    }
    if limits is not None:
        options["limits"] = limits
    if allowed_origins is not None:
        options["allowed_origins"] = list(allowed_origins)
    try:
        run(app, **options)
    except InitError as exc:
        traceback.print_exception(exc.error, file=sys.stderr)
        _say(sys.stderr, style(f"  kitpy dev: {exc}", "red", "bold"))
        return 1
    except OSError as exc:
        _say(
            sys.stderr,
            style(f"  kitpy dev: cannot listen on {args.host}:{args.port}: {exc}", "red"),
        )
        return 2
    return 0


def worker_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the worker process (``python -m kitpy.cli.dev --worker SITE``)."""
    parser = argparse.ArgumentParser(prog="kitpy dev worker")
    parser.add_argument("--worker", dest="site", required=True)
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--ready-fd", type=int, default=None)
    parser.add_argument("--lifeline-fd", type=int, default=None)
    parser.add_argument("--show-routes", action="store_true")
    return _run_worker(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(worker_main())
