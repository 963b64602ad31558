"""CPU per request of kitpy's Python stack alone: no sockets, no kernel, no load generator.

    python bench/inproc.py [--route hello|json|sync] [--requests 20000] [--profile]
                           [--no-uvloop] [--reader plain|httptools|h11]

Loads bench/sites/hello as ``kitpy serve`` does and feeds one connection, in memory,
the request wrk sends (one request per read, as on a keep-alive connection under
wrk), discarding the answers; the access log is formatted and written to /dev/null
as ``serve`` writes it to stderr. ``--reader`` picks the request-head reader
(default: the one ``serve`` uses, httptools when ``kitpy[fast]`` is installed; ``h11``:
every request through the h11 reference path). Prints microseconds of CPU per request (best of 5
batches). ``--profile`` prints cProfile's top functions instead. The number is
repeatable on a busy machine far better than a loopback benchmark, which makes it
the figure to compare changes of the hot path by; bench/run.py stays the one that
counts.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

BENCH = Path(__file__).resolve().parent
SITE = BENCH / "sites" / "hello"
TARGETS = {"hello": b"/", "json": b"/users/42", "sync": b"/sync"}


class _Feed(anyio.abc.ByteStream):
    """A stream that hands out ``count`` copies of one request and swallows the answers."""

    def __init__(self, request: bytes, count: int) -> None:
        self.request = request
        self.left = count
        self.sent = 0

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if self.left <= 0:
            raise anyio.EndOfStream
        self.left -= 1
        return self.request

    async def send(self, item: bytes) -> None:
        self.sent += 1

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


async def _batch(app: Any, request: bytes, count: int, log: Any) -> float:
    from kitpy.server.connection import handle_connection

    feed = _Feed(request, count)
    started = time.process_time()
    await handle_connection(app, feed, client=("127.0.0.1", 40000), access_log=log)
    elapsed = time.process_time() - started
    assert feed.sent >= count, f"{feed.sent} answers to {count} requests"
    return elapsed


def connection_reader() -> str:
    """The head reader the connections of this run use."""
    from kitpy.server import connection

    return "h11" if connection.HEAD_READER is False else str(connection.HEAD_READER)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--route", choices=sorted(TARGETS), default="hello")
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--uvloop", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--reader", choices=("plain", "httptools", "h11"))
    args = parser.parse_args()
    if args.reader is not None:
        from kitpy.server import connection

        connection.HEAD_READER = False if args.reader == "h11" else args.reader

    from kitpy.runtime.app import load_app
    from kitpy.server.accesslog import StderrLog

    app = load_app(SITE, dev=False, index_static=True)
    log = StderrLog()
    sys.stderr = open(os.devnull, "w")
    request = b"GET " + TARGETS[args.route] + b" HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n"

    async def measure() -> None:
        async with app.lifespan():
            await _batch(app, request, 2000, log)  # warm up
            if args.profile:
                profiler = cProfile.Profile()
                profiler.enable()
                await _batch(app, request, args.requests, log)
                profiler.disable()
                stats = pstats.Stats(profiler, stream=sys.stdout)
                stats.sort_stats("tottime").print_stats(
                    int(os.environ.get("KITPY_PROFILE_LINES", "35"))
                )
                return
            best = min([await _batch(app, request, args.requests, log) for _ in range(5)])
            reader = connection_reader()
            print(
                f"{args.route} ({reader}): {best / args.requests * 1e6:.2f} us of CPU per request"
            )

    if args.uvloop:
        import uvloop

        uvloop.run(measure())
    else:
        asyncio.run(measure())


if __name__ == "__main__":
    main()
