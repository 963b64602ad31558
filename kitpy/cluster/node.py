"""A cluster node: placement + NATS transport + the object system, composed.

:func:`run_node` is the composition, given its parts (tests give it a fake placement
and an in-memory store); :func:`cluster_objects` builds the parts from
:class:`~kitpy.runtime.config.ClusterSettings` and is the objects factory the CLI
hands to the runtime when kitpy.toml has ``[cluster]``.

Shutdown order (SIGTERM): the server has closed its own clients (1001) and finished
its requests; then the other nodes' sockets of our objects are closed with 1012 and
those frames flushed; then the object system stops (its last writes committed); then
NATS is closed, and last the placement gives every lease up, so other nodes take the
objects over at their next event, with no wait.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

import anyio

from kitpy.cluster.remote import Placement, RemoteObjects
from kitpy.cluster.transport import Transport, site_prefix
from kitpy.http.websocket import MAX_BUFFERED_BYTES
from kitpy.objects.base import DurableObject
from kitpy.objects.registry import ObjectSystem
from kitpy.storage.base import StorageBackend

__all__ = ("ClusterConfig", "cluster_objects", "run_node")

logger = logging.getLogger("kitpy.cluster")

#: Seconds past the lease time a call keeps retrying while its object changes owner.
RETRY_MARGIN = 1.5


@asynccontextmanager
async def run_node(
    *,
    bindings: Mapping[str, type[DurableObject]],
    env: Any,
    backend: StorageBackend,
    placement: Placement,
    transport: Transport,
    lease_ttl: float,
    idle_timeout: float,
    ws_max_queue_bytes: int = MAX_BUFFERED_BYTES,
    **options: Any,
) -> AsyncIterator[ObjectSystem]:
    """Run one node's object system, routed by ``placement`` over ``transport``.

    ``placement`` is running already (heartbeats); the caller stops it after this
    exits. ``transport`` is connected here and closed on exit. ``ws_max_queue_bytes``
    is the site's ``[server]`` setting, for the sockets bridged to other nodes.
    ``options`` go to the :class:`~kitpy.objects.registry.ObjectSystem` (alarm
    retries...).
    """
    remote = RemoteObjects(
        transport,
        placement,
        retry_for=lease_ttl + RETRY_MARGIN,
        ws_max_queue_bytes=ws_max_queue_bytes,
    )
    system = ObjectSystem(
        backend, bindings, env, idle_timeout=idle_timeout, router=remote, **options
    )
    remote.attach(system)
    await transport.connect(remote.on_frame, remote.disconnected)  # TransportError
    try:
        await remote.greet()  # before serving: no call to this run can be mistaken
        async with system.run(), remote:
            yield system
    finally:
        await transport.close()


class ClusterConfig(Protocol):
    """What a node needs to know (``kitpy.runtime.config.ClusterSettings`` has it)."""

    @property
    def postgres(self) -> str: ...
    @property
    def nats(self) -> str: ...
    @property
    def node(self) -> str: ...
    @property
    def lease_ttl(self) -> float: ...


ObjectsFactory = Callable[[Any, Any, Path], AbstractAsyncContextManager[ObjectSystem]]


def cluster_objects(settings: ClusterConfig) -> ObjectsFactory:
    """The objects factory of a cluster node: ``factory(site, env, state_dir)``.

    Its context runs the node: the placement (PostgreSQL leases, registered with this
    node's NATS inbox), PostgreSQL storage fenced by it, the NATS transport and the
    object system routed through them, and the sweep that picks up alarms of objects
    no live node holds. ``state_dir`` is not used: everything lives in PostgreSQL.
    """

    @asynccontextmanager
    async def factory(site: Any, env: Any, state_dir: Path) -> AsyncIterator[ObjectSystem]:
        from kitpy.cluster.placement import PostgresPlacement, sweep_alarms
        from kitpy.storage.postgres import PostgresBackend

        transport = Transport(settings.nats, site_prefix(settings.postgres), settings.node)
        backends: list[PostgresBackend] = []

        async def flush() -> None:
            for backend in backends:
                await backend.sync()

        placement = PostgresPlacement(
            settings.postgres,
            settings.node,
            transport.inbox,
            lease_ttl=settings.lease_ttl,
            flush=flush,
        )
        async with placement:
            backend = PostgresBackend(settings.postgres, fencing=placement)
            backends.append(backend)
            async with (
                run_node(
                    bindings=site.bindings,
                    env=env,
                    backend=backend,
                    placement=placement,
                    transport=transport,
                    lease_ttl=settings.lease_ttl,
                    idle_timeout=site.config.server.object_idle_timeout,
                    ws_max_queue_bytes=int(
                        site.config.server.limits.get("ws_max_queue_bytes", MAX_BUFFERED_BYTES)
                    ),
                ) as system,
                anyio.create_task_group() as tg,
            ):
                tg.start_soon(sweep_alarms, placement, system.ensure_alarm)
                try:
                    yield system
                finally:
                    tg.cancel_scope.cancel()

    return factory
