"""Durable object calls per second: RPC (``await stub.hit(by=1)``) beside ``stub.fetch``.

Both sides run in one process on one ObjectSystem, in the same run, against the same
objects: a counter held in memory (no storage, so the figure is the cost of a call:
encoding, the input gate, the event task, the output gate, decoding). The RPC side
sends a kwarg and gets an int back; the fetch side sends a small JSON body and parses
the JSON answer, the way an object's HTTP API is used. ``callers`` tasks call in a
loop for ``seconds``, either all to one object or spread over ``objects`` objects
(each caller walks its own slice). Rounds alternate the four rows, so a noisy
neighbour hits all alike; each row is also given per CPU-second of this process,
which stays steadier than wall-clock rates on a shared machine. Run from the
repository root:

    python bench/rpc_bench.py [--callers 64] [--objects 1000] [--seconds 2] [--rounds 3] [--trio]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from kitpy import DurableObject, Request, Response
from kitpy.objects import ObjectSystem, Stub
from kitpy.storage import MemoryBackend


class Counter(DurableObject):
    n = 0

    async def hit(self, by: int = 1) -> int:
        self.n += by
        return self.n

    async def fetch(self, request: Request) -> Response:
        self.n += (await request.json())["by"]
        return Response(json.dumps({"n": self.n}), headers={"content-type": "application/json"})


async def _by_rpc(stub: Stub) -> int:
    n: int = await stub.hit(by=1)
    return n


async def _by_fetch(stub: Stub) -> int:
    response = await stub.fetch("/hit", method="POST", body='{"by": 1}')
    assert response.body is not None
    n: int = json.loads(response.body)["n"]
    return n


async def _storm(
    stubs: list[Stub], callers: int, seconds: float, call: Callable[[Stub], Awaitable[int]]
) -> tuple[float, float]:
    """Completed calls per second, and per CPU-second, with ``callers`` tasks calling
    for ``seconds``."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def caller(index: int) -> None:
        nonlocal done
        mine = stubs[index::callers] or [stubs[index % len(stubs)]]
        step = 0
        while time.perf_counter() < deadline:
            await call(mine[step % len(mine)])
            done += 1
            step += 1

    started, cpu = time.perf_counter(), time.process_time()
    async with anyio.create_task_group() as group:
        for index in range(callers):
            group.start_soon(caller, index)
    return done / (time.perf_counter() - started), done / (time.process_time() - cpu)


async def main(callers: int, objects: int, seconds: float, rounds: int) -> dict[str, Any]:
    system = ObjectSystem(MemoryBackend(), {"counters": Counter}, None)
    rows: dict[str, list[float]] = {}
    per_cpu: dict[str, list[float]] = {}
    async with system.run():
        counters = system.namespace("counters")
        one = [counters.get_by_name("one")]
        many = [counters.get_by_name(f"c{index}") for index in range(objects)]
        for stubs in (one, many):  # build the instances before measuring
            for stub in stubs:
                await _by_rpc(stub)
        plan = [
            ("rpc, one object", one, _by_rpc),
            ("fetch, one object", one, _by_fetch),
            (f"rpc, {objects} objects", many, _by_rpc),
            (f"fetch, {objects} objects", many, _by_fetch),
        ]
        for round_ in range(rounds):
            figures = []
            for label, stubs, call in plan:
                rate, cpu_rate = await _storm(stubs, callers, seconds, call)
                rows.setdefault(label, []).append(rate)
                per_cpu.setdefault(label, []).append(cpu_rate)
                figures.append(f"{label} {rate:8.0f}/s")
            print(f"round {round_ + 1}: " + "   ".join(figures))
    medians = {label: statistics.median(rates) for label, rates in rows.items()}
    cpu_medians = {label: statistics.median(rates) for label, rates in per_cpu.items()}
    print(f"callers: {callers}, {rounds} x {seconds:g} s per row, one process, in memory")
    for label, rate in medians.items():
        print(
            f"{label + ':':<24}{rate:10.0f} calls/s (median), "
            f"{cpu_medians[label]:8.0f} per CPU-second"
        )
    labels = list(medians)
    for name, a, b in (("one object", 0, 1), (f"{objects} objects", 2, 3)):
        wall = medians[labels[a]] / medians[labels[b]]
        cpu = cpu_medians[labels[a]] / cpu_medians[labels[b]]
        print(f"ratio rpc/fetch, {name}: {wall:.2f} ({cpu:.2f} per CPU-second)")
    return medians


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callers", type=int, default=64)
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trio", action="store_true", help="run on Trio instead of asyncio")
    args = parser.parse_args()
    anyio.run(
        main,
        args.callers,
        args.objects,
        args.seconds,
        args.rounds,
        backend="trio" if args.trio else "asyncio",
    )
