"""``/api/room/<name>/<rest>``: hand the request to the room's durable object.

``<name>`` is either 64 hex digits (a private room made by ``POST /api/room``) or a
public room name of at most 32 characters. The object answers ``/websocket``.
"""

from __future__ import annotations

import re

from kitpy import text

#: A private room's name is its object id.
PRIVATE_ROOM = re.compile(r"[0-9a-f]{64}")
#: Longest public room name.
MAX_ROOM_NAME = 32
#: The header the room reads the client address from (as Cloudflare's edge sets it).
CLIENT_HEADER = "CF-Connecting-IP"


async def get(event):
    name = event.params["name"]
    rooms = event.platform.env.rooms
    # The name is checked before anything else, so a long name is a 404 even
    # without an Upgrade header.
    if PRIVATE_ROOM.fullmatch(name):
        try:
            room_id = rooms.id_from_string(name)
        except ValueError:
            return text("Invalid room id", status=404)
    elif len(name) <= MAX_ROOM_NAME:
        room_id = rooms.id_from_name(name)
    else:
        return text("Name too long", status=404)

    # The rate limiter is per client address. Set the header here, replacing any
    # value the client sent, so nobody can claim another address.
    client = event.client[0] if event.client else "unknown"
    event.request.headers[CLIENT_HEADER] = client
    room = rooms.get(room_id)
    return await room.fetch("/" + event.params["rest"], event.request)
