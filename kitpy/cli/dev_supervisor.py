"""``kitpy dev [DIR]``: the supervisor, which watches the site and restarts its worker.

Theory of operation
-------------------
Two processes. The *supervisor* (this module, ``kitpy dev``) never imports the site. It
binds the listening socket itself, once, watches the site's files with watchfiles, and
runs the site in a *worker* subprocess (:mod:`kitpy.cli.dev_worker`) that inherits the
socket and accepts on it.

When a file that counts changes (anything under ``routes/`` or ``objects/``,
``hooks.py``, ``matchers.py``, ``kitpy.toml``, or another Python file of the site
outside ``static/`` and ``tests/``: :func:`is_watched`) the supervisor stops the
worker with SIGTERM (graceful shutdown: requests in flight finish, storage is flushed,
``.kitpy/`` is kept) and starts a new one on the same socket. Because the supervisor
holds the socket all along, no connection is refused during a reload: a client that
connects in between waits in the listen backlog until the new worker accepts it.

A change under ``static/`` needs no restart (files are served fresh from disk); the
supervisor sends the worker SIGUSR1 instead, and the worker tells open pages to
reload (see :mod:`kitpy.cli.dev_worker`, "live reload").

Two pipes tie the processes together:

- *ready*: the worker writes ``ok`` or ``broken`` (the site did not load and an error
  page is served) once it accepts connections;
- *lifeline*: the supervisor holds its write end; when the supervisor dies (even with
  SIGKILL) the worker reads end-of-file and shuts itself down.

The worker runs in its own session: Ctrl-C reaches only the supervisor, which then
stops the worker (SIGTERM, then SIGKILL after a grace period) and exits 0.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from kitpy.cli.listen import listen
from kitpy.cli.terminal import Style, say
from kitpy.errors import KitpyError

__all__ = (
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DevError",
    "dev_command",
    "is_static",
    "is_watched",
)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5173

#: Folders whose files all count (besides other Python files of the site).
WATCHED_DIRS = ("routes", "objects")
#: Files at the site root that count, whatever their suffix.
WATCHED_FILES = ("hooks.py", "matchers.py", "kitpy.toml")
#: Never restart the worker: state, static files (served fresh from disk), the tests.
IGNORED_DIRS = frozenset(
    {".kitpy", "static", "tests", "__pycache__", "node_modules", ".git", ".venv", "venv"}
)
#: Editor droppings that must not trigger a reload (backups, swap and probe files).
IGNORED_SUFFIXES = ("~", ".swp", ".swx", ".tmp", ".pyc")

#: Seconds a worker gets to start accepting before the supervisor gives up on it.
START_TIMEOUT = 60.0
#: Seconds a worker gets to shut down gracefully before it is killed.
STOP_TIMEOUT = 15.0
#: How often the supervisor wakes up to notice a worker that died on its own (ms);
#: also how long the first worker waits for the file watcher to be in place.
POLL_MS = 200
#: The worker's module, run as ``python -m``.
WORKER_MODULE = "kitpy.cli.dev_worker"
#: Folders and files whose presence makes a folder look like a site.
SITE_MARKS = ("routes", "static", "kitpy.toml")


class DevError(KitpyError):
    """``kitpy dev`` cannot start (no such folder, port in use...)."""


# -- which files count -------------------------------------------------------------------


def _site_parts(site: Path, path: Path) -> tuple[str, ...]:
    try:
        return path.resolve().relative_to(site.resolve()).parts
    except ValueError:
        return ()


def _ignored_name(parts: tuple[str, ...]) -> bool:
    # "4913" is vim's write probe.
    return parts[-1].endswith(IGNORED_SUFFIXES) or parts[-1].isdigit()


def is_watched(site: Path, path: Path) -> bool:
    """True when a change of ``path`` (inside ``site``) should restart the worker."""
    parts = _site_parts(site, path)
    if not parts:
        return False
    if parts == ("static",):
        return True  # the folder itself came or went: the app checks for it at load
    if any(part in IGNORED_DIRS for part in parts) or _ignored_name(parts):
        return False
    if len(parts) == 1 and parts[0] in WATCHED_FILES:
        return True
    if any(part.startswith(".") for part in parts):
        return False
    if parts[0] in WATCHED_DIRS:
        return True
    return parts[-1].endswith(".py")


def is_static(site: Path, path: Path) -> bool:
    """True when ``path`` is a file under ``static/``: open pages reload, the worker stays."""
    parts = _site_parts(site, path)
    if len(parts) < 2 or parts[0] != "static" or _ignored_name(parts):
        return False
    return not any(part.startswith(".") or part in IGNORED_DIRS for part in parts[1:])


def looks_like_a_site(site: Path) -> bool:
    """Whether ``site`` has a routes/ or static/ folder or a kitpy.toml."""
    return any((site / mark).exists() for mark in SITE_MARKS)


# -- the supervisor --------------------------------------------------------------------


@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    ready_fd: int
    lifeline_fd: int
    state: str = "starting"  # "ok", "broken", "starting", "exited"


class _Supervisor:
    def __init__(
        self,
        site: Path,
        host: str,
        sockets: list[socket.socket],
        log_level: str,
        out: TextIO,
        err: TextIO,
    ) -> None:
        self.site = site
        self.host = host
        self.sockets = sockets
        self.port = sockets[0].getsockname()[1]
        self.log_level = log_level
        self.out = out
        self.err = err
        self.style = Style(out)
        self.stop = threading.Event()
        self.worker: _Worker | None = None

    # The worker ---------------------------------------------------------------------

    def start_worker(self, *, show_routes: bool) -> _Worker:
        ready_read, ready_write = os.pipe()
        lifeline_read, lifeline_write = os.pipe()
        listen_fds = [sock.fileno() for sock in self.sockets]
        command = [sys.executable, "-m", WORKER_MODULE, str(self.site)]
        command += ["--ready-fd", str(ready_write), "--lifeline-fd", str(lifeline_read)]
        command += ["--log-level", self.log_level]
        for fd in listen_fds:
            command += ["--listen-fd", str(fd)]
        if show_routes:
            command.append("--show-routes")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if self.style.enabled:
            env["FORCE_COLOR"] = "1"
        try:
            process = subprocess.Popen(
                command,
                pass_fds=(ready_write, lifeline_read, *listen_fds),
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
        """Wait for the worker's ``ok`` / ``broken``, or for it to exit."""
        deadline = time.monotonic() + START_TIMEOUT
        data = b""
        while not self.stop.is_set() and b"\n" not in data:
            left = deadline - time.monotonic()
            if left <= 0:
                say(self.err, self.style("kitpy dev: the site did not start in time", "red"))
                self.stop_worker()
                return
            readable, _, _ = select.select([worker.ready_fd], [], [], min(left, 0.25))
            if readable:
                chunk = os.read(worker.ready_fd, 256)
                if not chunk:
                    break  # the worker exited without accepting
                data += chunk
        if b"\n" not in data:
            if worker.process.poll() is not None or data == b"":
                worker.state = "exited"
            return
        worker.state = data.split(b"\n", 1)[0].decode().strip()

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
                say(self.err, self.style("kitpy dev: the worker did not stop; killing it", "red"))
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
        say(self.out, "")
        say(self.out, f"  {self.style('kitpy dev', 'bold', 'magenta')}  {self.style(url, 'cyan')}")
        say(self.out, self.style(f"  site {self.site}  (Ctrl-C to stop)", "dim"))
        say(self.out, "")

    def run(self) -> int:
        import watchfiles

        def counts(_change: object, path: str) -> bool:
            return is_watched(self.site, Path(path)) or is_static(self.site, Path(path))

        # The first worker starts once the watcher is in place (its first timeout), so
        # a file saved right after the URL is printed is never missed.
        started = False
        for changes in watchfiles.watch(
            self.site,
            watch_filter=counts,
            stop_event=self.stop,
            rust_timeout=POLL_MS,
            yield_on_timeout=True,
            raise_interrupt=False,
        ):
            if self.stop.is_set():
                break
            paths = sorted({Path(path) for _change, path in changes})
            if not started:
                started = True
                self.start_first_worker()
            elif any(is_watched(self.site, path) for path in paths):
                self.reload([path for path in paths if is_watched(self.site, path)])
            elif paths:
                self.refresh_pages(paths)
            else:
                self.check_worker()
        self.stop_worker()
        say(self.out, self.style("kitpy dev: stopped", "dim"))
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
        say(
            self.err,
            self.style(
                f"kitpy dev: the server exited (code {worker.process.returncode}); "
                "waiting for a change to restart it",
                "red",
            ),
        )

    def reload(self, paths: Sequence[Path]) -> None:
        say(self.out, self.style(f"  reloading: {_shown(self.site, paths)} changed", "yellow"))
        started = time.monotonic()
        self.stop_worker()
        routes_changed = any(_relative(self.site, path).startswith("routes") for path in paths)
        worker = self.start_worker(show_routes=routes_changed)
        if worker.state == "ok":
            took = (time.monotonic() - started) * 1000
            say(self.out, self.style(f"  reloaded in {took:.0f} ms", "green"))
        elif worker.state == "exited":
            self.check_worker()

    def refresh_pages(self, paths: Sequence[Path]) -> None:
        """A static file changed: ask the worker to reload the open pages (SIGUSR1)."""
        worker = self.worker
        if worker is None or worker.state not in ("ok", "broken"):
            return  # its handler may not be installed yet; nothing to refresh anyway
        if worker.process.poll() is None:
            say(self.out, self.style(f"  page reload: {_shown(self.site, paths)}", "dim"))
            worker.process.send_signal(signal.SIGUSR1)

    def close(self) -> None:
        self.stop_worker()
        for sock in self.sockets:
            sock.close()


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


