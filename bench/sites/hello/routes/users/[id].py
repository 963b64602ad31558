"""GET /users/<id> : JSON from a route with a path parameter, returned as a dict."""

from __future__ import annotations

from typing import Any


async def get(event: Any) -> dict[str, Any]:
    user_id = event.params["id"]
    return {"body": {"id": user_id, "name": f"user {user_id}"}}
