"""kitpy.objects: durable objects -- stateful instances with storage and WebSockets.

The runtime creates one :class:`ObjectSystem` per site, enters ``system.run()``, and
puts ``system.namespace(name)`` for each binding in ``event.platform.env``. Users
subclass :class:`DurableObject` (re-exported as ``kitpy.DurableObject``).
"""

from __future__ import annotations

from kitpy.objects.base import DurableObject as DurableObject
from kitpy.objects.gate import ObjectResetError as ObjectResetError
from kitpy.objects.ids import ObjectId as ObjectId
from kitpy.objects.namespace import Namespace as Namespace
from kitpy.objects.namespace import Stub as Stub
from kitpy.objects.registry import ObjectSystem as ObjectSystem
from kitpy.objects.state import DurableObjectState as DurableObjectState

__all__ = (
    "DurableObject",
    "DurableObjectState",
    "Namespace",
    "ObjectId",
    "ObjectResetError",
    "ObjectSystem",
    "Stub",
)
