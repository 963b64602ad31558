"""Where an idle WebSocket's bytes go: tracemalloc in a ``kitpy serve`` holding N sockets.

    python bench/idle_profile.py [--sockets 1000] [--wait 1] [--top 30]

Serves bench/sites/hello (on uvloop when installed, as bench/run.py does), opens
``--sockets`` idle sockets to the broadcast room with bench/wsload.py, and compares
two tracemalloc snapshots of the server, taken before and ``--wait`` seconds after
they opened (a wait past ``ws_ping_interval``, 20 s, includes a keepalive round).
Prints the bytes per socket still held, by source line and by the innermost kitpy
line that allocated them, and the objects per socket by type. Tracing starts just
before the first snapshot, so start-up is not slowed by it. bench/run.py's
idle_memory is the same measurement as RSS; tests/reliability/test_idle_memory.py
bounds it.
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

BENCH = Path(__file__).resolve().parent
KITPY = str(BENCH.parent / "kitpy")


def serve_traced(directory: Path, argv: list[str]) -> int:
    """``kitpy serve`` that writes a snapshot for every ``NAME.want`` file in ``directory``."""

    def watch() -> None:
        while True:
            time.sleep(0.05)
            for want in directory.glob("*.want"):
                want.unlink()
                gc.collect()
                if not tracemalloc.is_tracing():
                    tracemalloc.start(30)
                tracemalloc.take_snapshot().dump(str(directory / f"{want.stem}.snap"))
                kinds = collections.Counter(
                    f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.get_objects()
                )
                (directory / f"{want.stem}.types").write_text(json.dumps(kinds))

    threading.Thread(target=watch, daemon=True).start()
    from kitpy.cli.main import main

    return main(argv)


def _snapshot(directory: Path, name: str) -> tracemalloc.Snapshot:
    (directory / f"{name}.want").write_text("")
    deadline = time.monotonic() + 120
    while not (directory / f"{name}.types").exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"no snapshot {name!r} from the server")
        time.sleep(0.05)
    time.sleep(0.1)  # the types file is written last
    return tracemalloc.Snapshot.load(str(directory / f"{name}.snap"))


def _hold(url: str, count: int) -> subprocess.Popen[str]:
    command = [sys.executable, str(BENCH / "wsload.py"), "idle", url, "--connections"]
    proc = subprocess.Popen(
        [*command, str(count), "--hold", "300"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    report = json.loads(proc.stdout.readline() or "{}")
    if report.get("connected") != count:
        proc.kill()
        raise RuntimeError(f"idle sockets: {report}")
    return proc


def _release(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(30)


def _kitpy_line(trace: tracemalloc.StatisticDiff) -> str:
    for frame in reversed(trace.traceback):  # innermost first
        if frame.filename.startswith(KITPY):
            return f"kitpy/{frame.filename[len(KITPY) + 1 :]}:{frame.lineno}"
    frame = trace.traceback[-1]
    return f"(no kitpy frame) {Path(frame.filename).name}:{frame.lineno}"


def report(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, n: int, top: int) -> None:
    by_line = after.compare_to(before, "lineno")
    total = sum(stat.size_diff for stat in by_line)
    print(f"held per idle socket: {total / n:,.0f} B ({n} sockets)")
    print(f"\n-- by source line (top {top})")
    for stat in by_line[:top]:
        frame = stat.traceback[0]
        where = frame.filename.replace(str(BENCH.parent) + "/", "")
        blocks = stat.count_diff / n
        print(f"{stat.size_diff / n:8.0f} B {blocks:5.2f} blocks  {where}:{frame.lineno}")
    sizes: collections.Counter[str] = collections.Counter()
    for stat in after.compare_to(before, "traceback"):
        sizes[_kitpy_line(stat)] += stat.size_diff
    print(f"\n-- by the innermost kitpy line on the stack (top {top})")
    for where, size in sizes.most_common(top):
        print(f"{size / n:8.0f} B  {where}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--wait", type=float, default=1.0, help="seconds held before measuring")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--serve", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:  # the server side, started by the measuring side below
        sys.exit(serve_traced(Path(os.environ["IDLE_PROFILE_DIR"]), args.serve))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="kitpy-idle-") as scratch:
        directory = Path(scratch)
        site = BENCH / "sites" / "hello"
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", "serve", str(site), "--port", str(port)],
            env={**os.environ, "IDLE_PROFILE_DIR": scratch},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=scratch,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise RuntimeError("the server did not start") from None
                    time.sleep(0.1)
            url = f"ws://127.0.0.1:{port}/ws/room"
            _release(_hold(url, 20))  # the room exists, lazy imports done
            time.sleep(0.5)
            before = _snapshot(directory, "before")
            held = _hold(url, args.sockets)
            try:
                time.sleep(args.wait)
                after = _snapshot(directory, "after")
            finally:
                _release(held)
            report(before, after, args.sockets, args.top)
            kinds_before = json.loads((directory / "before.types").read_text())
            kinds_after = json.loads((directory / "after.types").read_text())
            print("\n-- objects per socket, by type")
            per = {k: (v - kinds_before.get(k, 0)) / args.sockets for k, v in kinds_after.items()}
            for kind, count in sorted(per.items(), key=lambda item: -item[1])[: args.top]:
                if count >= 0.05:
                    print(f"{count:6.2f}  {kind}")
        finally:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


if __name__ == "__main__":
    main()
