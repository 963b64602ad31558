"""One broadcast room: every message goes to every member, the sender included."""

from __future__ import annotations

from typing import Any

from kitpy import DurableObject, Request, Response, WebSocket, WebSocketPair


class Room(DurableObject):  # type: ignore[misc]
    async def fetch(self, request: Request) -> Response:
        client, server = WebSocketPair()
        self.state.accept_websocket(server)
        return Response(status=101, websocket=client)

    async def websocket_message(self, ws: WebSocket, message: Any) -> None:
        for peer in self.state.get_websockets():
            await peer.send(message)
