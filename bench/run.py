"""kitpy's benchmark suite: kitpy against its peers, side by side, on one core each.

    python bench/run.py [--rounds 3] [--duration 10] [--smoke]

Installs the peers (bench/requirements.txt, and wrk through apt-get when missing),
then for every round, scenario and server - interleaved, A B C A B C ... - starts the
server pinned to CPU 0 (taskset), drives it from CPU 1 (wrk for HTTP, bench/wsload.py
for WebSockets), and stops it by PID. Results go to bench/results/latest.json and
latest.md (medians, spread, same-run ratios, the issue's bars) and the chart to
docs/benchmarks.png. Everything runs on 127.0.0.1 and every step has a time limit.

``--smoke`` is the CI check that the suite still runs: one short round of kitpy and
the bare anyio+h11+wsproto loop only, nothing installed, results in ``--out``; when wrk
is missing it uses bench/httpload.py instead and says so.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from procstat import cpu_seconds, machine_busy, rss_bytes  # noqa: E402
from sites.generate import generate  # noqa: E402

HOST = "127.0.0.1"
# kitpy serve runs on uvloop when it is installed; the bare loop follows it.
UVLOOP = importlib.util.find_spec("uvloop") is not None
SERVER_CPU = "0"
CLIENT_CPU = "1"
PY = sys.executable
START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
HTTP_CONNECTIONS = 64
ECHO_CONNECTIONS = 64
ROOM_MEMBERS = 200
IDLE_SOCKETS = 1000
CLIENT_BUSY = 0.85  # client cores busy above which a figure may be the client's limit
QUIET_CPU = 0.15  # CPUs busy with other work below which the machine counts as quiet
VERSIONED = (
    "kitpy",
    "anyio",
    "h11",
    "wsproto",
    "starlette",
    "uvicorn",
    "hypercorn",
    "httptools",
    "uvloop",
    "granian",
    "websockets",
    "matplotlib",
)

# ---------------------------------------------------------------------------------------
# What is measured


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    unit: str
    higher_is_better: bool = True


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("hello", "HTTP hello, 64 connections", "req/s"),
        Scenario("json", "HTTP routed JSON, 64 connections", "req/s"),
        Scenario("sync", "HTTP hello from a plain def handler, 64 connections", "req/s"),
        Scenario("ws_echo", "WebSocket echo, 64 connections", "msg/s"),
        Scenario("broadcast", "Broadcast, one room of 200", "deliveries/s"),
        Scenario("idle_memory", "RSS per idle WebSocket", "KiB", higher_is_better=False),
        Scenario("startup", "Start-up to first response", "s", higher_is_better=False),
    )
}
ALL = ("hello", "json", "sync", "ws_echo", "broadcast", "idle_memory")
HTTP = ("hello", "json", "sync")


@dataclass(frozen=True)
class Server:
    name: str
    label: str
    command: Callable[[int, Path], list[str]]
    scenarios: Sequence[str] = ALL
    needs: Sequence[str] = ()
    site_routes: int = 0  # kitpy sites generated to this many routes; 0: bench/sites/hello


def uvicorn(*flags: str) -> Callable[[int, Path], list[str]]:
    def command(port: int, site: Path) -> list[str]:
        return [
            *(PY, "-m", "uvicorn", "starlette_app:app", "--host", HOST, "--port", str(port)),
            *("--no-access-log", "--log-level", "warning", "--lifespan", "off", *flags),
        ]

    return command


def kitpy(port: int, site: Path) -> list[str]:
    return [PY, "-m", "kitpy", "serve", str(site), "--host", HOST, "--port", str(port)]


def granian(port: int, site: Path) -> list[str]:
    return [
        *(PY, "-m", "granian", "--interface", "asgi", "--host", HOST, "--port", str(port)),
        *("--workers", "1", "--runtime-threads", "1", "--loop", "uvloop"),
        *("--log-level", "warning", "--no-access-log", "starlette_app:app"),
    ]


SERVERS = (
    Server("kitpy", "kitpy serve", kitpy),
    Server(
        "bare",
        "bare anyio+h11+wsproto",
        lambda port, site: (
            [PY, str(BENCH / "peers" / "bare.py"), "--port", str(port)]
            + (["--uvloop"] if UVLOOP else [])
        ),
        scenarios=tuple(s for s in ALL if s != "sync"),
    ),
    Server(
        "canned",
        "the loop's ceiling: an asyncio Protocol on uvloop writing fixed bytes",
        lambda port, site: [PY, str(BENCH / "peers" / "canned.py"), "--port", str(port)],
        scenarios=HTTP,
        needs=("uvloop",),
    ),
    Server(
        "uvicorn-h11",
        "Starlette on uvicorn h11+wsproto (asyncio)",
        uvicorn("--http", "h11", "--ws", "wsproto", "--loop", "asyncio"),
        needs=("starlette", "uvicorn"),
    ),
    Server(
        "uvicorn-h11-uvloop",
        "Starlette on uvicorn h11+wsproto (uvloop)",
        uvicorn("--http", "h11", "--ws", "wsproto", "--loop", "uvloop"),
        needs=("starlette", "uvicorn", "uvloop"),
    ),
    Server(
        "hypercorn",
        "Starlette on hypercorn h11+wsproto",
        lambda port, site: [
            *(PY, "-m", "hypercorn", "starlette_app:app", "--bind", f"{HOST}:{port}"),
            *("--workers", "0", "--worker-class", "asyncio"),
        ],
        needs=("starlette", "hypercorn"),
    ),
    Server(
        "uvicorn-httptools",
        "Starlette on uvicorn httptools+wsproto (asyncio)",
        uvicorn("--http", "httptools", "--ws", "wsproto", "--loop", "asyncio"),
        needs=("starlette", "uvicorn", "httptools"),
    ),
    Server(
        "uvicorn-standard",
        "Starlette on uvicorn[standard]: httptools, websockets, uvloop",
        uvicorn("--http", "httptools", "--ws", "websockets", "--loop", "uvloop"),
        needs=("starlette", "uvicorn", "httptools", "uvloop", "websockets"),
    ),
    Server(
        "granian",
        "Starlette on granian 2 (Rust HTTP, ASGI, uvloop)",
        granian,
        needs=("starlette", "granian", "uvloop"),
    ),
    Server(
        "kitpy-plain",
        "kitpy serve without the fast extra (plain-Python head reader, no httptools)",
        lambda port, site: [
            *(PY, str(BENCH / "peers" / "kitpy_plain.py"), "serve", str(site)),
            *("--host", HOST, "--port", str(port)),
        ],
        scenarios=("hello", "json"),
    ),
    Server("kitpy-r10", "kitpy serve, 10-route site", kitpy, ("hello", "json"), (), 10),
    Server("kitpy-r1000", "kitpy serve, 1,000-route site", kitpy, ("hello", "json"), (), 1000),
)
SMOKE_SERVERS = ("kitpy", "bare", "kitpy-r1000")
# The "uvicorn-h11 + Starlette", on the event loop kitpy itself runs on.
BASELINE = "uvicorn-h11-uvloop" if UVLOOP else "uvicorn-h11"


@dataclass
class Config:
    rounds: int
    duration: float
    warmup: float
    idle_sockets: int
    members: int
    smoke: bool
    out: Path
    chart: Path | None
    load_tool: str  # "wrk" or "python"
    quiet_wait: float
    logs: Path
    scenarios: Sequence[str] = ALL
    scratch: Path = Path()
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------
# Processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def pinned(cpu: str, command: list[str]) -> list[str]:
    return ["taskset", "-c", cpu, *command] if shutil.which("taskset") else command


def first_response(port: int, path: str = "/") -> int | None:
    """The status of one GET, or None when the server does not answer yet."""
    try:
        with socket.create_connection((HOST, port), timeout=2) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode())
            head = sock.recv(65536)
    except OSError:
        return None
    parts = head.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def fetch(port: int, path: str) -> tuple[int, bytes]:
    """GET ``path`` with Connection: close and return (status, body)."""
    with socket.create_connection((HOST, port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


class Running:
    """A server subprocess pinned to the server CPU, started and stopped by PID."""

    def __init__(self, server: Server, site: Path, log: Path) -> None:
        self.server = server
        self.port = free_port()
        env = dict(os.environ, PYTHONPATH=str(BENCH / "peers"), PYTHONUNBUFFERED="1")
        self.log_path = log
        self.log = log.open("wb")  # kitpy serve logs every request: kept only on errors
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            pinned(SERVER_CPU, server.command(self.port, site)),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        deadline = started + START_TIMEOUT
        while True:
            status = first_response(self.port)
            if status == 200:
                self.startup = time.perf_counter() - started
                return
            if self.proc.poll() is not None or time.perf_counter() > deadline:
                self.stop()
                tail = log.read_text(errors="replace").splitlines()[-15:]
                raise RuntimeError(
                    f"{server.name} did not answer 200 on / (exit {self.proc.returncode}); "
                    + " | ".join(tail)
                )
            time.sleep(0.005)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(STOP_TIMEOUT)
        self.log.close()


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wait_for_quiet(cfg: Config) -> float:
    """Wait (up to ``cfg.quiet_wait`` s) until nothing else keeps the CPUs busy.

    Other work on the machine steals cycles from the server or the client; the
    load seen just before the measurement is recorded with it.
    """
    if cfg.quiet_wait <= 0:
        return 0.0
    deadline = time.monotonic() + cfg.quiet_wait
    while True:
        before = machine_busy()
        time.sleep(0.3)
        busy = (machine_busy() - before) / 0.3
        if busy < QUIET_CPU or time.monotonic() > deadline:
            return busy


def run_client(command: list[str], timeout: float) -> str:
    """Run a load generator pinned to the client CPU; its stdout, or an error."""
    done = subprocess.run(
        pinned(CLIENT_CPU, command),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{command[0:3]} exited {done.returncode}: {done.stderr[-800:]}")
    return done.stdout


# ---------------------------------------------------------------------------------------
# Scenarios

EXPECTED = {
    "hello": ("/", b"Hello, world!"),
    "json": ("/users/42", {"id": "42", "name": "user 42"}),
    "sync": ("/sync", b"Hello, world!"),
}


def http_load(cfg: Config, running: Running, scenario: str) -> dict[str, Any]:
    path, expected = EXPECTED[scenario]
    status, body = fetch(running.port, path)
    got: Any = json.loads(body) if isinstance(expected, dict) else body
    if status != 200 or got != expected:
        raise RuntimeError(f"GET {path} answered {status} {body[:80]!r}")
    url = f"http://{HOST}:{running.port}{path}"
    if cfg.load_tool == "wrk":
        conns = f"-c{HTTP_CONNECTIONS}"
        base = ["wrk", "-t1", conns, "--timeout", "5s", "-s", str(BENCH / "wrk_report.lua")]
        if not cfg.smoke:
            run_client([*base, f"-d{max(1, round(cfg.warmup))}s", url], cfg.warmup + 30)
        before, client_before, busy_before = (
            cpu_seconds(running.pid),
            children_cpu(),
            machine_busy(),
        )
        out = run_client([*base, f"-d{max(1, round(cfg.duration))}s", url], cfg.duration + 30)
    else:
        base = [PY, str(BENCH / "httpload.py"), url, "--connections", str(HTTP_CONNECTIONS)]
        if not cfg.smoke:
            run_client([*base, "--duration", str(cfg.warmup)], cfg.warmup + 30)
        before, client_before, busy_before = (
            cpu_seconds(running.pid),
            children_cpu(),
            machine_busy(),
        )
        out = run_client([*base, "--duration", str(cfg.duration)], cfg.duration + 30)
    server_cpu = cpu_seconds(running.pid) - before
    client_cpu = children_cpu() - client_before
    busy = machine_busy() - busy_before
    line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
    report = json.loads(line.removeprefix("WRKJSON "))
    seconds = report["duration_us"] / 1e6
    errors = sum(
        report[k]
        for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
    )
    if errors > 0.01 * max(1, report["requests"]):
        raise RuntimeError(f"{errors} errors in {report['requests']} requests: {report}")
    return {
        "value": report["requests"] / seconds,
        "p50_ms": report["p50_us"] / 1000,
        "p90_ms": report["p90_us"] / 1000,
        "p99_ms": report["p99_us"] / 1000,
        "errors": errors,
        "server_cpu": server_cpu / seconds,
        "client_cpu": client_cpu / seconds,
        "background_cpu": max(0.0, (busy - server_cpu - client_cpu) / seconds),
        "tool": cfg.load_tool,
    }


def ws_load(cfg: Config, running: Running, scenario: str) -> dict[str, Any]:
    mode, path = ("echo", "/ws/echo") if scenario == "ws_echo" else ("broadcast", "/ws/room")
    command = [
        *(PY, str(BENCH / "wsload.py"), mode, f"ws://{HOST}:{running.port}{path}"),
        *("--duration", str(cfg.duration), "--warmup", str(cfg.warmup)),
        *("--connections", str(ECHO_CONNECTIONS), "--members", str(cfg.members)),
        *("--server-pid", str(running.pid)),
    ]
    report = json.loads(run_client(command, cfg.duration + cfg.warmup + 90).splitlines()[-1])
    wanted = report["connections"]
    if report["connected"] != wanted or report["receiving"] != wanted or report["rate"] <= 0:
        raise RuntimeError(f"{mode}: not every socket worked: {report}")
    if report["closed_early"]:
        raise RuntimeError(f"{mode}: the server closed {report['closed_early']} sockets: {report}")
    return {
        "value": report["rate"],
        "server_cpu": report["server_cpu"],
        "client_cpu": report["client_cpu"],
        "background_cpu": report["background_cpu"],
        "client_processes": report["processes"],
        "sender_lead": report["sender_lead"],
    }


def idle_memory(cfg: Config, running: Running, scenario: str) -> dict[str, Any]:
    """Server RSS growth per idle socket held in the broadcast room."""
    url = f"ws://{HOST}:{running.port}/ws/room"

    def hold(count: int) -> tuple[subprocess.Popen[str], dict[str, Any]]:
        proc = subprocess.Popen(
            pinned(CLIENT_CPU, [PY, str(BENCH / "wsload.py"), "idle", url, "--connections"])
            + [str(count), "--hold", "120"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            proc.kill()
            raise RuntimeError("the idle client died before reporting")
        return proc, json.loads(line)

    def release(proc: subprocess.Popen[str]) -> None:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    settle = 0.1 if cfg.smoke else 1.0
    warm, _ = hold(20)  # the room object exists, lazy imports done, pools primed
    release(warm)
    time.sleep(settle)
    before = rss_bytes(running.pid)
    proc, report = hold(cfg.idle_sockets)
    try:
        time.sleep(settle)
        after = rss_bytes(running.pid)
    finally:
        release(proc)
    if report["connected"] != cfg.idle_sockets:
        raise RuntimeError(f"idle: {report}")
    return {
        "value": (after - before) / cfg.idle_sockets / 1024,
        "rss_before_mib": before / 2**20,
        "rss_after_mib": after / 2**20,
        "sockets": cfg.idle_sockets,
    }


RUNNERS: dict[str, Callable[[Config, Running, str], dict[str, Any]]] = {
    "hello": http_load,
    "json": http_load,
    "sync": http_load,
    "ws_echo": ws_load,
    "broadcast": ws_load,
    "idle_memory": idle_memory,
}

# ---------------------------------------------------------------------------------------
# The run


def available(server: Server) -> str | None:
    """Why ``server`` cannot run here, or None."""
    missing = [name for name in server.needs if importlib.util.find_spec(name) is None]
    if missing:
        return f"not installed: {', '.join(missing)}"
    return None


def measure(cfg: Config, servers: list[Server], sites: dict[str, Path]) -> list[dict[str, Any]]:
    """Every round, every scenario, every server in turn; one row per measurement."""
    rows: list[dict[str, Any]] = []
    # A fresh server for every measurement (start-up is timed each time); smoke mode
    # runs all of a server's scenarios on one start to stay short.
    groups = [list(cfg.scenarios)] if cfg.smoke else [[name] for name in cfg.scenarios]
    for round_no in range(cfg.rounds):
        for group in groups:
            for server in servers:
                todo = [s for s in group if s in server.scenarios]
                if not todo:
                    continue
                log = cfg.scratch / f"{server.name}.log"
                stamp = f"[round {round_no + 1}/{cfg.rounds}] {server.name:<20}"
                try:
                    running = Running(server, sites[server.name], log)
                except RuntimeError as exc:
                    keep_log_tail(log, cfg.logs / f"{server.name}.log", round_no)
                    rows.extend(row(round_no, s, server, error=str(exc)) for s in todo)
                    print(f"{stamp} failed to start: {exc}", flush=True)
                    continue
                first_row = len(rows)
                rows.append(row(round_no, "startup", server, value=running.startup))
                try:
                    for scenario in todo:
                        try:
                            quiet = wait_for_quiet(cfg)
                            result = RUNNERS[scenario](cfg, running, scenario)
                            result["busy_before"] = quiet
                            result["load_average"] = os.getloadavg()[0]
                        except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
                            rows.append(row(round_no, scenario, server, error=str(exc)))
                            print(f"{stamp} {scenario:<12} ERROR {exc}", flush=True)
                            continue
                        if result.get("server_cpu"):
                            # Work per server CPU-second: steadier than the raw rate
                            # when other work on the machine takes cycles from the server.
                            result["per_cpu"] = result["value"] / result["server_cpu"]
                        rows.append(row(round_no, scenario, server, **result))
                        unit = SCENARIOS[scenario].unit
                        extra = f"  p99 {result['p99_ms']:.2f} ms" if "p99_ms" in result else ""
                        print(
                            f"{stamp} {scenario:<12} {result['value']:>12,.1f} {unit}{extra}",
                            flush=True,
                        )
                finally:
                    running.stop()
                    if any("error" in r for r in rows[first_row:]):
                        keep_log_tail(log, cfg.logs / f"{server.name}.log", round_no)
                    log.unlink(missing_ok=True)
    return rows


def keep_log_tail(log: Path, keep: Path, round_no: int) -> None:
    """Append the end of a failed server's output to ``keep``."""
    with log.open("rb") as source:
        source.seek(max(0, log.stat().st_size - 8192))
        tail = source.read()
    with keep.open("ab") as target:
        target.write(f"\n=== round {round_no + 1}, {time.strftime('%H:%M:%S')}\n".encode())
        target.write(tail)


