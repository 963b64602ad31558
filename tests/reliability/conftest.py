"""Fixtures for the reliability suite (issue #7).

``running_site(files, config)`` writes a site under ``tmp_path``, starts ``python -m
kitpy serve SITE --host 127.0.0.1 --port 0`` and returns a :class:`Server` (``url, pid
= server`` unpacks); every server is stopped by its PID when the test ends.

Tests that need the real server are skipped, not failed, when ``kitpy serve`` is
missing (it was, while this suite was written in parallel with the server).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .helpers import Server, start_server, write_site

RunningSite = Callable[..., Server]
ServeDir = Callable[..., Server]
MakeSite = Callable[..., Path]

SOAK = os.environ.get("KITPY_SOAK") == "1"

# Hypothesis's pytest plugin imports libcst when it reports a failing example, and
# libcst's import raises a DeprecationWarning (mypy_extensions) which filterwarnings =
# error turns into a pytest INTERNALERROR that hides the example. Import it now, quietly.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import libcst.metadata  # noqa: F401
    except ImportError:  # pragma: no cover - libcst is optional
        pass


@pytest.fixture
def make_site(tmp_path: Path) -> MakeSite:
    counter = 0

    def make(files: dict[str, str], config: str = "", name: str | None = None) -> Path:
        nonlocal counter
        counter += 1
        return write_site(tmp_path / (name or f"site{counter}"), files, config)

    return make


@pytest.fixture
def serve_dir() -> Iterator[ServeDir]:
    """``serve_dir(site_path, **options)``: serve a folder already written."""
    servers: list[Server] = []

    def run(site: Path, **options: object) -> Server:
        server = start_server(site, **options)  # type: ignore[arg-type]
        servers.append(server)
        return server

    try:
        yield run
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def running_site(make_site: MakeSite, serve_dir: ServeDir) -> RunningSite:
    """``running_site(files, config, **options)``: write a site and serve it."""

    def run(files: dict[str, str], config: str = "", **options: object) -> Server:
        return serve_dir(make_site(files, config), **options)

    return run


def module_server(
    tmp_path_factory: pytest.TempPathFactory, files: dict[str, str], config: str
) -> Iterator[Server]:
    """Body of a module-scoped server fixture (hypothesis forbids function-scoped ones)."""
    site = write_site(tmp_path_factory.mktemp("site") / "site", files, config)
    server = start_server(site)
    try:
        yield server
    finally:
        server.stop()


# -- figures ---------------------------------------------------------------------------
#
# Tests call record_figure("name", value); the figures are printed at the end of the
# run (the numbers docs/reliability.md quotes) and written as JSON to the file named by
# KITPY_FIGURES, when set.

FIGURES: dict[str, object] = {}


def record_figure(name: str, value: object) -> None:
    FIGURES[name] = value


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section("kitpy reliability figures")
    for name, value in sorted(FIGURES.items()):
        terminalreporter.write_line(f"{name}: {value}")
    target = os.environ.get("KITPY_FIGURES")
    if target:
        import json

        Path(target).write_text(json.dumps(FIGURES, indent=2, sort_keys=True, default=str))
