"""kitpy.server."""

from __future__ import annotations
