from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

MakeRoutes = Callable[[Iterable[str]], Path]

#: The route files of the table at the top of docs/routes.md.
DOCS_ROUTES = [
    "index.py",
    "about.py",
    "api/rooms/index.py",
    "api/rooms/[id]/[...rest].py",
    "blog/[[page]].py",
    "(admin)/users.py",
    "_helpers.py",
]


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
