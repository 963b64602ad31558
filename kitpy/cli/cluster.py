"""Cluster plumbing of the CLI: the engines checked at start-up, the node's factory.

``kitpy serve`` with ``[cluster]`` (or ``KITPY_POSTGRES`` and ``KITPY_NATS``) first
reaches both engines, so a typo or a stopped server is one line naming the key
(``KITPY_NATS: cannot reach nats://127.0.0.1:4222: connection refused``) and exit
status 1, before any site code runs.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kitpy.errors import KitpyError, redact_url
from kitpy.runtime.app import ObjectsFactory
from kitpy.runtime.config import ClusterSettings

__all__ = ("EXTRA_HINT", "check_engines", "cluster_objects", "connect_postgres")

#: How long each engine may take to answer the start-up check.
CONNECT_TIMEOUT = 5.0
EXTRA_HINT = "a cluster needs psycopg and nats-py: pip install 'kitpy[cluster]'"


def check_engines(settings: ClusterSettings) -> None:
    """Reach PostgreSQL and NATS once each, or raise a one-line :class:`KitpyError`."""
    connect_postgres(settings).close()
    _check_nats(settings)


def connect_postgres(settings: ClusterSettings) -> Any:
    """A psycopg connection to the cluster's database (autocommit), or a one-line error."""
    try:
        import psycopg
    except ImportError:
        raise KitpyError(EXTRA_HINT) from None
    try:
        connection = psycopg.connect(
            settings.postgres, connect_timeout=int(CONNECT_TIMEOUT), autocommit=True
        )
        connection.execute("SELECT 1")
    except psycopg.Error as exc:
        raise _unreachable(settings, "postgres", settings.postgres, _pg_reason(exc)) from None
    return connection


def _check_nats(settings: ClusterSettings) -> None:
    try:
        import nats
    except ImportError:
        raise KitpyError(EXTRA_HINT) from None
    errors: list[BaseException] = []

    async def note(error: Exception) -> None:
        errors.append(error)

    async def connect() -> None:
        client = await nats.connect(
            settings.nats,
            connect_timeout=int(CONNECT_TIMEOUT),
            allow_reconnect=False,
            max_reconnect_attempts=1,
            reconnect_time_wait=0.1,
            error_cb=note,
        )
        await client.close()

    async def bounded() -> None:
        await asyncio.wait_for(connect(), CONNECT_TIMEOUT * 2)

    try:
        asyncio.run(bounded())
    except Exception as exc:
        reason = errors[0] if errors else exc
        raise _unreachable(settings, "nats", settings.nats, _os_reason(reason)) from None


def cluster_objects(settings: ClusterSettings) -> ObjectsFactory:
    """The cluster node's object-system factory (kitpy.cluster.node) for ``settings``."""
    try:
        from kitpy.cluster import node
    except ImportError as exc:
        if exc.name in ("psycopg", "nats"):
            raise KitpyError(EXTRA_HINT) from None
        raise
    return node.cluster_objects(settings)


def _unreachable(settings: ClusterSettings, key: str, url: str, reason: str) -> KitpyError:
    return KitpyError(f"{settings.source(key)}: cannot reach {redact_url(url)}: {reason}")


def _pg_reason(exc: BaseException) -> str:
    """The useful part of psycopg's message: 'Connection refused', 'FATAL: ...'."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    reason = first.rpartition("failed: ")[2] if "failed: " in first else first
    return " ".join(reason.split())


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return f"no answer within {CONNECT_TIMEOUT:g} s"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


# -- kitpy cluster status --------------------------------------------------------------

_NODES = """
SELECT n.name, n.started_at, n.heartbeat_at,
       extract(epoch FROM now() - n.heartbeat_at)::float8 AS age,
       n.expires_at > now() AS live,
       (SELECT count(*) FROM kitpy_objects o WHERE o.owner = n.name) AS objects
FROM kitpy_nodes n
ORDER BY n.name
"""
_UNOWNED = """
SELECT count(*) FROM kitpy_objects o
WHERE o.owner IS NULL
   OR NOT EXISTS (SELECT 1 FROM kitpy_nodes n WHERE n.name = o.owner AND n.expires_at > now())
"""


def cluster_status(settings: ClusterSettings) -> dict[str, Any]:
    """Nodes (live or dead, last heartbeat by the database clock, objects held) and
    the objects no live node holds."""
    with connect_postgres(settings) as conn:
        known = conn.execute("SELECT to_regclass('kitpy_nodes') IS NOT NULL").fetchone()
        if not (known and known[0]):
            return {"nodes": [], "unowned": 0}
        nodes = [
            {
                "name": name,
                "live": bool(live),
                "started_at": started.isoformat(),
                "heartbeat_at": beat.isoformat(),
                "heartbeat_age": round(float(age), 3),
                "objects": int(objects),
            }
            for name, started, beat, age, live, objects in conn.execute(_NODES).fetchall()
        ]
        row = conn.execute(_UNOWNED).fetchone()
    return {"nodes": nodes, "unowned": int(row[0]) if row else 0}


def render_status(status: dict[str, Any]) -> str:
    """``kitpy cluster status`` as a table."""
    if not status["nodes"]:
        return "no node has started on this database yet"
    rows = [("NODE", "STATE", "LAST HEARTBEAT", "OBJECTS")]
    rows += [
        (
            node["name"],
            "live" if node["live"] else "dead",
            f"{node['heartbeat_age']:.1f} s ago ({node['heartbeat_at']})",
            str(node["objects"]),
        )
        for node in status["nodes"]
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True))
        + "  "
        + row[3]
        for row in rows
    ]
    lines.append(f"objects held by no live node: {status['unowned']}")
    return "\n".join(lines)
