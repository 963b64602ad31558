"""Fixtures of the cluster tests: real PostgreSQL and NATS, a fresh database per test.

``postgres_server`` and ``nats_server`` start once per test session (see engines.py
for ``KITPY_TEST_POSTGRES`` / ``KITPY_TEST_NATS``); ``cluster_db`` is the URL of a new
empty database, dropped after the test; ``cluster_nodes`` starts ``kitpy serve`` nodes
on that database and NATS and stops them all after the test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from engines import NatsEngine, Nodes, PostgresEngine


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresEngine]:
    engine = PostgresEngine.start()
    yield engine
    engine.stop()


@pytest.fixture(scope="session")
def nats_server() -> Iterator[NatsEngine]:
    engine = NatsEngine.start()
    yield engine
    engine.stop()


@pytest.fixture
def cluster_db(postgres_server: PostgresEngine) -> Iterator[str]:
    """The URL of a new, empty database of its own."""
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url)


@pytest.fixture
def cluster_nodes(cluster_db: str, nats_server: NatsEngine) -> Iterator[Nodes]:
    """``cluster_nodes.start(site, "n1")``: a ``kitpy serve`` node, stopped after the test."""
    nodes = Nodes(cluster_db, nats_server.url)
    yield nodes
    nodes.stop_all()
