"""Durable objects across processes and machines, on PostgreSQL and NATS.

Imported only when a site configures ``[cluster]``: the one-process default never
loads this package, psycopg or nats-py.
"""

from __future__ import annotations

__all__ = ()
