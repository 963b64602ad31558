"""Fixtures: the example site on a real server (``python -m kitpy serve COPY --port 0``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kitpy_server import ChatServer, copy_site


@pytest.fixture
def chat_server(tmp_path: Path) -> Iterator[ChatServer]:
    """A server of its own for one test (for restarts)."""
    server = ChatServer(copy_site(tmp_path / "site"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatServer]:
    """One server for a whole module; tests use distinct rooms and client addresses."""
    server = ChatServer(copy_site(tmp_path_factory.mktemp("chat") / "site"))
    try:
        server.start()
        yield server
    finally:
        server.stop()
