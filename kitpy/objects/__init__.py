"""kitpy.objects."""

from __future__ import annotations
