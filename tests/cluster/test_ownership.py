"""At most one live instance per object id in a cluster of real ``kitpy serve`` nodes.

Three nodes on one PostgreSQL and one NATS; hundreds of concurrent first calls to the
same ids through all nodes: each id is constructed once, on one node, and every call
of an id is answered by that one instance. An alarm set on a live owner fires once.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from engines import SITE, WAIT, Node, Nodes, poll

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

IDS = 60
CALLS_PER_ID = 6  # 360 first calls, two per node per id


def start_three(cluster_nodes: Nodes, env: dict[str, str], ttl: float = 3.0) -> list[Node]:
    return [cluster_nodes.start(SITE, name, lease_ttl=ttl, env=env) for name in ("a", "b", "c")]


async def test_concurrent_first_calls_through_all_nodes_build_one_instance_per_id(
    cluster_nodes: Nodes, tmp_path: Path
) -> None:
    log = tmp_path / "constructed.log"
    nodes = start_three(cluster_nodes, {"COUNTER_LOG": str(log)})
    calls = [(f"id-{n}", nodes[k % 3]) for n in range(IDS) for k in range(CALLS_PER_ID)]
    random.shuffle(calls)
    answers: dict[str, list[dict[str, Any]]] = {}
    limits = httpx.Limits(max_connections=len(calls))
    async with httpx.AsyncClient(timeout=WAIT, limits=limits) as client:

        async def call(name: str, node: Node) -> None:
            answer = await client.get(f"{node.url}/c/{name}/increment")
            assert answer.status_code == 200, answer.text
            answers.setdefault(name, []).append(answer.json())

        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                for name, node in calls:
                    tg.start_soon(call, name, node)

    for name, got in answers.items():
        assert len({a["token"] for a in got}) == 1, f"{name}: more than one instance: {got}"
        assert sorted(a["n"] for a in got) == list(range(1, CALLS_PER_ID + 1)), name
    constructed = Counter(line.split()[0] for line in log.read_text().splitlines())
    assert len(constructed) == IDS
    assert set(constructed.values()) == {1}, [i for i, n in constructed.items() if n > 1]
    owners = Counter(got[0]["node"] for got in answers.values())
    assert set(owners) <= {"a", "b", "c"} and len(owners) >= 2  # the ids spread out


async def test_an_alarm_on_a_live_owner_fires_once(cluster_nodes: Nodes, tmp_path: Path) -> None:
    nodes = start_three(cluster_nodes, {}, ttl=1.5)
    async with httpx.AsyncClient(timeout=WAIT) as client:
        owner = (await client.get(f"{nodes[1].url}/c/alarmed/arm?delay=1")).json()["node"]
        assert owner == "b"  # the first call through b claimed it there
        fired = await poll(client, f"{nodes[2].url}/c/alarmed/fired", lambda j: j["fired"])
        assert fired == {"fired": ["b"], "alarm": None}
        await anyio.sleep(3 * 1.5)  # every node's sweep ran: nothing fires again
        again = (await client.get(f"{nodes[0].url}/c/alarmed/fired")).json()
        assert again == {"fired": ["b"], "alarm": None}
