"""Fixtures of the cluster tests: ``postgres_server``, ``nats_server`` and ``cluster_db``
come from tests/conftest.py (one server each per test session, see engines.py for
``KITPY_TEST_POSTGRES`` / ``KITPY_TEST_NATS``); ``cluster_nodes`` starts
``kitpy serve`` nodes on the test's database and NATS and stops them all after it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from engines import NatsEngine, Nodes


@pytest.fixture
def cluster_nodes(cluster_db: str, nats_server: NatsEngine) -> Iterator[Nodes]:
    """``cluster_nodes.start(site, "n1")``: a ``kitpy serve`` node, stopped after the test."""
    nodes = Nodes(cluster_db, nats_server.url)
    yield nodes
    nodes.stop_all()
