"""GET /sync : the plain-text hello from a plain ``def`` (it runs in a worker thread)."""

from __future__ import annotations

from typing import Any


def get(event: Any) -> dict[str, Any]:
    return {"body": "Hello, world!"}
