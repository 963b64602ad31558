"""The default access log: every line reaches stderr, in order, one write per loop turn."""

from __future__ import annotations

import asyncio
import re

import anyio
import anyio.abc
import pytest

from kitpy.http import Request, Response
from kitpy.server.accesslog import BATCH_LINES, StderrLog, format_line
from kitpy.server.connection import handle_connection


class _Recorder:
    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        pass


def test_lines_logged_in_one_loop_turn_go_out_in_one_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorder = _Recorder()
    monkeypatch.setattr("sys.stderr", recorder)
    log = StderrLog()

    async def main() -> list[str]:
        log("one")
        log("two")
        held = list(recorder.writes)
        await asyncio.sleep(0)
        log("three")
        await asyncio.sleep(0)
        return held

    held = asyncio.run(main())
    assert held == []
    assert recorder.writes == ["one\ntwo\n", "three\n"]


def test_off_a_loop_each_line_is_written_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = _Recorder()
    monkeypatch.setattr("sys.stderr", recorder)
    log = StderrLog()
    log("alone")
    assert recorder.writes == ["alone\n"]


def test_a_full_batch_is_written_without_waiting_for_the_turn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorder = _Recorder()
    monkeypatch.setattr("sys.stderr", recorder)
    log = StderrLog()

    async def main() -> int:
        for n in range(BATCH_LINES):
            log(str(n))
        return len(recorder.writes)

    assert asyncio.run(main()) == 1
    assert recorder.writes[0].splitlines() == [str(n) for n in range(BATCH_LINES)]


def test_a_broken_stderr_does_not_break_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        def write(self, text: str) -> int:
            raise OSError("gone")

    monkeypatch.setattr("sys.stderr", Broken())
    StderrLog()("line")  # no exception


def test_records_are_formatted_as_format_line_makes_them_in_order_with_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorder = _Recorder()
    monkeypatch.setattr("sys.stderr", recorder)
    log = StderrLog()

    async def main() -> None:
        log("first")
        log.record("[::1]:5", "GET", '/a"b\x1b', "1.1", 200, 12, 0.00042, "abc")
        log.record("-", "POST", "/", "1.0", 500, 0, 1.5, None)
        log("last")
        await asyncio.sleep(0)

    asyncio.run(main())
    assert recorder.writes == [
        "\n".join(
            [
                "first",
                format_line(("::1", 5), "GET", '/a"b\x1b', "1.1", 200, 12, 0.00042, "abc"),
                format_line(None, "POST", "/", "1.0", 500, 0, 1.5),
                "last",
            ]
        )
        + "\n"
    ]
    assert (
        recorder.writes[0].splitlines()[1]
        == '[::1]:5 - "GET /a\\"b\\x1b HTTP/1.1" 200 12 0.4ms abc'
    )


class _OneRequest(anyio.abc.ByteStream):
    """A client that sends one request, then closes; what the server sends is kept."""

    def __init__(self, request: bytes) -> None:
        self.request: bytes | None = request
        self.sent = b""

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if self.request is None:
            raise anyio.EndOfStream
        request, self.request = self.request, None
        return request

    async def send(self, item: bytes) -> None:
        self.sent += item

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


def test_the_server_logs_through_stderr_log_records(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = _Recorder()
    monkeypatch.setattr("sys.stderr", recorder)
    log = StderrLog()

    async def app(request: Request) -> Response:
        return Response("hi")

    stream = _OneRequest(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")

    async def main() -> None:
        await handle_connection(app, stream, client=("10.0.0.7", 4000), access_log=log)  # type: ignore[arg-type]
        await asyncio.sleep(0)

    asyncio.run(main())
    request_id = re.search(rb"x-request-id: ([0-9a-f]{16})\r\n", stream.sent)
    assert request_id is not None, stream.sent
    (line,) = "".join(recorder.writes).splitlines()
    assert re.fullmatch(
        r'10\.0\.0\.7:4000 - "GET /x HTTP/1\.1" 200 2 [0-9]+\.[0-9]ms ' + request_id[1].decode(),
        line,
    ), line


@pytest.mark.parametrize(
    "seconds", [0.0, 0.00004, 0.00042, 0.00123, 0.0123, 0.0421, 0.0997, 0.1234, 1.5, 12.3456]
)
def test_durations_read_as_milliseconds_to_a_tenth(seconds: float) -> None:
    line = format_line(("127.0.0.1", 1), "GET", "/", "1.1", 200, 0, seconds)
    assert line.endswith(f" {seconds * 1000:.1f}ms")
