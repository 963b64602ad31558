from kitpy import DurableObject, Response, WebSocketPair, json


class Counter(DurableObject):
    """Counts hits in storage; a WebSocket gets the count after each message."""

    async def fetch(self, request):
        if request.headers.get("upgrade", "").lower() == "websocket":
            client, server = WebSocketPair()
            self.state.accept_websocket(server)
            return Response(status=101, websocket=client)
        count = (await self.state.storage.get("count") or 0) + 1
        await self.state.storage.put("count", count)
        return json({"count": count, "greeting": self.env.GREETING})

    async def websocket_message(self, ws, message):
        count = (await self.state.storage.get("count") or 0) + 1
        await self.state.storage.put("count", count)
        await ws.send(f"{message}:{count}")
