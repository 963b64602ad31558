from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

MakeRoutes = Callable[[Iterable[str]], Path]


@pytest.fixture
def make_routes(tmp_path: Path) -> MakeRoutes:
    """Create empty route files (paths relative to routes/) and return routes/."""

    def make(files: Iterable[str]) -> Path:
        root = tmp_path / "routes"
        root.mkdir(exist_ok=True)
        for name in files:
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        return root

    return make
