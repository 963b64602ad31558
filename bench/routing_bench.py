"""Time RouteTable.match() for generated sites of 10, 1,000 and 10,000 routes.

Run: python bench/routing_bench.py   (no dependencies beyond kitpy)

Each site mixes static routes, [id] params, [id=int] + [...rest], mixed segments
([name].[ext]) and [[optional]] routes, plus a root catch-all, so that misses and
matcher rejections are measured too. Prints microseconds per match.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from kitpy.routing import RouteSpec, RouteTable

SIZES = (10, 1_000, 10_000)
PATHS_PER_SITE = 2_000
REPEAT = 5


def route_ids(n: int) -> list[str]:
    ids = []
    for i in range(n):
        kind = i % 5
        if kind == 0:
            ids.append(f"/s{i % 97}/page{i}")
        elif kind == 1:
            ids.append(f"/api/v{i % 7}/res{i}/[id]")
        elif kind == 2:
            ids.append(f"/u{i}/[id=int]/posts/[...rest]")
        elif kind == 3:
            ids.append(f"/d{i % 50}/file{i}-[name].[ext]")
        else:
            ids.append(f"/g{i}/[[page]]")
    return [*ids, "/[...catchall]"]


def request_paths(n: int, rng: random.Random) -> list[str]:
    paths = []
    for _ in range(PATHS_PER_SITE):
        i = rng.randrange(n)
        kind = i % 5
        if kind == 0:
            paths.append(f"/s{i % 97}/page{i}")
        elif kind == 1:
            paths.append(f"/api/v{i % 7}/res{i}/abc%20{i}")
        elif kind == 2:
            paths.append(f"/u{i}/{i}/posts/a/b/c" if i % 2 else f"/u{i}/x/posts")  # x: rejected
        elif kind == 3:
            paths.append(f"/d{i % 50}/file{i}-report.tar.gz")
        else:
            paths.append(f"/g{i}/{i}" if i % 2 else f"/g{i}/")
    return paths


def bench(n: int) -> tuple[float, float]:
    ids = route_ids(n)
    started = time.perf_counter()
    table = RouteTable([RouteSpec(id=i, file=Path(f"/bench{i}.py"), pattern=i) for i in ids])
    build = time.perf_counter() - started
    paths = request_paths(n, random.Random(n))
    match = table.match
    best = float("inf")
    for _ in range(REPEAT):
        started = time.perf_counter()
        for path in paths:
            match(path)
        best = min(best, time.perf_counter() - started)
    return build, best / len(paths) * 1e6


def main() -> None:
    print(f"{'routes':>8}  {'build (ms)':>10}  {'us/match':>8}")
    for n in SIZES:
        build, per_match = bench(n)
        print(f"{n:>8,}  {build * 1e3:>10.1f}  {per_match:>8.2f}")


if __name__ == "__main__":
    main()
