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
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from kitpy.cluster.remote import Placement, RemoteObjects
from kitpy.cluster.transport import Transport
from kitpy.objects.base import DurableObject
from kitpy.objects.registry import ObjectSystem
from kitpy.storage.base import StorageBackend

__all__ = ("run_node",)

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
) -> AsyncIterator[ObjectSystem]:
    """Run one node's object system, routed by ``placement`` over ``transport``.

    ``placement`` is running already (heartbeats); the caller stops it after this
    exits. ``transport`` is connected here and closed on exit.
    """
    remote = RemoteObjects(transport, placement, retry_for=lease_ttl + RETRY_MARGIN)
    system = ObjectSystem(backend, bindings, env, idle_timeout=idle_timeout, router=remote)
    remote.attach(system)
    await transport.connect(remote.on_frame)  # TransportError: NATS unreachable
    try:
        async with system.run(), remote:
            yield system
    finally:
        await transport.close()
