"""Multi-process WebSocket load client, lean enough never to be the bottleneck.

``python bench/wsload.py echo URL --connections 64 --duration 10``
    Each connection sends a small text message, waits for its echo, sends the next.
    Reports echoed messages per second.

``python bench/wsload.py broadcast URL --members 200 --duration 10 --window 8``
    ``members`` sockets join one room; one of them sends, keeping at most ``window`` of
    its own messages in flight (it is a member, so it hears its own). Reports
    deliveries per second: messages received by all members together.

``python bench/wsload.py idle URL --connections 1000``
    Opens idle sockets, prints ``{"connected": N}``, holds them until stdin closes.

The client does no per-message work beyond what the wire needs: frames are masked
once and reused, server frames are counted with a few byte reads. Connections are
spread over ``--processes`` worker processes on asyncio (uvloop when installed), and
each worker reports its CPU time over the measured window so that a saturated client
shows in the results. The output is one JSON object on the last line of stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from procstat import cpu_seconds, machine_busy

CONNECT_BATCH = 50
CONNECT_TIMEOUT = 10.0
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
MASK = b"\x5a\x17\xc3\x8e"


def masked_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One final client frame (RFC 6455 section 5.2), masked with a fixed key."""
    length = len(payload)
    if length < 126:
        header = bytes([0x80 | opcode, 0x80 | length])
    elif length < 65536:
        header = bytes([0x80 | opcode, 0x80 | 126]) + length.to_bytes(2, "big")
    else:
        header = bytes([0x80 | opcode, 0x80 | 127]) + length.to_bytes(8, "big")
    masked = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return header + MASK + masked


CLOSE_FRAME = masked_frame((1000).to_bytes(2, "big"), opcode=0x8)


class Client(asyncio.Protocol):
    """A WebSocket client connection that counts the complete messages it receives."""

    def __init__(self, handshake: bytes, on_message: Callable[[Client], None]) -> None:
        self.handshake = handshake
        self.on_message = on_message
        self.open: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.buffer = bytearray()
        self.received = 0
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        transport.write(self.handshake)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.open.done():
            self.open.set_exception(ConnectionError("closed during the handshake"))

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.open.done():
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buffer[: buffer.find(b"\r\n")])
            del buffer[: end + 4]
            if b" 101 " not in status + b" ":
                self.open.set_exception(ConnectionError(status.decode(errors="replace")))
                return
            self.open.set_result(None)
        size, pos = len(buffer), 0
        while size - pos >= 2:
            first, second = buffer[pos], buffer[pos + 1] & 0x7F
            if second == 126:
                if size - pos < 4:
                    break
                length, head = int.from_bytes(buffer[pos + 2 : pos + 4], "big"), 4
            elif second == 127:
                if size - pos < 10:
                    break
                length, head = int.from_bytes(buffer[pos + 2 : pos + 10], "big"), 10
            else:
                length, head = second, 2
            if size - pos < head + length:
                break
            opcode = first & 0x0F
            if opcode == 0x9:  # ping: answer with the same payload
                payload = bytes(buffer[pos + head : pos + head + length])
                assert self.transport is not None
                self.transport.write(masked_frame(payload, opcode=0xA))
            elif opcode == 0x8:
                self.closed = True
            elif first & 0x80 and opcode != 0xA:  # the final frame of a message
                self.received += 1
                self.on_message(self)
            pos += head + length
        if pos:
            del buffer[:pos]

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            if not self.closed:
                self.transport.write(CLOSE_FRAME)
            self.transport.close()


def handshake_for(url: str) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path or "/"
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {KEY.decode()}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    return host, port, request


