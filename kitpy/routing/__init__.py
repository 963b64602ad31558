"""kitpy.routing."""

from __future__ import annotations