def row(round_no: int, scenario: str, server: Server, **values: Any) -> dict[str, Any]:
    return {"round": round_no, "scenario": scenario, "server": server.name, **values}


def summarize(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for scenario in SCENARIOS:
        for server in dict.fromkeys(r["server"] for r in rows):
            mine = [r for r in rows if r["scenario"] == scenario and r["server"] == server]
            values = [r["value"] for r in mine if r.get("value") is not None]
            if not mine:
                continue
            entry: dict[str, Any] = {
                "n": len(values),
                "errors": [r["error"] for r in mine if "error" in r],
            }
            if values:
                mean = statistics.fmean(values)
                entry.update(
                    median=statistics.median(values),
                    min=min(values),
                    max=max(values),
                    cv=statistics.pstdev(values) / mean if mean and len(values) > 1 else 0.0,
                )
                for key in ("p99_ms", "server_cpu", "client_cpu", "background_cpu", "per_cpu"):
                    extra = [r[key] for r in mine if r.get(key) is not None]
                    if extra:
                        entry[key] = statistics.median(extra)
            summary.setdefault(scenario, {})[server] = entry
    return summary


def same_run_ratios(
    rows: list[dict[str, Any]], numerator: str, key: str = "value"
) -> dict[str, dict[str, float]]:
    """Median over rounds of ``numerator / peer`` measured in the same round."""
    ratios: dict[str, dict[str, list[float]]] = {}
    by_key = {
        (r["round"], r["scenario"], r["server"]): r[key] for r in rows if r.get(key) is not None
    }
    for (round_no, scenario, server), value in by_key.items():
        if server == numerator or not value:
            continue
        mine = by_key.get((round_no, scenario, numerator))
        if mine is not None:
            ratios.setdefault(scenario, {}).setdefault(server, []).append(mine / value)
    return {
        s: {peer: statistics.median(v) for peer, v in peers.items()} for s, peers in ratios.items()
    }


def bars(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured figure and a verdict.

    Rate bars carry two figures: the same-run ratio of raw rates (the issue's
    measure) and the same ratio of work per server CPU-second, which other work on
    the machine disturbs less; each gets its own verdict.
    """
    summary = result["summary"]
    raw, per_cpu = result["ratios"], result["ratios_per_cpu"]
    routes, routes_cpu = result["route_ratios"], result["route_ratios_per_cpu"]
    plain = {s: {"kitpy-plain": r} for s, r in result.get("plain_ratios", {}).items()}
    plain_cpu = {s: {"kitpy-plain": r} for s, r in result.get("plain_ratios_per_cpu", {}).items()}
    storage = result.get("storage")
    out: list[dict[str, Any]] = []

    def add(
        name: str,
        value: float | None,
        target: str,
        ok: Callable[[float], bool],
        cpu_value: float | None = None,
    ) -> None:
        out.append(
            {
                "bar": name,
                "value": value,
                "per_cpu": cpu_value,
                "target": target,
                "pass": None if value is None else bool(ok(value)),
                "pass_per_cpu": None if cpu_value is None else bool(ok(cpu_value)),
            }
        )

    def rate(scenario: str, peer: str, target: float, mine: str = "kitpy") -> None:
        if mine == "kitpy":
            value, cpu_value = raw.get(scenario, {}), per_cpu.get(scenario, {})
        else:
            value = plain.get(scenario, {}).get(mine, {})
            cpu_value = plain_cpu.get(scenario, {}).get(mine, {})
        add(
            f"{scenario}: {mine} / {peer}",
            value.get(peer),
            f">= {target}",
            lambda v: v >= target,
            cpu_value.get(peer),
        )

    for scenario in ("hello", "json"):
        rate(scenario, BASELINE, 1.3)
        rate(scenario, "hypercorn", 2.0)
        rate(scenario, "bare", 0.85)
        s = summary.get(scenario, {})
        p99 = s.get("kitpy", {}).get("p99_ms")
        ref = s.get(BASELINE, {}).get("p99_ms")
        add(
            f"{scenario}: p99 kitpy / p99 {BASELINE}",
            None if p99 is None or not ref else p99 / ref,
            "<= 1.0",
            lambda v: v <= 1.0,
        )
        add(
            f"{scenario}: 1,000-route site / 10-route site",
            routes.get(scenario, {}).get("kitpy-r10"),
            ">= 0.95",
            lambda v: v >= 0.95,
            routes_cpu.get(scenario, {}).get("kitpy-r10"),
        )
    # Issue #15: what users who want speed run, and the loop's own ceiling.
    for scenario in ("hello", "json"):
        rate(scenario, "uvicorn-standard", 1.5)
        rate(scenario, "granian", 1.0)
        s = summary.get(scenario, {})
        p99 = s.get("kitpy", {}).get("p99_ms")
        ref = s.get("uvicorn-standard", {}).get("p99_ms")
        add(
            f"{scenario}: p99 kitpy / p99 uvicorn-standard",
            None if p99 is None or not ref else p99 / ref,
            "<= 1.0",
            lambda v: v <= 1.0,
        )
        # Without the fast extra (no httptools), still ahead of uvicorn on httptools.
        rate(scenario, "uvicorn-standard", 1.0, mine="kitpy-plain")
    rate("hello", "canned", 0.3)
    rate("sync", "uvicorn-standard", 1.0)
    for scenario in ("ws_echo", "broadcast"):
        rate(scenario, BASELINE, 1.5)
        rate(scenario, "uvicorn-standard", 1.5)
    add(
        "idle_memory: kitpy KiB per idle socket",
        summary.get("idle_memory", {}).get("kitpy", {}).get("median"),
        "<= 10",
        lambda v: v <= 10,
    )
    add(
        "startup: kitpy 1,000-route site, s",
        summary.get("startup", {}).get("kitpy-r1000", {}).get("median"),
        "< 1.0",
        lambda v: v < 1.0,
    )
    ratio = None if storage is None else storage.get("ratio")
    add("storage: durable writes/s vs one-commit SQLite", ratio, ">= 10", lambda v: v >= 10)
    return out


# ---------------------------------------------------------------------------------------
# Reporting


def versions() -> dict[str, str]:
    found = {}
    for name in VERSIONED:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    found["python"] = platform.python_version()
    if shutil.which("wrk"):
        head = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
        found["wrk"] = (head.stdout or head.stderr).split("[")[0].replace("wrk", "").strip()
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        found["kitpy_commit"] = commit
    except (OSError, subprocess.CalledProcessError):
        pass
    return found


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(),
        "system": platform.platform(),
        "server_cpu": SERVER_CPU,
        "client_cpu": CLIENT_CPU,
    }


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit in ("req/s", "msg/s", "deliveries/s"):
        return f"{value:,.0f}"
    if unit == "s":
        return f"{value:.3f}"
    return f"{value:.2f}"


def markdown(result: dict[str, Any]) -> str:
    summary, ratios = result["summary"], result["ratios"]
    servers = [s for s in result["servers"] if any(s in v for v in summary.values())]
    lines = [
        "# kitpy benchmarks: latest run",
        "",
        f"{result['meta']['when']}, {result['meta']['rounds']} round(s) of "
        f"{result['meta']['duration']} s per measurement, load generator: "
        f"{result['meta']['load_tool']}. Medians over rounds; servers on CPU "
        f"{SERVER_CPU}, clients on CPU {CLIENT_CPU}. kitpy and the bare loop run on "
        f"{result['meta']['event_loop']}; the bars compare with {result['meta']['baseline']}.",
        "",
    ]
    lines += [f"> {note}" for note in result["meta"]["notes"]]
    if result["meta"]["notes"]:
        lines.append("")
    lines += ["## Medians", ""]
    scenarios = [s for s in SCENARIOS if s in summary]
    lines.append("| server | " + " | ".join(f"{s} ({SCENARIOS[s].unit})" for s in scenarios) + " |")
    lines.append("|---" * (len(scenarios) + 1) + "|")
    for server in servers:
        cells = [
            fmt(summary[s].get(server, {}).get("median"), SCENARIOS[s].unit) for s in scenarios
        ]
        lines.append(f"| {server} | " + " | ".join(cells) + " |")
    lines += ["", "## Same-run ratios: kitpy / peer (median over rounds)", ""]
    peers = [s for s in servers if s != "kitpy" and not s.startswith("kitpy-")]
    lines.append("| scenario | " + " | ".join(peers) + " |")
    lines.append("|---" * (len(peers) + 1) + "|")
    for scenario in scenarios:
        if scenario in ratios:
            cells = [fmt(ratios[scenario].get(p)) for p in peers]
            lines.append(f"| {scenario} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "For idle_memory and startup lower is better: above 1, kitpy uses more than the peer.",
    ]
    per_cpu = result.get("ratios_per_cpu", {})
    if per_cpu:
        lines += [
            "",
            "Cross-check, the same ratios of work per server CPU-second (rate divided by the"
            " server's CPU use; steadier when other work shares the machine):",
            "",
            "| scenario | " + " | ".join(peers) + " |",
            "|---" * (len(peers) + 1) + "|",
        ]
        for scenario in scenarios:
            if scenario in per_cpu:
                cells = [fmt(per_cpu[scenario].get(p)) for p in peers]
                lines.append(f"| {scenario} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## The bars (issues #6 and #15)",
        "",
        "| bar | measured | verdict | per server CPU-s | verdict | target |",
        "|---|---|---|---|---|---|",
    ]
    verdicts = {True: "pass", False: "**FAIL**", None: "-"}
    for bar in result["bars"]:
        lines.append(
            f"| {bar['bar']} | {fmt(bar['value'])} | {verdicts[bar['pass']]} | "
            f"{fmt(bar.get('per_cpu'))} | {verdicts[bar.get('pass_per_cpu')]} | "
            f"{bar['target']} |"
        )
    lines += [
        "",
        "## Spread",
        "",
        "CPU columns are cores busy during the measurement: the server's, the load"
        " generator's, and everything else on the machine (other work adds noise).",
        "",
        "| scenario | server | n | median | min | max | CV | p99 ms | server CPU | client CPU "
        "| other CPU |",
        "|---" * 11 + "|",
    ]
    for scenario in scenarios:
        unit = SCENARIOS[scenario].unit
        for server in servers:
            e = summary[scenario].get(server)
            if e is None:
                continue
            if "median" not in e:
                lines.append(
                    f"| {scenario} | {server} | 0 | error: {e['errors'][0][:100]} | | | | | | | |"
                )
                continue
            lines.append(
                f"| {scenario} | {server} | {e['n']} | {fmt(e['median'], unit)} | "
                f"{fmt(e['min'], unit)} | {fmt(e['max'], unit)} | {e['cv'] * 100:.1f}% | "
                f"{fmt(e.get('p99_ms'))} | {fmt(e.get('server_cpu'))} | "
                f"{fmt(e.get('client_cpu'))} | {fmt(e.get('background_cpu'))} |"
            )
    busy = [
        f"{scenario}/{server} ({e['client_cpu']:.2f})"
        for scenario in scenarios
        for server, e in summary[scenario].items()
        if e.get("client_cpu", 0) >= CLIENT_BUSY
    ]
    if busy:
        lines += [
            "",
            f"Load generator near saturation (client CPU >= {CLIENT_BUSY}): "
            + ", ".join(busy)
            + ". Those figures may be limited by the client rather than the server.",
        ]
    errors = [r for r in result["rows"] if "error" in r]
    if errors:
        lines += ["", "## Errors", ""]
        lines += [
            f"- round {r['round'] + 1}, {r['scenario']}, {r['server']}: {r['error'][:300]}"
            for r in errors
        ]
    return "\n".join(lines) + "\n"


DOCS_START = "<!-- results:start (written by bench/run.py) -->"
DOCS_END = "<!-- results:end -->"


def commands(servers: Sequence[Server]) -> dict[str, str]:
    """Each server's command line as the suite runs it, with PORT and SITE as words."""
    shown = {}
    for server in servers:
        line = " ".join(server.command(65535, Path("SITE")))
        line = line.replace(PY, "python").replace(f"{ROOT}/", "").replace("65535", "PORT")
        shown[server.name] = line
    return shown


def docs_block(result: dict[str, Any]) -> str:
    """The generated part of docs/benchmarks.md: run, machine, versions, commands, figures."""
    meta = result["meta"]
    box = meta["machine"]
    lines = [
        f"Run of {meta['when']}: `{meta['command']}`, {meta['rounds']} rounds of "
        f"{meta['duration']} s per measurement ({meta['warmup']} s warm-up before each), "
        f"{meta['elapsed_s'] / 60:.0f} minutes in all.",
        "",
        "**Machine.** "
        f"{box['cpu']}, {box['cpus']} CPUs, {box['memory_gib']} GiB, Linux {box['kernel']}. "
        f"Servers pinned to CPU {box['server_cpu']}, load generators to CPU "
        f"{box['client_cpu']} (taskset). {load_note(result['rows'])}",
        "",
        "**Versions.** "
        + ", ".join(f"{name} {version}" for name, version in meta["versions"].items())
        + ".",
        "",
        "**Servers, exactly as started** (`PORT` and `SITE` filled in by the suite, under "
        "`taskset -c 0`, with `PYTHONPATH=bench/peers`):",
        "",
    ]
    for name, command in meta["commands"].items():
        lines.append(f"- {name}: `{command}`")
    lines.append("")
    body = markdown(result).split("\n", 2)[2]  # without the title and its blank line
    lines.append(body.replace("\n## ", "\n### "))
    if result.get("storage"):
        lines += ["", "### Storage (bench/storage_bench.py)", "", "```"]
        lines += [result["storage"]["output"], "```"]
    return "\n".join(lines).rstrip() + "\n"


def load_note(rows: list[dict[str, Any]]) -> str:
    """How loaded the machine was: the 1-minute load average after each measurement."""
    loads = [r["load_average"] for r in rows if r.get("load_average") is not None]
    if not loads:
        return ""
    return (
        f"Load average (1 min, {os.cpu_count()} CPUs) during the run: median "
        f"{statistics.median(loads):.1f}, from {min(loads):.1f} to {max(loads):.1f}."
    )


def update_docs(path: Path, block: str) -> bool:
    """Replace what lies between the markers in ``path``; False when they are missing."""
    if not path.exists():
        return False
    text = path.read_text()
    if DOCS_START not in text or DOCS_END not in text:
        return False
    head, rest = text.split(DOCS_START, 1)
    _, tail = rest.split(DOCS_END, 1)
    path.write_text(f"{head}{DOCS_START}\n\n{block}\n{DOCS_END}{tail}")
    return True


def chart(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = result["summary"]
    scenarios = [s for s in SCENARIOS if s in summary]
    fig, axes = plt.subplots(len(scenarios), 1, figsize=(9, 2.0 + 1.7 * len(scenarios)))
    for ax, scenario in zip(axes, scenarios, strict=True):
        entries = [(name, e) for name, e in summary[scenario].items() if "median" in e]
        names = [name for name, _ in entries][::-1]
        medians = [e["median"] for _, e in entries][::-1]
        lo = [e["median"] - e["min"] for _, e in entries][::-1]
        hi = [e["max"] - e["median"] for _, e in entries][::-1]
        colors = ["#d62728" if n.startswith("kitpy") else "#7f7f7f" for n in names]
        ax.barh(names, medians, xerr=[lo, hi], color=colors, capsize=3)
        meta = SCENARIOS[scenario]
        better = "higher" if meta.higher_is_better else "lower"
        ax.set_title(f"{meta.title} ({meta.unit}, {better} is better)", fontsize=10)
        ax.tick_params(labelsize=8)
        for y, (value, above) in enumerate(zip(medians, hi, strict=True)):
            ax.text(value + above, y, f"  {fmt(value, meta.unit)}", va="center", fontsize=7)
        ax.set_xlim(0, max(m + h for m, h in zip(medians, hi, strict=True)) * 1.18)
    fig.suptitle(
        f"kitpy vs peers, 1 server core, medians of {result['meta']['rounds']} rounds "
        "(whiskers: min-max)",
        fontsize=11,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------
# Setup


def install(cfg: Config) -> None:
    """Bench-only dependencies: the peers, matplotlib, and wrk."""
    subprocess.run(
        [PY, "-m", "pip", "install", "-q", "-r", str(BENCH / "requirements.txt")],
        check=True,
        timeout=600,
    )
    if not shutil.which("wrk") and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, timeout=300)
        if not shutil.which("wrk"):
            subprocess.run(["apt-get", "update", "-qq"], check=False, timeout=300)
            subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, timeout=300)


def storage_figures(cfg: Config) -> dict[str, Any] | None:
    """The storage bar, from bench/storage_bench.py (the storage team's script)."""
    script = BENCH / "storage_bench.py"
    if not script.exists():
        cfg.notes.append("storage: bench/storage_bench.py is not there; bar not measured.")
        return None
    folder = cfg.out / "storage-scratch"  # on disk, not tmpfs: fsync must cost
    try:
        out = subprocess.run(
            [PY, str(script), "--writers", "100", "--seconds", "3", "--dir", str(folder)],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=ROOT,
            check=True,
        ).stdout
    except subprocess.SubprocessError as exc:
        cfg.notes.append(f"storage: bench/storage_bench.py failed ({exc}).")
        return None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    figures: dict[str, Any] = {"output": out.strip()}
    for line in out.splitlines():
        label, _, rest = line.partition(":")
        words = rest.split()
        if label.startswith("naive") and words:
            figures["naive_writes_s"] = float(words[0])
        elif label.startswith("kitpy") and words:
            figures["kitpy_writes_s"] = float(words[0])
        elif label == "ratio" and words:
            figures["ratio"] = float(words[0].rstrip("x"))
    if "ratio" not in figures:
        cfg.notes.append("storage: no 'ratio:' line in bench/storage_bench.py's output.")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--smoke", action="store_true", help="one short round, kitpy and bare")
    parser.add_argument(
        "--servers", help="comma-separated subset of: " + ", ".join(s.name for s in SERVERS)
    )
    parser.add_argument(
        "--scenarios", help="comma-separated subset of: " + ", ".join(ALL), default=",".join(ALL)
    )
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    parser.add_argument(
        "--chart", type=Path, default=None, help="default: docs/benchmarks.png for a full run"
    )
    parser.add_argument("--no-install", action="store_true")
    parser.add_argument("--http-load", choices=("auto", "python"), default="auto")
    parser.add_argument(
        "--docs", type=Path, default=None, help="page to update, default docs/benchmarks.md"
    )
    parser.add_argument(
        "--quiet-wait", type=float, default=5.0, help="longest wait for an idle machine, s"
    )
    args = parser.parse_args(argv)

    smoke = args.smoke
    # Only a full run into bench/results updates the chart and page under docs/.
    official = not smoke and args.out.resolve() == (BENCH / "results").resolve()
    cfg = Config(
        rounds=1 if smoke else args.rounds,
        duration=0.5 if smoke else args.duration,
        warmup=0.2 if smoke else args.warmup,
        idle_sockets=50 if smoke else IDLE_SOCKETS,
        members=20 if smoke else ROOM_MEMBERS,
        smoke=smoke,
        out=args.out,
        chart=args.chart or (ROOT / "docs" / "benchmarks.png" if official else None),
        load_tool="wrk",
        quiet_wait=0.0 if smoke else args.quiet_wait,
        scenarios=[name for name in ALL if name in args.scenarios.split(",")],
        logs=args.out / "logs",
    )
    if not (smoke or args.no_install):
        install(cfg)
    if args.http_load == "python" or not shutil.which("wrk"):
        cfg.load_tool = "python"
    if cfg.load_tool == "python" and args.http_load == "python":
        cfg.notes.append("HTTP load came from bench/httpload.py (--http-load python).")
    elif cfg.load_tool == "python":
        cfg.notes.append(
            "wrk is not installed: HTTP load came from bench/httpload.py, a Python loop "
            "that is much slower than wrk and may itself be the bottleneck."
        )
    if not shutil.which("taskset"):
        cfg.notes.append("taskset is missing: servers and clients were NOT pinned to CPUs.")
    if smoke:
        cfg.notes.append("smoke run: one short round, kitpy and the bare loop only.")

    # SIGTERM unwinds like Ctrl-C, so the server being measured is stopped by PID too.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    cfg.out.mkdir(parents=True, exist_ok=True)
    cfg.logs.mkdir(parents=True, exist_ok=True)
    for log in cfg.logs.glob("*.log"):
        log.unlink()

    wanted = args.servers.split(",") if args.servers else None
    servers: list[Server] = []
    unavailable: dict[str, str] = {}
    for server in SERVERS:
        if wanted is not None and server.name not in wanted:
            continue
        if smoke and wanted is None and server.name not in SMOKE_SERVERS:
            continue
        reason = available(server)
        if reason:
            unavailable[server.name] = reason
            cfg.notes.append(f"{server.name} skipped: {reason}.")
        else:
            servers.append(server)

    scratch = Path(tempfile.mkdtemp(prefix="kitpy-bench-"))
    cfg.scratch = scratch
    try:
        hello = generate(scratch / "hello", 0)
        sites = {
            s.name: generate(scratch / s.name, s.site_routes) if s.site_routes else hello
            for s in servers
        }
        if not smoke:
            print(f"{len(servers)} servers, {cfg.rounds} rounds, {cfg.duration} s each", flush=True)
        started = time.time()
        commit_before = versions().get("kitpy_commit")
        rows = measure(cfg, servers, sites)
        storage = None if smoke else storage_figures(cfg)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    commit_after = versions().get("kitpy_commit")
    if commit_before != commit_after:
        cfg.notes.append(
            f"kitpy changed during the run ({commit_before} -> {commit_after}): servers "
            "started later ran newer code."
        )
    summary = summarize(rows)
    result: dict[str, Any] = {
        "meta": {
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
            "elapsed_s": round(time.time() - started, 1),
            "command": " ".join(["python", "bench/run.py", *(argv or sys.argv[1:])]),
            "rounds": cfg.rounds,
            "duration": cfg.duration,
            "warmup": cfg.warmup,
            "load_tool": cfg.load_tool,
            "http_connections": HTTP_CONNECTIONS,
            "echo_connections": ECHO_CONNECTIONS,
            "room_members": cfg.members,
            "idle_sockets": cfg.idle_sockets,
            "smoke": smoke,
            "event_loop": "uvloop" if UVLOOP else "asyncio",
            "baseline": BASELINE,
            "notes": cfg.notes,
            "machine": machine(),
            "versions": versions(),
            "commands": commands(servers),
        },
        "servers": [s.name for s in servers],
        "unavailable": unavailable,
        "rows": rows,
        "summary": summary,
        "ratios": same_run_ratios(rows, "kitpy"),
        "ratios_per_cpu": same_run_ratios(rows, "kitpy", "per_cpu"),
        "route_ratios": same_run_ratios(rows, "kitpy-r1000"),
        "route_ratios_per_cpu": same_run_ratios(rows, "kitpy-r1000", "per_cpu"),
        "plain_ratios": same_run_ratios(rows, "kitpy-plain"),
        "plain_ratios_per_cpu": same_run_ratios(rows, "kitpy-plain", "per_cpu"),
        "storage": storage,
    }
    result["bars"] = bars(result)
    name = "smoke" if smoke else "latest"
    (cfg.out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    (cfg.out / f"{name}.md").write_text(markdown(result))
    if cfg.chart is not None:
        try:
            chart(result, cfg.chart)
        except ImportError:
            print("matplotlib is not installed: no chart", flush=True)
    docs = args.docs or (ROOT / "docs" / "benchmarks.md" if official else None)
    if docs is not None and not update_docs(docs, docs_block(result)):
        print(f"{docs}: no results markers, not updated", flush=True)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
