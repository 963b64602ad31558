"""``kitpy serve --workers N``: N server processes on one port (SO_REUSEPORT).

The parent process serves nothing itself. It reserves the port (a bound, not listening
SO_REUSEPORT socket, so ``--port 0`` gives every worker the same free port), starts
N ``kitpy serve --worker I`` children in their own process group, relays their
output, and prints ``kitpy serving http://HOST:PORT`` once all of them listen.

- SIGTERM or SIGINT to the parent: each worker gets one SIGTERM and shuts down
  gracefully; the parent exits 0 when all have stopped cleanly (a second signal is
  passed on: the workers close their connections at once).
- A worker that dies is reported on stderr (pid, node, exit status or signal); the
  others keep serving (the parent's exit status after a signal is that of the
  workers it stopped). With none left, the parent exits 1; so does a worker that
  fails before every worker listens (the others are stopped).
- A worker whose parent disappears (its stdin reaches end of file) stops itself.

In a cluster each worker is a node, named ``<node>-<index>``.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import IO

from kitpy.cli.listen import listen_error
from kitpy.errors import KitpyError

__all__ = ("WorkerPlan", "reserve_port", "supervise", "watch_parent")

READY_PREFIX = "kitpy serving "


@dataclass
class WorkerPlan:
    """What the parent starts: ``command + ["--worker", str(i)]`` with ``env`` for each i."""

    command: list[str]
    workers: int
    host: str
    port: int
    #: Per-worker environment (e.g. ``KITPY_NODE``) on top of this process's.
    env: list[Mapping[str, str]] = field(default_factory=list)
    #: Node names to report, one per worker ("" outside a cluster).
    nodes: list[str] = field(default_factory=list)


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen[str]
    node: str
    ready: bool = False
    returncode: int | None = None


def reserve_port(host: str, port: int) -> tuple[socket.socket, int]:
    """A bound, not listening SO_REUSEPORT socket on ``host:port``, and the port.

    It holds the port for the workers (with port 0: the free port chosen) without
    taking connections: the kernel only hands them to listening sockets.
    """
    if not hasattr(socket, "SO_REUSEPORT"):
        raise KitpyError("--workers needs SO_REUSEPORT, which this system does not have")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise KitpyError(listen_error(host, port, exc, command="kitpy serve")) from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise KitpyError(listen_error(host, port, exc, command="kitpy serve")) from None
    return sock, int(sock.getsockname()[1])


def supervise(plan: WorkerPlan) -> int:
    """Run the workers of ``plan`` until a signal or until none is left; the exit status."""
    events: queue.Queue[tuple[str, int, int]] = queue.Queue()
    signals: list[int] = []

    def on_signal(number: int, frame: FrameType | None) -> None:
        signals.append(number)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    workers: list[_Worker] = []
    try:
        workers.extend(_start(plan, index, events) for index in range(plan.workers))
        return _loop(plan, workers, events, signals)
    finally:
        for worker in workers:  # only after a failure at start: never leave orphans
            if worker.process.poll() is None:
                worker.process.kill()
                worker.process.wait()
        for number, handler in previous.items():
            signal.signal(number, handler)


def _start(plan: WorkerPlan, index: int, events: queue.Queue[tuple[str, int, int]]) -> _Worker:
    env = dict(os.environ)
    if index < len(plan.env):
        env.update(plan.env[index])
    env["PYTHONUNBUFFERED"] = "1"
    process = subprocess.Popen(
        [*plan.command, "--worker", str(index)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # a terminal's Ctrl-C reaches the parent only
    )
    node = plan.nodes[index] if index < len(plan.nodes) else ""
    worker = _Worker(index, process, node)
    assert process.stdout is not None
    threading.Thread(
        target=_relay, args=(process.stdout, index, events), daemon=True, name=f"worker-{index}"
    ).start()
    threading.Thread(
        target=lambda: events.put(("exit", index, process.wait())), daemon=True
    ).start()
    return worker


def _relay(stream: IO[str], index: int, events: queue.Queue[tuple[str, int, int]]) -> None:
    """Pass a worker's stdout on; its first ``kitpy serving`` line means it listens."""
    ready = False
    for line in stream:
        if not ready and line.startswith(READY_PREFIX):
            ready = True
            events.put(("ready", index, 0))
            continue
        sys.stdout.write(line)
        sys.stdout.flush()


def _loop(
    plan: WorkerPlan,
    workers: list[_Worker],
    events: queue.Queue[tuple[str, int, int]],
    signals: list[int],
) -> int:
    forwarded = 0
    announced = False
    failed_start = False
    stopping: set[int] = set()  # the workers alive when the first signal came
    while any(worker.returncode is None for worker in workers):
        while forwarded < len(signals):  # one SIGTERM per signal received
            forwarded += 1
            for worker in workers:
                if worker.returncode is None:
                    stopping.add(worker.index)
                    worker.process.send_signal(signal.SIGTERM)
        try:
            kind, index, code = events.get(timeout=0.2)
        except queue.Empty:
            continue
        worker = workers[index]
        if kind == "ready":
            worker.ready = True
            if not announced and all(w.ready for w in workers):
                announced = True
                shown = f"[{plan.host}]" if ":" in plan.host else plan.host
                pids = ", ".join(str(w.process.pid) for w in workers)
                sys.stderr.write(f"kitpy: {len(workers)} workers (pids {pids})\n")
                sys.stdout.write(f"{READY_PREFIX}http://{shown}:{plan.port}\n")
                sys.stdout.flush()
            continue
        worker.returncode = code
        if worker.process.stdin is not None:
            worker.process.stdin.close()
        if index in stopping and code == 0:
            continue
        sys.stderr.write(f"kitpy: {_describe(worker)} {_status(code)}\n")
        sys.stderr.flush()
        if not announced and not signals:
            # A worker that cannot start (port taken, broken site): stop the others.
            failed_start = True
            signals.append(signal.SIGTERM)
    if failed_start or not stopping:
        return 1  # a worker could not start, or every worker died on its own
    return 0 if all(workers[index].returncode == 0 for index in stopping) else 1


def _describe(worker: _Worker) -> str:
    node = f", node {worker.node}" if worker.node else ""
    return f"worker {worker.index} (pid {worker.process.pid}{node})"


def _status(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with status {code}"


def watch_parent() -> None:
    """In a worker: SIGTERM to itself when stdin (a pipe from the parent) closes."""

    def wait() -> None:
        try:  # the raw descriptor: a buffered reader's lock would block the exit
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=wait, daemon=True, name="kitpy-parent-watch").start()
