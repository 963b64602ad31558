"""ChatRoom: one durable object per room, holding its members' WebSockets.

The wire protocol is the one of Cloudflare's workers-chat-demo, so its client works
unchanged. Every message is a JSON object:

client -> room
    ``{"name": str}`` first (at most 32 characters), then ``{"message": str}`` (at
    most 256 characters).

room -> client
    After the name: ``{"joined": other}`` for each member already present, the last
    100 messages oldest first, ``{"joined": name}`` (broadcast to all, the newcomer
    included) and ``{"ready": true}``. Then ``{"name", "message", "timestamp"}`` for
    every message, ``{"joined": ...}`` / ``{"quit": ...}`` as members come and go,
    and ``{"error": ...}`` when something is refused.

A socket without a name yet receives no broadcasts. Each socket's name and client
address are kept in its attachment (``serialize_attachment``), not in a dict of
our own, so ``state.get_websockets()`` is the one list of members.

Each event's handling runs under one lock, in arrival order. The input gate alone
does not give that: it opens while an event awaits another object (the rate
limiter), so without the lock a message could get its timestamp before an earlier
one is broadcast, or a newcomer could read the history just before a message it
then never receives.

History is stored under ISO-8601 UTC keys of the message timestamps (which sort in
time order), so ``storage.list(reverse=True, limit=100)`` is the latest 100.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime

import anyio

from kitpy import DurableObject, Response, WebSocketPair, text

MAX_NAME = 32
MAX_MESSAGE = 256
HISTORY = 100
#: The header the route sets to the client's address.
CLIENT_HEADER = "CF-Connecting-IP"

NAME_TOO_LONG = "Name too long."
MESSAGE_TOO_LONG = "Message too long."
RATE_LIMITED = "Your IP is being rate-limited, please try again later."

logger = logging.getLogger(__name__)


def _dumps(value):
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _history_key(timestamp_ms):
    moment = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{timestamp_ms % 1000:03d}Z"


def _as_text(value, default):
    if value is None:
        return default
    if isinstance(value, str):
        return value
    return _dumps(value)


class ChatRoom(DurableObject):
    def __init__(self, state, env):
        super().__init__(state, env)
        # Timestamps are strictly increasing, even when two messages arrive in the
        # same millisecond or the clock steps back; loaded from storage on first use
        # so that this holds across restarts too.
        self.last_timestamp = None
        self.lock = anyio.Lock()

    # -- HTTP: the upgrade ---------------------------------------------------------

    async def fetch(self, request):
        if request.url.path != "/websocket":
            return text("Not found", status=404)
        if request.headers.get("upgrade", "").lower() != "websocket":
            return text("expected websocket", status=400)
        client, server = WebSocketPair()
        self.state.accept_websocket(server)
        server.serialize_attachment(
            {"name": None, "address": request.headers.get(CLIENT_HEADER, "unknown")}
        )
        return Response(status=101, websocket=client)

    # -- WebSocket events ----------------------------------------------------------

    async def websocket_message(self, ws, message):
        async with self.lock:
            await self._receive(ws, message)

    async def websocket_close(self, ws, code, reason):
        async with self.lock:
            await self._leave(ws)

    async def websocket_error(self, ws, error):
        await super().websocket_error(ws, error)
        async with self.lock:
            await self._leave(ws)

    # -- the protocol ----------------------------------------------------------------

    async def _receive(self, ws, message):
        session = ws.deserialize_attachment() or {}
        if not await self._allowed(ws, session.get("address", "unknown")):
            return
        try:
            data = json.loads(message)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            await ws.send(_dumps({"error": "Expected a JSON object."}))
            return
        if session.get("name") is None:
            await self._join(ws, session, data)
        else:
            await self._post(ws, session["name"], data)

    async def _join(self, ws, session, data):
        name = _as_text(data.get("name"), "") or "anonymous"
        if len(name) > MAX_NAME:
            await ws.send(_dumps({"error": NAME_TOO_LONG}))
            await ws.close(1009, NAME_TOO_LONG)
            return
        for peer in self.state.get_websockets():
            other = _name_of(peer)
            if peer is not ws and other is not None:
                await ws.send(_dumps({"joined": other}))
        latest = await self.state.storage.list(reverse=True, limit=HISTORY)
        for record in reversed(list(latest.values())):
            await ws.send(_dumps(record))
        session["name"] = name
        ws.serialize_attachment(session)
        await self._broadcast({"joined": name})
        await ws.send(_dumps({"ready": True}))

    async def _post(self, ws, name, data):
        message = _as_text(data.get("message"), "")
        if len(message) > MAX_MESSAGE:
            await ws.send(_dumps({"error": MESSAGE_TOO_LONG}))
            return
        timestamp = await self._next_timestamp()
        record = {"name": name, "message": message, "timestamp": timestamp}
        # Store first: once anybody has seen a message, it is in the history.
        await self.state.storage.put(_history_key(timestamp), record)
        await self._broadcast(record)

    async def _leave(self, ws):
        session = ws.deserialize_attachment() or {}
        name = session.get("name")
        if name is None or session.get("quit"):
            return
        session["quit"] = True
        ws.serialize_attachment(session)
        await self._broadcast({"quit": name})

    async def _broadcast(self, value):
        message = _dumps(value)
        for peer in self.state.get_websockets():
            if _name_of(peer) is None:
                continue  # no broadcasts before a socket has a name
            try:
                await peer.send(message)
            except Exception:
                # A dead socket: it leaves get_websockets() and its close event
                # broadcasts the quit.
                continue

    async def _next_timestamp(self):
        if self.last_timestamp is None:
            latest = await self.state.storage.list(reverse=True, limit=1)
            records = list(latest.values())
            self.last_timestamp = records[0]["timestamp"] if records else 0
        timestamp = max(int(time.time() * 1000), self.last_timestamp + 1)
        self.last_timestamp = timestamp
        return timestamp

    async def _allowed(self, ws, address):
        """Ask this address's RateLimiter; tell the client when it says no."""
        limiter = self.env.limiters.get_by_name(address)
        try:
            verdict = await limiter.acquire()
        except Exception:
            logger.exception("the rate limiter failed; closing the socket")
            await ws.close(1011, "rate limiter unavailable")
            return False
        if not verdict["allowed"]:
            await ws.send(_dumps({"error": RATE_LIMITED}))
            return False
        return True


def _name_of(ws):
    session = ws.deserialize_attachment()
    if not session or session.get("quit"):
        return None
    return session.get("name")
