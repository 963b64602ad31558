"""The default access log: every line reaches stderr, in order, one write per loop turn."""

from __future__ import annotations

import asyncio

import pytest

from kitpy.server.accesslog import BATCH_LINES, StderrLog


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
