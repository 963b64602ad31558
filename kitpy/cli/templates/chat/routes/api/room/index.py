"""``POST /api/room``: create a private room.

Nothing is stored: a room exists once somebody connects to it. The answer is the
64-hex id of a fresh object in the ``rooms`` namespace, unguessable, so "anyone with
the link can join" is the whole access control of a private room.
"""

from __future__ import annotations

from kitpy import Response


async def post(event):
    rooms = event.platform.env.rooms
    room_id = rooms.new_unique_id()
    return Response(str(room_id), headers={"access-control-allow-origin": "*"})
