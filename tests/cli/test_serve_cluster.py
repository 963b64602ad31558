"""``kitpy serve`` as cluster nodes: the engines checked at start-up, ``--workers N``
as N nodes on one port (real PostgreSQL and NATS from tests/cluster/engines.py)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from .test_workers import TIMEOUT, Served, clean_env

COUNTER = """
import os
from kitpy import DurableObject

class Counter(DurableObject):
    async def fetch(self, request):
        n = (await self.state.storage.get("n") or 0) + 1
        await self.state.storage.put("n", n)
        return {"body": {"n": n, "pid": os.getpid()}}
"""
ROUTES = {
    "routes/count/[name].py": (
        "async def post(event):\n"
        "    ns = event.platform.env.counters\n"
        '    return await ns.get(ns.id_from_name(event.params["name"])).fetch(event.request)\n'
    ),
    "routes/index.py": (
        'import os\n\nasync def get(event):\n    return {"body": {"pid": os.getpid()}}\n'
    ),
}


def counter_site(root: Path) -> Path:
    for name, text in {**ROUTES, "objects/counter.py": COUNTER}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "kitpy.toml").write_text('[objects]\ncounters = "objects.counter:Counter"\n')
    return root


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_nats_unreachable_is_one_line(tmp_path: Path, cluster_db: str) -> None:
    port = free_port()
    env = {**clean_env(), "KITPY_POSTGRES": cluster_db, "KITPY_NATS": f"nats://127.0.0.1:{port}"}
    result = subprocess.run(
        [sys.executable, "-m", "kitpy", "serve", str(counter_site(tmp_path / "s")), "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT,
    )
    assert result.returncode == 1
    assert result.stderr == (
        f"kitpy: KITPY_NATS: cannot reach nats://127.0.0.1:{port}: connection refused\n"
    )


def test_two_workers_are_two_nodes_of_one_cluster(
    tmp_path: Path, cluster_db: str, nats_server: object
) -> None:
    site = counter_site(tmp_path / "site")
    env = {
        **clean_env(),
        "KITPY_POSTGRES": cluster_db,
        "KITPY_NATS": nats_server.url,  # type: ignore[attr-defined]
        "KITPY_NODE": "w",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "kitpy", "serve", str(site), "--port", "0", "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    served = Served(process)
    try:
        fronts: set[int] = set()
        owners: set[int] = set()
        for expected in range(1, 31):  # a new connection each: both workers take some
            with httpx.Client(base_url=served.base, timeout=TIMEOUT) as client:
                fronts.add(client.get("/").json()["pid"])
                answer = client.post("/count/one").json()
            assert answer["n"] == expected  # one instance cluster-wide: no lost update
            owners.add(answer["pid"])
        assert fronts == set(served.workers)
        assert len(owners) == 1  # the object lives on one node; the other forwards
        status = subprocess.run(
            [sys.executable, "-m", "kitpy", "cluster", "status", str(site), "--json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=TIMEOUT,
        )
        nodes = json.loads(status.stdout)["nodes"]
        assert [(n["name"], n["live"]) for n in nodes] == [("w-0", True), ("w-1", True)]
        assert sorted(n["objects"] for n in nodes) == [0, 1]
    finally:
        code, err = served.stop(signal.SIGTERM)
    assert code == 0, err
    for pid in served.workers:
        try:
            os.kill(pid, 0)
            raise AssertionError(f"worker {pid} is still running")
        except ProcessLookupError:
            pass
