"""GET /ws/echo : the endpoint upgrades by itself and echoes every message."""

from __future__ import annotations

from typing import Any

from kitpy import Response, WebSocket, WebSocketPair


async def echo(ws: WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


async def get(event: Any) -> Response:
    client, server = WebSocketPair()
    server.accept()
    event.platform.wait_until(echo(server))
    return Response(status=101, websocket=client)