def _shown(site: Path, paths: Sequence[Path]) -> str:
    shown = ", ".join(_relative(site, path) for path in paths[:3])
    if len(paths) > 3:
        shown += f" and {len(paths) - 3} more"
    return shown


def dev_command(
    directory: str = ".",
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    log_level: str = "info",
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run ``kitpy dev``: supervise a worker until SIGINT/SIGTERM. Returns the exit code.

    Raises:
        DevError: the folder does not exist, or the port cannot be bound.
    """
    site = Path(directory).resolve()
    if not site.is_dir():
        raise DevError(f"{directory}: no such folder (expected a site with routes/, static/ ...)")
    if not 0 <= port <= 65535:
        raise DevError(f"--port must be from 0 to 65535, got {port}")
    errors = err or sys.stderr
    if not looks_like_a_site(site):
        say(errors, not_a_site_warning(directory))
    supervisor = _Supervisor(
        site, host, listen(host, port, command="kitpy dev"), log_level, out or sys.stdout, errors
    )

    def on_signal(signum: int, _frame: object) -> None:
        supervisor.stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return supervisor.run()
    finally:
        supervisor.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def not_a_site_warning(directory: str) -> str:
    """The warning for a folder with no routes/, static/ or kitpy.toml."""
    return (
        f"kitpy: warning: {directory} does not look like a site (no routes/, static/ or "
        "kitpy.toml); every request will be a 404. Create one with `kitpy new DIR`."
    )
