"""GET /ws/room : the broadcast room, a durable object whose 101 passes through here."""

from __future__ import annotations

from typing import Any

from kitpy import Response


async def get(event: Any) -> Response:
    rooms = event.platform.env.rooms
    room = rooms.get(rooms.id_from_name("bench"))
    response: Response = await room.fetch("/", event.request)
    return response
