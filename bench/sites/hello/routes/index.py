"""GET / : the plain-text hello."""

from __future__ import annotations

from typing import Any


async def get(event: Any) -> dict[str, Any]:
    return {"body": "Hello, world!"}
