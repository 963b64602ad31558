"""Cluster nodes in one process for tests: real NATS, an in-memory placement.

:class:`Table` stands in for the ownership rows of PostgreSQL: the first node that
locates an object claims it (or ``Table.default`` owns everything). Each node is
:func:`kitpy.cluster.node.run_node` with its own NATS connection, so every event for
an object owned elsewhere really crosses NATS.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from kitpy.cluster.node import run_node
from kitpy.cluster.remote import RemoteObjects
from kitpy.cluster.transport import Transport
from kitpy.objects import DurableObject, ObjectId, ObjectSystem
from kitpy.storage import MemoryBackend, StorageBackend


@dataclass
class Local:
    epoch: int


@dataclass
class Remote:
    node: str
    inbox: str


class Table:
    """Who owns what: the first locate claims, unless ``default`` owns everything."""

    def __init__(self, default: str | None = None) -> None:
        self.owners: dict[tuple[str, str], str] = {}
        self.default = default
        self.locates = 0
        self.nodes: list[str] = []  # started, in order


class FakePlacement:
    """The placement seam of one node, on a shared :class:`Table`."""

    def __init__(self, table: Table, node: str) -> None:
        self.table = table
        self.node = node
        self.lost: list[Callable[[str, str], None]] = []
        self.dead: list[Callable[[str], None]] = []
        self.released: list[tuple[str, str]] = []

    async def locate(self, namespace: str, object_id: str) -> Local | Remote:
        self.table.locates += 1
        owner = self.table.owners.setdefault(
            (namespace, object_id), self.table.default or self.node
        )
        return Local(1) if owner == self.node else Remote(owner, f"inbox-of-{owner}")

    def release_local(self, namespace: str, object_id: str) -> None:
        self.released.append((namespace, object_id))

    def on_lost(self, callback: Callable[[str, str], None]) -> None:
        self.lost.append(callback)

    async def live_nodes(self) -> dict[str, str]:
        return {name: f"inbox-of-{name}" for name in self.table.nodes}

    def on_node_dead(self, callback: Callable[[str], None]) -> None:
        self.dead.append(callback)


@dataclass
class NodeParts:
    name: str
    system: ObjectSystem
    remote: RemoteObjects
    transport: Transport
    placement: FakePlacement


@asynccontextmanager
async def cluster(
    url: str,
    names: list[str],
    classes: Mapping[str, type[DurableObject]],
    *,
    table: Table | None = None,
    backends: Mapping[str, StorageBackend] | None = None,
    env: Any = None,
    **options: Any,
) -> AsyncIterator[tuple[Table, list[NodeParts]]]:
    """Nodes ``names`` on NATS at ``url``; ``backends`` by node (default: in memory).

    They stop in the order given (the first one first).
    """
    table = table or Table()
    nodes = []
    async with AsyncExitStack() as stack:
        for name in reversed(names):
            placement = FakePlacement(table, name)
            table.nodes.append(name)
            transport = Transport(url, "kitpy.test-" + "-".join(names), name)
            system = await stack.enter_async_context(
                run_node(
                    bindings=classes,
                    env=env,
                    backend=(backends or {}).get(name) or MemoryBackend(),
                    placement=placement,
                    transport=transport,
                    lease_ttl=1.0,
                    **{"idle_timeout": 30.0, **options},
                )
            )
            assert isinstance(system._router, RemoteObjects)
            nodes.insert(0, NodeParts(name, system, system._router, transport, placement))
        yield table, nodes


class FrontView:
    """The front node's object system as a test sees it: its events cross NATS to the
    owner; what a test inspects of the objects (live instances, armed alarms) is the
    owner's."""

    def __init__(self, front: ObjectSystem, owner: ObjectSystem) -> None:
        self._front = front
        self.owner = owner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._front, name)

    def live_instance(self, object_id: ObjectId) -> DurableObject | None:
        return self.owner.live_instance(object_id)

    def scheduled_alarm(self, object_id: ObjectId) -> float | None:
        return self.owner.scheduled_alarm(object_id)
