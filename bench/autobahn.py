"""The Autobahn TestSuite (through kosoku) against kitpy and its peers; writes the report.

    python bench/autobahn.py [--servers kitpy,kitpy-trio,uvicorn-websockets,uvicorn-wsproto,wsproto]
                             [--cases '*'] [--exclude CASE] [--parallelism 4]
                             [--out bench/results/autobahn] [--together]

Every server echoes (kitpy: the route of docs/endpoints.md, from the checkout this
script is in; uvicorn: bench/peers/asgi_echo.py; wsproto: bench/peers/wsproto_echo.py,
wsproto alone) with messages up to 16 MiB and no keepalive ping during the run
(kitpy: ``ws_ping_interval = 0``; uvicorn: an interval of an hour, since 0 makes its
websockets backend ping at once): Autobahn's client takes an unexpected ping during a
case as a failure, and the compression cases (12.x, 13.x) can run longer than kitpy's
default 20 s ping interval on a small machine. The servers run in the same invocation,
one after the other (or ``--together``), on 127.0.0.1, each stopped by its PID.

Writes, under ``--out``: ``summary.md`` and ``summary.json`` (counts of every verdict
and close verdict per server, the cases that are not OK, and the time the 12.x and
13.x cases took), and ``reports/SERVER/`` (kosoku's Autobahn-format report:
index.html, index.json and a page per case). Exits 1 when a kitpy case or close is
anything but OK or INFORMATIONAL. tests/reliability/test_autobahn.py runs 1.x-10.x in
CI; this runs everything.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PEERS = BENCH / "peers"
PY = sys.executable
HOST = "127.0.0.1"
MAX_MESSAGE = 16 * 1024 * 1024
START_TIMEOUT = 30.0
#: One server's whole suite, at most (the compression cases are slow on 2 cores).
RUN_TIMEOUT = 3 * 3600.0
ACCEPTED = {"OK", "INFORMATIONAL"}

ECHO_ROUTE = """
from kitpy import Response, WebSocketPair


async def get(event):
    if event.request.headers.get("upgrade", "").lower() != "websocket":
        return {"status": 426, "body": "expected a WebSocket"}
    client, server = WebSocketPair()
    server.accept()

    async def echo():
        async for message in server:
            await server.send(message)

    event.platform.wait_until(echo())
    return Response(status=101, websocket=client)
"""
KITPY_TOML = f"""
[server]
max_ws_message_bytes = {MAX_MESSAGE}
allowed_origins = ["*"]
ws_ping_interval = 0   # the conformance run turns the keepalive off (see the docstring)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Peer:
    name: str
    label: str
    #: (port, scratch folder) -> the command line and the WebSocket URL to test.
    command: Callable[[int, Path], tuple[list[str], str]]
    needs: tuple[str, ...] = ()


def kitpy(backend: str) -> Callable[[int, Path], tuple[list[str], str]]:
    def command(port: int, scratch: Path) -> tuple[list[str], str]:
        site = scratch / "site"
        (site / "routes").mkdir(parents=True, exist_ok=True)
        (site / "routes" / "echo.py").write_text(ECHO_ROUTE.lstrip())
        (site / "kitpy.toml").write_text(KITPY_TOML.lstrip())
        args = [PY, "-m", "kitpy", "serve", str(site), "--host", HOST, "--port", str(port)]
        return [*args, "--backend", backend], f"ws://{HOST}:{port}/echo"

    return command


def uvicorn(ws: str) -> Callable[[int, Path], tuple[list[str], str]]:
    def command(port: int, scratch: Path) -> tuple[list[str], str]:
        args = [PY, "-m", "uvicorn", "asgi_echo:app", "--host", HOST, "--port", str(port)]
        args += ["--ws", ws, "--ws-max-size", str(MAX_MESSAGE), "--ws-ping-interval", "3600"]
        return [*args, "--log-level", "warning", "--lifespan", "off"], f"ws://{HOST}:{port}/"

    return command


def wsproto_alone(port: int, scratch: Path) -> tuple[list[str], str]:
    return [PY, str(PEERS / "wsproto_echo.py"), "--port", str(port)], f"ws://{HOST}:{port}/"


PEERS_RUN = (
    Peer("kitpy", "kitpy serve (asyncio)", kitpy("asyncio")),
    Peer("kitpy-trio", "kitpy serve --backend trio", kitpy("trio"), ("trio",)),
    Peer("uvicorn-websockets", "uvicorn, websockets backend", uvicorn("websockets"), ("uvicorn",)),
    Peer("uvicorn-wsproto", "uvicorn, wsproto backend", uvicorn("wsproto"), ("uvicorn",)),
    Peer("wsproto", "wsproto alone (bench/peers/wsproto_echo.py)", wsproto_alone),
)


def version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version(package)
    except PackageNotFoundError:
        return "-"


@contextlib.contextmanager
def running(peer: Peer, scratch: Path) -> Iterator[tuple[str, Path]]:
    """Start ``peer`` on a free port; yield (its URL, its log); stop it by PID."""
    port = free_port()
    args, url = peer.command(port, scratch)
    log = scratch / f"{peer.name}.log"
    # The kitpy measured is the checkout this script belongs to.
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=f"{PEERS}{os.pathsep}{ROOT}")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=PEERS, env=env, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.5):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{peer.name} did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield url, log
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def run_suite(url: str, args: argparse.Namespace, outdir: Path) -> dict[str, Any]:
    """kosoku's command line against ``url``; its index.json, read back."""
    kosoku = shutil.which("kosoku") or str(Path(PY).parent / "kosoku")
    command = [kosoku, url, "-o", str(outdir), "-p", str(args.parallelism)]
    for case in args.cases:
        command += ["-i", case]
    for case in args.exclude:
        command += ["-x", case]
    subprocess.run(command, timeout=RUN_TIMEOUT, check=False, capture_output=True)
    index = json.loads((outdir / "index.json").read_text())
    return next(iter(index.values())) if index else {}