async def connect_all(
    url: str, count: int, on_message: Callable[[Client], None]
) -> tuple[list[Client], list[str]]:
    """Open ``count`` WebSockets, ``CONNECT_BATCH`` handshakes at a time."""
    host, port, handshake = handshake_for(url)
    loop = asyncio.get_running_loop()
    clients: list[Client] = []
    errors: list[str] = []

    async def one() -> None:
        try:
            _, client = await loop.create_connection(
                lambda: Client(handshake, on_message), host, port
            )
            await asyncio.wait_for(client.open, CONNECT_TIMEOUT)
            clients.append(client)
        except (OSError, TimeoutError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")

    for start in range(0, count, CONNECT_BATCH):
        await asyncio.gather(*(one() for _ in range(min(CONNECT_BATCH, count - start))))
    return clients, errors


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


def cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def worker(index: int, args: argparse.Namespace, count: int, sync: Any, results: Any) -> None:
    """One process: connect ``count`` sockets, run the timeline, put a result dict."""
    barrier, start_at = sync
    loop = new_loop()
    asyncio.set_event_loop(loop)
    try:
        result = loop.run_until_complete(run_worker(index, args, count, barrier, start_at))
    except Exception as exc:  # reported, never hidden
        result = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        loop.close()
    results.put((index, result))


async def run_worker(
    index: int, args: argparse.Namespace, count: int, barrier: Any, start_at: Any
) -> dict[str, Any]:
    frame = masked_frame(args.message.encode())
    state = {"running": False, "window": 0}
    sender: list[Client] = []

    def on_echo(client: Client) -> None:
        if state["running"]:
            assert client.transport is not None
            client.transport.write(frame)

    def on_broadcast(client: Client) -> None:
        if state["running"] and sender and client is sender[0]:
            assert client.transport is not None
            client.transport.write(frame)

    on_message = on_echo if args.mode == "echo" else on_broadcast
    clients, errors = await connect_all(args.url, count, on_message)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, barrier.wait, 30)  # every member connected
    if args.mode == "broadcast" and index == 0:
        # The sender joins last: a server that sends in join order reaches it last, so
        # its window waits for the whole room and the backlog stays bounded.
        joined, failed = await connect_all(args.url, 1, on_message)
        sender.extend(joined)
        clients.extend(joined)
        errors.extend(failed)
    await loop.run_in_executor(None, barrier.wait, 30)  # the parent has set start_at
    begin = start_at.value
    measure_from, measure_until = begin + args.warmup, begin + args.warmup + args.duration
    marks: dict[str, tuple[int, float, float, float]] = {}

    lead: dict[str, int] = {}

    def snapshot(name: str) -> None:
        server_cpu = cpu_seconds(args.server_pid) if args.server_pid and index == 0 else 0.0
        marks[name] = (sum(c.received for c in clients), cpu_self(), server_cpu, machine_busy())
        if sender:
            lead[name] = sender[0].received

    def start() -> None:
        state["running"] = True
        if args.mode == "echo":
            for client in clients:
                assert client.transport is not None
                client.transport.write(frame)
        elif sender:
            assert sender[0].transport is not None
            sender[0].transport.write(frame * args.window)

    def stop() -> None:
        snapshot("until")
        state["running"] = False

    now = time.monotonic()
    loop.call_later(begin - now, start)
    loop.call_later(measure_from - now, snapshot, "from")
    loop.call_later(measure_until - now, stop)
    await asyncio.sleep(measure_until - now + 0.3)
    per_client = [c.received for c in clients]
    closed_early = sum(c.closed for c in clients)
    for client in clients:
        client.close()
    await asyncio.sleep(0.05)
    received_from, cpu_from, server_from, busy_from = marks["from"]
    received_until, cpu_until, server_until, busy_until = marks["until"]
    return {
        "connected": len(clients),
        "errors": errors[:5],
        "error_count": len(errors),
        "closed_early": closed_early,
        "messages": received_until - received_from,
        "receiving": sum(1 for n in per_client if n),
        "client_cpu": cpu_until - cpu_from,
        "server_cpu": server_until - server_from if args.server_pid and index == 0 else None,
        "machine_busy": busy_until - busy_from,
        "sender_messages": lead["until"] - lead["from"] if lead else None,
    }


def run_timed(args: argparse.Namespace, total: int) -> dict[str, Any]:
    """Spread ``total`` sockets over the workers, run them, sum what they report."""
    ctx = multiprocessing.get_context("fork")
    processes = max(1, min(args.processes, total))
    barrier = ctx.Barrier(processes + 1)
    start_at = ctx.Value("d", 0.0)
    results = ctx.Queue()
    members = total - 1 if args.mode == "broadcast" else total  # the sender is extra
    shares = [
        members // processes + (1 if i < members % processes else 0) for i in range(processes)
    ]
    workers = [
        ctx.Process(target=worker, args=(i, args, share, (barrier, start_at), results))
        for i, share in enumerate(shares)
    ]
    for process in workers:
        process.start()
    deadline = args.warmup + args.duration + 60
    try:
        barrier.wait(60)
        start_at.value = time.monotonic() + 0.5
        barrier.wait(10)
        collected = dict(results.get(timeout=deadline) for _ in workers)
    finally:
        for process in workers:
            process.join(5)
            if process.is_alive():
                process.kill()
    failures = [r["error"] for r in collected.values() if "error" in r]
    if failures:
        raise SystemExit(f"wsload worker failed: {failures}")
    reports = [collected[i] for i in sorted(collected)]
    messages = sum(r["messages"] for r in reports)
    server_cpu = reports[0]["server_cpu"]
    client_cpu = sum(r["client_cpu"] for r in reports)
    background = reports[0]["machine_busy"] - client_cpu - (server_cpu or 0.0)
    sent = reports[0]["sender_messages"]
    return {
        "mode": args.mode,
        "connections": total,
        "connected": sum(r["connected"] for r in reports),
        "connect_errors": sum(r["error_count"] for r in reports),
        "error_samples": [e for r in reports for e in r["errors"]][:5],
        "closed_early": sum(r["closed_early"] for r in reports),
        "receiving": sum(r["receiving"] for r in reports),
        "processes": processes,
        "duration": args.duration,
        "messages": messages,
        "rate": messages / args.duration,
        "client_cpu": client_cpu / args.duration,
        "server_cpu": None if server_cpu is None else server_cpu / args.duration,
        "background_cpu": max(0.0, background / args.duration),
        # broadcast: messages the sender heard over what an average member heard; well
        # above 1 means the room fell behind the sender (a backlog in the server).
        "sender_lead": sent / (messages / total) if sent and messages else None,
    }


async def run_idle(args: argparse.Namespace) -> None:
    clients, errors = await connect_all(args.url, args.connections, lambda client: None)
    print(json.dumps({"connected": len(clients), "errors": errors[:5]}), flush=True)
    loop = asyncio.get_running_loop()
    await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.read), args.hold)
    for client in clients:
        client.close()
    await asyncio.sleep(0.05)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["echo", "broadcast", "idle"])
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--window", type=int, default=8, help="broadcast: sender's in-flight")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--processes", type=int, default=max(2, len(os.sched_getaffinity(0))))
    parser.add_argument("--message", default="x" * 32, help="the text every frame carries")
    parser.add_argument("--server-pid", type=int, default=0, help="to report its CPU use")
    parser.add_argument("--hold", type=float, default=120.0, help="idle: longest hold, s")
    args = parser.parse_args(argv)
    if args.mode == "idle":
        loop = new_loop()
        try:
            loop.run_until_complete(run_idle(args))
        finally:
            loop.close()
        return
    total = args.connections if args.mode == "echo" else args.members
    print(json.dumps(run_timed(args, total)))


if __name__ == "__main__":
    main()
