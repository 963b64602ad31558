"""A small HTTP/1.1 keep-alive load loop, used only when wrk is not installed.

``python bench/httpload.py URL --connections 64 --duration 10``

Each connection sends a GET, reads the response (Content-Length bodies only), sends
the next. Prints one JSON line in the shape of ``wrk_report.lua``'s. It is far slower
than wrk, so on one core it may be the bottleneck: results say which tool ran.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit


async def connection(
    host: str, port: int, request: bytes, until: float, latencies: list[float], errors: list[int]
) -> None:
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        errors[0] += 1
        return
    try:
        while time.monotonic() < until:
            sent = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - sent)
            if not head.startswith(b"HTTP/1.1 2"):
                errors[1] += 1
    except (OSError, asyncio.IncompleteReadError):
        errors[2] += 1
    finally:
        writer.close()


async def run(url: str, connections: int, duration: float) -> dict[str, float]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    latencies: list[float] = []
    errors = [0, 0, 0]
    start = time.monotonic()
    await asyncio.gather(
        *(
            connection(host, port, request, start + duration, latencies, errors)
            for _ in range(connections)
        )
    )
    elapsed = time.monotonic() - start
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1e6

    return {
        "requests": len(latencies),
        "duration_us": elapsed * 1e6,
        "connect_errors": errors[0],
        "status_errors": errors[1],
        "read_errors": errors[2],
        "write_errors": 0,
        "timeouts": 0,
        "mean_us": sum(latencies) / max(1, len(latencies)) * 1e6,
        "p50_us": pct(50) if latencies else 0,
        "p90_us": pct(90) if latencies else 0,
        "p99_us": pct(99) if latencies else 0,
        "max_us": latencies[-1] * 1e6 if latencies else 0,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()
    print("WRKJSON " + json.dumps(asyncio.run(run(args.url, args.connections, args.duration))))
