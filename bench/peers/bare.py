"""The ceiling: the four benchmark endpoints on anyio + h11 + wsproto, no framework.

``python bench/peers/bare.py --port 8000 [--host 127.0.0.1] [--uvloop]``

One task per connection reads with h11 and answers at once; ``/ws/echo`` and
``/ws/room`` switch the same connection to wsproto frames after a 101 sent with h11.
What kitpy does on top of this (routing files, events, hooks, objects) is the cost
the benchmark measures against it.
"""

from __future__ import annotations

import argparse
import email.utils
import json
import time

import anyio
import h11
from anyio.abc import SocketStream
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, TextMessage
from wsproto.utilities import generate_accept_token

STREAM_ERRORS = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError)
HELLO = b"Hello, world!"
REASONS = {200: b"OK", 404: b"Not Found"}
_date: list[object] = [0, b""]


def base_headers(content_type: bytes, length: int) -> list[tuple[bytes, bytes]]:
    now = int(time.time())
    if now != _date[0]:
        _date[0], _date[1] = now, email.utils.formatdate(now, usegmt=True).encode()
    return [
        (b"date", _date[1]),  # type: ignore[list-item]
        (b"server", b"bare"),
        (b"content-type", content_type),
        (b"content-length", str(length).encode()),
    ]


def respond(target: bytes) -> tuple[int, bytes, bytes]:
    if target == b"/":
        return 200, b"text/plain; charset=utf-8", HELLO
    if target.startswith(b"/users/") and target.count(b"/") == 2 and len(target) > 7:
        user_id = target[7:].decode()
        body = json.dumps({"id": user_id, "name": f"user {user_id}"}).encode()
        return 200, b"application/json", body
    return 404, b"text/plain; charset=utf-8", b"Not Found"


class Peer:
    """A WebSocket connection: its stream, its wsproto state, one sender at a time."""

    __slots__ = ("lock", "stream", "ws")

    def __init__(self, stream: SocketStream, ws: Connection) -> None:
        self.stream, self.ws, self.lock = stream, ws, anyio.Lock()

    async def send(self, event: Message[str] | Message[bytes] | CloseConnection) -> None:
        data = self.ws.send(event)
        async with self.lock:
            await self.stream.send(data)


ROOM: set[Peer] = set()


async def websocket(stream: SocketStream, trailing: bytes, in_room: bool) -> None:
    ws = Connection(ConnectionType.SERVER)
    ws.receive_data(trailing)
    peer = Peer(stream, ws)
    parts: list[str | bytes] = []
    if in_room:
        ROOM.add(peer)
    try:
        while True:
            for event in ws.events():
                if isinstance(event, TextMessage | BytesMessage):
                    parts.append(event.data)
                    if not event.message_finished:
                        continue
                    data = "".join(parts) if isinstance(event, TextMessage) else b"".join(parts)
                    parts.clear()
                    message = TextMessage(data) if isinstance(data, str) else BytesMessage(data)
                    for member in list(ROOM) if in_room else [peer]:
                        try:
                            await member.send(message)
                        except STREAM_ERRORS:
                            ROOM.discard(member)
                elif isinstance(event, CloseConnection):
                    await peer.send(event.response())
                    return
                elif isinstance(event, Ping):
                    async with peer.lock:
                        await stream.send(ws.send(event.response()))
            ws.receive_data(await stream.receive(65536))
    except STREAM_ERRORS:
        pass
    finally:
        ROOM.discard(peer)


async def handle(stream: SocketStream) -> None:
    conn = h11.Connection(h11.SERVER)
    upgrade: h11.Request | None = None
    async with stream:
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive(65536))
                elif isinstance(event, h11.Request):
                    headers = dict(event.headers)
                    if headers.get(b"upgrade", b"").lower() == b"websocket":
                        upgrade = event
                        continue
                    status, content_type, body = respond(event.target)
                    response = h11.Response(
                        status_code=status,
                        headers=base_headers(content_type, len(body)),
                        reason=REASONS[status],
                    )
                    await stream.send(conn.send(response) + conn.send(h11.Data(data=body)))
                elif isinstance(event, h11.EndOfMessage):
                    if upgrade is None:
                        await stream.send(conn.send(h11.EndOfMessage()))
                        if conn.our_state is not h11.DONE:
                            return
                        conn.start_next_cycle()
                elif isinstance(event, h11.Data):
                    continue  # request bodies are not used by these endpoints
                elif event is h11.PAUSED and upgrade is not None:
                    key = dict(upgrade.headers)[b"sec-websocket-key"]
                    accept = generate_accept_token(key)
                    switch = h11.InformationalResponse(
                        status_code=101,
                        headers=[
                            (b"upgrade", b"websocket"),
                            (b"connection", b"Upgrade"),
                            (b"sec-websocket-accept", accept),
                        ],
                    )
                    await stream.send(conn.send(switch))
                    await websocket(stream, conn.trailing_data[0], upgrade.target == b"/ws/room")
                    return
                else:  # ConnectionClosed, or a client that never finishes
                    return
        except (h11.RemoteProtocolError, *STREAM_ERRORS):
            return


async def main(host: str, port: int) -> None:
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    print(f"bare listening on http://{host}:{listener.extra(anyio.abc.SocketAttribute.local_port)}")
    await listener.serve(handle)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    anyio.run(main, args.host, args.port, backend_options={"use_uvloop": args.uvloop})