def summarize(cases: dict[str, Any], log: str) -> dict[str, Any]:
    def key(case: str) -> list[int]:
        return [int(part) for part in case.split(".")]

    behaviors = Counter(entry["behavior"] for entry in cases.values())
    closes = Counter(entry["behaviorClose"] for entry in cases.values())
    not_ok = {
        case: f"{entry['behavior']} / close {entry['behaviorClose']}"
        for case, entry in sorted(cases.items(), key=lambda item: key(item[0]))
        if entry["behavior"] not in ACCEPTED or entry["behaviorClose"] not in ACCEPTED
    }
    compression = [
        entry["duration"] for case, entry in cases.items() if case.split(".")[0] in ("12", "13")
    ]
    return {
        "cases": len(cases),
        "behavior": dict(behaviors),
        "close": dict(closes),
        "not_ok": not_ok,
        "compression_cases": len(compression),
        "compression_seconds": round(sum(compression) / 1000, 1),
        "slowest_case_seconds": round(max(compression, default=0) / 1000, 1),
        "tracebacks_in_log": len(re.findall(r"Traceback \(most recent call last\)", log)),
    }


def markdown(results: dict[str, dict[str, Any]], labels: dict[str, str], meta: str) -> str:
    verdicts = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED", "ERROR"]
    lines = [
        "# Autobahn TestSuite (kosoku): latest run",
        "",
        meta,
        "",
        "| server | cases | " + " | ".join(verdicts) + " | close OK | close not OK "
        "| 12.x+13.x time (s) | tracebacks |",
        "|---" * (len(verdicts) + 6) + "|",
    ]
    for name, row in results.items():
        counts = [str(row["behavior"].get(verdict, 0)) for verdict in verdicts]
        close_ok = row["close"].get("OK", 0) + row["close"].get("INFORMATIONAL", 0)
        lines.append(
            f"| {labels[name]} | {row['cases']} | " + " | ".join(counts) + f" | {close_ok} "
            f"| {row['cases'] - close_ok} | {row['compression_seconds']} "
            f"| {row['tracebacks_in_log']} |"
        )
    for name, row in results.items():
        if row["not_ok"]:
            lines += ["", f"Not OK on {labels[name]}:", ""]
            lines += [f"- {case}: {verdict}" for case, verdict in row["not_ok"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default=",".join(peer.name for peer in PEERS_RUN))
    parser.add_argument("--cases", action="append", default=None, help="glob; default: all")
    parser.add_argument("--exclude", action="append", default=[])
    parser.add_argument("--parallelism", type=int, default=4)
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "autobahn")
    parser.add_argument(
        "--together", action="store_true", help="run the servers at the same time, not in turn"
    )
    args = parser.parse_args(argv)
    args.cases = args.cases or ["*"]
    wanted = args.servers.split(",")
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    labels = {peer.name: peer.label for peer in PEERS_RUN}
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    chosen = []
    for peer in PEERS_RUN:
        if peer.name not in wanted:
            continue
        missing = [name for name in peer.needs if version(name) == "-"]
        if missing:
            print(f"{peer.name}: skipped, {', '.join(missing)} not installed", flush=True)
        else:
            chosen.append(peer)

    def measure(peer: Peer) -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="kitpy-autobahn-") as tmp:
            scratch = Path(tmp)
            reports = args.out / "reports" / peer.name
            shutil.rmtree(reports, ignore_errors=True)
            began = time.monotonic()
            with running(peer, scratch) as (url, log):
                cases = run_suite(url, args, reports)
                text = log.read_text(errors="replace")
            row = summarize(cases, text)
            row["wall_seconds"] = round(time.monotonic() - began, 1)
            print(f"{peer.name}: {row['behavior']} close {row['close']}", flush=True)
            return row

    with ThreadPoolExecutor(max_workers=len(chosen) if args.together else 1) as pool:
        for peer, row in zip(chosen, pool.map(measure, chosen), strict=True):
            results[peer.name] = row
    meta = textwrap.fill(
        f"{started}, cases {' '.join(args.cases)}"
        + (f" less {' '.join(args.exclude)}" if args.exclude else "")
        + f", {args.parallelism} cases at a time"
        + (", the servers side by side at once" if args.together else ", one server after another")
        + f"; kosoku {version('kosoku')}, kitpy"
        f" {version('kitpy')}, uvicorn {version('uvicorn')}, websockets"
        f" {version('websockets')}, wsproto {version('wsproto')}. Messages up to 16 MiB,"
        " keepalive pings off.",
        100,
    )
    (args.out / "summary.json").write_text(json.dumps(results, indent=2, sort_keys=True))
    (args.out / "summary.md").write_text(markdown(results, labels, meta))
    print((args.out / "summary.md").read_text())
    kitpy_rows = [row for name, row in results.items() if name.startswith("kitpy")]
    return 1 if any(row["not_ok"] or row["tracebacks_in_log"] for row in kitpy_rows) else 0


if __name__ == "__main__":
    sys.exit(main())
