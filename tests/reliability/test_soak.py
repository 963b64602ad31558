"""The soak: everything at once against one server, for KITPY_SOAK_SECONDS (default 300).

Runs only with ``KITPY_SOAK=1`` (the other modules also run far more examples then).
Mixed load: writes through durable objects, WebSocket sessions that come and go (some
dropped without a close), malformed and smuggling requests, slowloris connections and
a probe. Every 5 s the server's VmRSS and descriptor count are sampled; after a warm-up
third, memory must not keep growing and descriptors must come back when load stops.
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time

import pytest

from .conftest import SOAK, MakeSite, ServeDir, record_figure
from .helpers import (
    HOST,
    LatencyProbe,
    exchange,
    get,
    wait_for,
    ws_close_frame,
    ws_frame,
    ws_handshake,
    ws_read_frames,
)
from .sites import STORE, STORE_CONFIG, WS
from .test_smuggling import REFUSED
from .test_storage_faults import Storm

SECONDS = float(os.environ.get("KITPY_SOAK_SECONDS", "300"))

pytestmark = [
    pytest.mark.skipif(not SOAK, reason="set KITPY_SOAK=1 to run the soak"),
    pytest.mark.slow,
    pytest.mark.timeout(int(SECONDS) + 300),
]


def _loop(stop: threading.Event, work: object, errors: list[str]) -> None:
    while not stop.is_set():
        try:
            work()  # type: ignore[operator]
        except Exception as exc:
            errors.append(repr(exc)[:200])


def test_soak(make_site: MakeSite, serve_dir: ServeDir) -> None:
    files = {**STORE, **{k: v for k, v in WS.items() if k.startswith(("objects/", "routes/"))}}
    config = STORE_CONFIG.replace("[server]", "[server]\n    header_timeout = 2.0").replace(
        "[objects]", '[objects]\n    rooms = "objects.room:Room"'
    )
    server = serve_dir(make_site(files, config))
    port = server.port
    assert wait_for(lambda: get(port, "/ping").status == 200, 5)
    errors: list[str] = []
    stop = threading.Event()

    def websockets() -> None:
        sock, response, rest = ws_handshake(port, f"/room/r{random.randrange(20)}/websocket")
        try:
            sock.sendall(ws_frame(0x1, b"hello"))
            ws_read_frames(sock, 2, rest, until_close=False)
            if random.random() < 0.5:
                sock.sendall(ws_close_frame(1000))
                ws_read_frames(sock, 2)
            else:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        finally:
            sock.close()

    def malformed() -> None:
        exchange(port, random.choice(list(REFUSED.values())), timeout=5)

    def slowloris() -> None:
        sock = socket.create_connection((HOST, port))
        try:
            sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n")
            for _ in range(10):
                time.sleep(0.3)
                sock.sendall(b"X-A: b\r\n")
        except OSError:
            pass
        finally:
            sock.close()

    workers = [
        threading.Thread(target=_loop, args=(stop, work, errors))
        for work in [websockets, websockets, malformed, slowloris, slowloris]
    ]
    samples: list[tuple[float, int, int]] = []
    start = time.monotonic()
    with LatencyProbe(port, interval=0.2) as probe, Storm(port) as storm:
        for worker in workers:
            worker.start()
        try:
            while time.monotonic() - start < SECONDS:
                samples.append((round(time.monotonic() - start), server.rss_kib(), server.fds()))
                assert server.alive(), server.log()[-2000:]
                time.sleep(5)
        finally:
            stop.set()
            for worker in workers:
                worker.join(timeout=30)
    settled = wait_for(lambda: server.fds() <= samples[0][2] + 5, 30)
    warm = [rss for t, rss, _ in samples if t >= SECONDS / 3]
    record_figure(
        "soak",
        {
            "seconds": SECONDS,
            "writes_acked": len(storm.acked),
            "rss_kib_first_last_max": (samples[0][1], samples[-1][1], max(s[1] for s in samples)),
            "rss_kib_after_warmup_min_max": (min(warm), max(warm)),
            "fds_first_max_end": (samples[0][2], max(s[2] for s in samples), server.fds()),
            "probe": probe.summary(),
            "client_side_errors": len(errors),
        },
    )
    assert not probe.failures, probe.failures[:5]
    assert settled, (samples[0][2], server.fds())
    # after the warm-up third, memory stays within 25% (allocator noise, not growth)
    assert max(warm) <= min(warm) * 1.25, (min(warm), max(warm))
