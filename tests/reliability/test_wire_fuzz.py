"""Issue #7, part 1 (real server half): fuzzed requests against ``kitpy serve``.

Every input goes out on its own connection and the socket is left open; once a batch
is sent, all of them are read at once until the server closes them. For each:

- the server answered with well-formed responses (or closed without a word);
- never a 5xx: nothing in the fuzz site can fail, so a 5xx is the server's fault;
- a 400/413/431 is the last response on its connection, which is then closed;
- the server closed it within header_timeout + keepalive_timeout + slack of our last
  byte: no connection hangs past its timeouts;

and afterwards the server is alive, serves /ping, and its file descriptor count is
back to the baseline (no leaked socket). RSS and fd figures are recorded.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from .conftest import module_server, record_figure
from .helpers import HOST, Server, Watch, connect, get, wait_for, watch_all
from .sites import FAST_LIMITS, PING
from .strategies import SOAK, examples, http_inputs

HEADER_TIMEOUT = 2.0
KEEPALIVE_TIMEOUT = 1.0
CLOSE_BOUND = HEADER_TIMEOUT + KEEPALIVE_TIMEOUT + 3.0
BATCH = 100
ALLOWED = {200, 204, 308, 400, 404, 405, 408, 413, 431}
REFUSALS = {400, 408, 413, 431}
STATUS_LINE = re.compile(rb"(?:^|\r\n)HTTP/1\.[01] (\d{3}) ")

pytestmark = pytest.mark.timeout(1800 if SOAK else 120)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from module_server(tmp_path_factory, PING, FAST_LIMITS)


def check(watch: Watch) -> str | None:
    """What is wrong with one connection's outcome, or None."""
    data = bytes(watch.data)
    if watch.ending == "timeout":
        return "the server never closed the connection"
    assert watch.closed_at is not None
    if watch.closed_at - watch.sent_at > CLOSE_BOUND:
        return f"closed only after {watch.closed_at - watch.sent_at:.1f}s"
    if data and not data.startswith(b"HTTP/1.1 "):
        return f"not an HTTP/1.1 response: {data[:80]!r}"
    # Status lines at line starts (HEAD responses make exact framing ambiguous here).
    statuses = [int(s) for s in STATUS_LINE.findall(data)]
    bad = [s for s in statuses if s not in ALLOWED]
    if bad:
        return f"unexpected status {bad}: {data[:300]!r}"
    for index, status in enumerate(statuses[:-1]):
        if status in REFUSALS:
            return f"{status} was not the last response ({statuses[index + 1 :]} followed)"
    return None


def test_fuzzed_requests_over_the_wire(server: Server) -> None:
    assert wait_for(lambda: get(server.port, "/ping").status == 200, 5)
    fds_before = server.fds()
    rss_before = server.rss_kib()
    pending: list[Watch] = []
    failures: list[tuple[bytes, str]] = []
    sent = 0

    def flush() -> None:
        watch_all(pending, CLOSE_BOUND + 2)
        for watch in pending:
            problem = check(watch)
            if problem:
                failures.append((watch.label, problem))  # type: ignore[arg-type]
        pending.clear()

    @settings(
        max_examples=examples(300, 5_000),
        derandomize=not SOAK,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(http_inputs())
    def send(data: bytes) -> None:
        nonlocal sent
        sock = connect(server.port)
        try:
            sock.sendall(data)
        except OSError:
            pass  # the server may refuse and close before it read everything
        pending.append(Watch(sock, time.monotonic(), data))
        sent += 1
        if len(pending) >= BATCH:
            flush()

    try:
        send()
    finally:
        flush()
    assert not failures, failures[:5]
    assert server.alive()
    assert get(server.port, "/ping").body == b"pong"
    settled = wait_for(lambda: server.fds() <= fds_before, 10)
    record_figure(
        "wire_fuzz",
        {
            "inputs": sent,
            "fds_before": fds_before,
            "fds_after": server.fds(),
            "rss_kib_before": rss_before,
            "rss_kib_after": server.rss_kib(),
        },
    )
    assert settled, f"fds {fds_before} -> {server.fds()}: a socket leaked"


def test_every_byte_position_of_a_request(server: Server) -> None:
    """A valid request cut at every length: each prefix ends in a close, never a hang."""
    raw = (
        b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 11\r\n"
        b"Content-Type: text/plain\r\n\r\nhello world"
    )
    watches = []
    for end in range(len(raw)):
        sock = connect(server.port)
        sock.sendall(raw[:end])
        watches.append(Watch(sock, time.monotonic(), raw[:end]))
    watch_all(watches, CLOSE_BOUND + 3)
    problems = [(w.label, check(w)) for w in watches if check(w)]
    assert not problems, problems[:5]
    assert server.alive()


_ = HOST
