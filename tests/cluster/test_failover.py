"""Fencing and failover with real ``kitpy serve`` nodes, paused and killed by PID.

- SIGSTOP of an object's owner: another node takes the object over once the owner's
  lease ran out; after SIGCONT the owner's pending write is refused, its response is
  not a success, and its stale instance answers nothing more (not even a read). Every
  acknowledged increment is stored, and only those: the count of successes equals the
  stored count and no value is returned twice.
- SIGKILL of an owner: its objects answer again from another node, with every
  acknowledged write present; its alarm fires once, on a live node.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from engines import SITE, WAIT, Node, Nodes, poll

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

TTL = 1.5  # seconds


async def increment(client: httpx.AsyncClient, node: Node, name: str) -> dict[str, Any] | None:
    """One increment through ``node``: its answer if acknowledged (200), else None."""
    try:
        answer = await client.get(f"{node.url}/c/{name}/increment")
    except httpx.HTTPError:
        return None
    return dict(answer.json()) if answer.status_code == 200 else None


async def until_answered(client: httpx.AsyncClient, node: Node, name: str) -> dict[str, Any]:
    with anyio.fail_after(WAIT):
        while (answer := await increment(client, node, name)) is None:
            await anyio.sleep(0.05)
        return answer


async def test_a_paused_owner_is_replaced_and_its_pending_write_refused(
    cluster_nodes: Nodes, tmp_path: Path
) -> None:
    log = tmp_path / "counter.log"
    a, b, c = (
        cluster_nodes.start(SITE, name, lease_ttl=TTL, env={"COUNTER_LOG": str(log)})
        for name in ("a", "b", "c")
    )
    acknowledged: list[int] = []
    async with httpx.AsyncClient(timeout=WAIT) as client:
        for node in (a, a, b, c, a):
            answer = await until_answered(client, node, "x")
            assert answer["node"] == "a"  # the first call through a made a the owner
            acknowledged.append(answer["n"])
        paused_instance = answer["token"]

        pending: dict[str, Any] = {}

        async def slow_on_a() -> None:
            try:
                answer = await client.get(f"{a.url}/c/x/slow?delay=3", timeout=60)
                pending["status"] = answer.status_code
                pending["body"] = answer.text
            except httpx.HTTPError as exc:
                pending["error"] = repr(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(slow_on_a)
            # The slow increment has read n and waits 3 s to write it: pause a then.
            with anyio.fail_after(WAIT):
                while "slow " not in (log.read_text() if log.exists() else ""):
                    await anyio.sleep(0.01)
            a.pause()
            paused = time.monotonic()
            try:
                taken_over: list[dict[str, Any]] = []

                async def client_loop(node: Node) -> None:
                    while len(taken_over) < 20:
                        answer = await increment(client, node, "x")
                        if answer is not None:
                            assert answer["node"] != "a"
                            acknowledged.append(answer["n"])
                            taken_over.append(answer)
                        else:
                            await anyio.sleep(0.05)

                with anyio.fail_after(WAIT * 2):
                    async with anyio.create_task_group() as clients:
                        for node in (b, c, b, c):
                            clients.start_soon(client_loop, node)
                # No takeover before the lease ran out. The lease runs from a's last
                # heartbeat, which may precede the pause by one interval (TTL / 3).
                assert time.monotonic() - paused > TTL - TTL / 3
            finally:
                a.resume()
            # At once after SIGCONT, a's instance from before the pause is stale (b or c
            # owns the object now): it must not answer, even a read.
            try:
                seen = await client.get(f"{a.url}/c/x/who")
            except httpx.HTTPError:
                seen = None
            if seen is not None and seen.status_code == 200:
                assert seen.json()["token"] != paused_instance, seen.json()
        # After SIGCONT, a's pending write was refused: not a success.
        assert pending.get("status") != 200, pending
        assert "error" in pending or pending["status"] >= 500, pending
        for node in (a, b, c):  # a is a node like the others again
            answer = await until_answered(client, node, "x")
            acknowledged.append(answer["n"])
        stored = (await client.get(f"{c.url}/c/x/who")).json()["n"]
    assert sorted(acknowledged) == list(range(1, stored + 1)), (acknowledged, stored)


async def test_a_killed_owner_s_objects_and_alarm_come_back_on_a_live_node(
    cluster_nodes: Nodes,
) -> None:
    a, b, c = (cluster_nodes.start(SITE, name, lease_ttl=TTL) for name in ("a", "b", "c"))
    async with httpx.AsyncClient(timeout=WAIT) as client:
        counts = [(await until_answered(client, node, "x"))["n"] for node in (a, b, c) * 4]
        assert counts == list(range(1, 13))
        owner = (await client.get(f"{a.url}/c/z/arm?delay=2")).json()["node"]
        assert owner == "a"
        a.kill()
        killed = time.monotonic()
        answer = await until_answered(client, b, "x")
        failover = time.monotonic() - killed
        assert answer["n"] == 13 and answer["node"] in ("b", "c")  # nothing acknowledged lost
        print(f"failover after SIGKILL: {failover:.2f} s (lease_ttl {TTL} s)")
        fired = await poll(client, f"{c.url}/c/z/fired", lambda j: j["fired"])
        assert fired["alarm"] is None and len(fired["fired"]) == 1
        assert fired["fired"][0] in ("b", "c")
        await anyio.sleep(3 * TTL)  # every live node swept again: it does not fire twice
        assert (await client.get(f"{b.url}/c/z/fired")).json() == fired
