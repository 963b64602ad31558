"""Replay tests/corpus/: every input that once broke something (see its README.md).

Each input is replayed on the sans-IO protocol layer (with EOF after the bytes) and on a
real server (no EOF: the server must decide by itself, within ``within`` seconds when
the entry says so). An entry marked ``open`` is a known, still unfixed bug: its wire
replay is a strict expected failure, so the fix shows up as XPASS.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import module_server
from .helpers import Server, close_code_of, exchange, ws_handshake, ws_read_frames
from .sites import PING, WS, WS_CONFIG
from .test_protocol_fuzz import drive_http, drive_ws

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
INDEX: dict[str, dict[str, Any]] = json.loads((CORPUS / "index.json").read_text())


def _params(kind: str, wire: bool) -> list[Any]:
    params = []
    for name, meta in sorted(INDEX.items()):
        if not name.startswith(kind + "/"):
            continue
        marks = []
        if wire and "open" in meta:
            marks.append(pytest.mark.xfail(reason=f"open bug: {meta['open']}", strict=True))
        params.append(pytest.param(name, id=name, marks=marks))
    return params


def test_every_corpus_file_is_indexed() -> None:
    files = {p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*.bin")}
    assert files == set(INDEX), files ^ set(INDEX)
    for name, meta in INDEX.items():
        assert "broke" in meta and ("fixed" in meta or "open" in meta), name


@pytest.mark.parametrize("name", _params("http", wire=False))
def test_http_corpus_sans_io(name: str) -> None:
    events = drive_http([(CORPUS / name).read_bytes()])
    errors = [e for e in events if e[0] == "error"]
    assert errors and errors[0][1] in INDEX[name]["expect"], events
    assert not any(e[0] == "head" and e[2] == "/smuggled" for e in events), events


@pytest.mark.parametrize("name", _params("ws", wire=False))
def test_ws_corpus_sans_io(name: str) -> None:
    _, error, _ = drive_ws([(CORPUS / name).read_bytes()])
    expected = INDEX[name]["expect_close"]
    # Without a deadline the sans-IO layer may only see the problem at EOF: a frame
    # waiting for its payload ends as "no more data", which is not a wrong answer.
    assert error in (expected, None), error
    if "open" not in INDEX[name]:
        assert error == expected


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from module_server(tmp_path_factory, {**PING, **WS}, WS_CONFIG.format(extra=""))


@pytest.mark.parametrize("name", _params("http", wire=True))
def test_http_corpus_over_the_wire(server: Server, name: str) -> None:
    meta = INDEX[name]
    got = exchange(server.port, (CORPUS / name).read_bytes(), timeout=meta.get("within", 6.0))
    assert got.closed, f"still open after {got.elapsed:.1f}s"
    assert got.statuses and got.statuses[0] in meta["expect"], got.data[:300]
    assert len(got.statuses) == 1, got.statuses
    assert server.alive()


@pytest.mark.parametrize("name", _params("ws", wire=True))
def test_ws_corpus_over_the_wire(server: Server, name: str) -> None:
    meta = INDEX[name]
    sock, response, rest = ws_handshake(server.port, "/ws/echo")
    try:
        assert response.status == 101
        sock.sendall((CORPUS / name).read_bytes())
        frames, _ = ws_read_frames(sock, meta.get("within", 5.0), rest)
    finally:
        sock.close()
    assert close_code_of(frames) == meta["expect_close"], frames
    assert server.alive()
