from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kitpy.testing import TestClient

MakeSite = Callable[[dict[str, str]], Path]


@pytest.fixture
def make_site(tmp_path: Path) -> MakeSite:
    """Write ``{relative path: source}`` under a fresh site folder and return it."""
    counter = 0

    def make(files: dict[str, str]) -> Path:
        nonlocal counter
        counter += 1
        root = tmp_path / f"site{counter}"
        root.mkdir()
        for name, source in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(source).lstrip("\n"))
        return root

    return make


ClientFactory = Callable[..., TestClient]


@pytest.fixture
def client_for(make_site: MakeSite) -> Iterator[ClientFactory]:
    """``client_for(files, **options)``: a TestClient on a new site, closed after the test."""
    clients: list[TestClient] = []

    def factory(files: dict[str, str], **options: object) -> TestClient:
        client = TestClient(make_site(files), **options)  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()
