"""WebSockets whose client is on one node and whose object is on another.

When an object on its owner answers a forwarded ``stub.fetch`` with a 101, the
client's TCP connection stays on the *front* node. Two in-memory pairs are bridged
over NATS:

- on the owner, the object keeps the server end of its own pair, so
  ``accept_websocket``, tags, attachments, auto-responses and the ``websocket_*``
  events work exactly as on one process; the client end of that pair is driven from
  the front node (:class:`OwnedSocket`);
- on the front node, a fresh pair: its client end goes to the server (in the 101),
  its server end is driven from the owner (:class:`FrontSocket`).

Messages and closes cross as records of SOCKETS frames. :class:`Outbox` coalesces
them: every record for one node issued in one turn of the event loop goes in one NATS
message, and consecutive sends of the same message to many sockets of one node (a
broadcast) become one record naming all of them. So a broadcast to sockets spread
over three nodes costs three NATS messages.

A message larger than ``PIECE`` bytes travels as PART records (4) followed by the
record of its kind holding the last piece, each in a frame of its own if need be, so
no NATS message exceeds the server's payload limit (1 MiB by default).

Record layout (big-endian): op (1 byte: 1 text, 2 binary, 3 close, 4 part, plus 0x80 when the
owner sends it to the front node), count of socket ids (u32), the ids (u64 each, the
owner numbers its sockets), data length (u32), data (a close's data is its code, u16,
then the reason in UTF-8).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import struct
from collections.abc import Callable, Iterator

from kitpy.cluster.transport import Frame, Kind, Transport, encode_frame
from kitpy.http.websocket import (
    MAX_BUFFERED_BYTES,
    WebSocket,
    WebSocketClosed,
    WebSocketDriver,
    WebSocketPair,
)

__all__ = ("FrontSocket", "OwnedSocket", "Outbox", "decode_records")

logger = logging.getLogger("kitpy.cluster")

TEXT, BINARY, CLOSE, PART = 1, 2, 3, 4
TO_FRONT = 0x80
_OP = struct.Struct("!BI")
_ID = struct.Struct("!Q")
_LEN = struct.Struct("!I")
_CODE = struct.Struct("!H")
#: Close code for sockets whose other node went away or handed over (RFC 6455 7.4.1).
SERVICE_RESTART = 1012
GOING_AWAY = 1001
#: Bytes of records per SOCKETS frame before another frame is started.
FRAME_BUDGET = 512 * 1024
#: Largest piece of one message in one record.
PIECE = 256 * 1024


class _Record:
    __slots__ = ("data", "ids", "op")

    def __init__(self, op: int, socket: int, data: bytes) -> None:
        self.op = op
        self.ids = [socket]
        self.data = data


class Outbox:
    """Records waiting for the end of this loop turn, per destination node."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self._pending: dict[str, list[_Record]] = {}
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.frames_sent = 0  # SOCKETS frames published (for tests and benchmarks)
        self._text: tuple[str, bytes] = ("", b"")  # the last text encoded

    def encode(self, text: str) -> bytes:
        """``text`` in UTF-8, encoded once for a broadcast of the same str to many."""
        last = self._text
        if last[0] is text:
            return last[1]
        data = text.encode()
        self._text = (text, data)
        return data

    def add(self, node: str, op: int, socket: int, data: bytes) -> None:
        records = self._pending.get(node)
        if records is None:
            records = self._pending[node] = []
        elif records:
            last = records[-1]
            if (
                last.op == op
                and (op & ~TO_FRONT) != CLOSE
                and (last.data is data or last.data == data)
            ):
                last.ids.append(socket)
                return
        records.append(_Record(op, socket, data))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, {}
        for node, records in pending.items():
            for body in _pack(records):
                self.frames_sent += 1
                task = asyncio.ensure_future(self._send(node, body))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _send(self, node: str, body: bytes) -> None:
        try:
            meta = {"f": self._transport.node}
            await self._transport.send(node, encode_frame(Kind.SOCKETS, 0, meta, body))
        except Exception as exc:
            logger.warning("could not send WebSocket frames to node %s: %s", node, exc)

    async def drain(self) -> None:
        """Send what is pending now and wait until it is handed to NATS."""
        if self._scheduled:
            self._flush()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _pack(records: list[_Record]) -> Iterator[bytes]:
    parts: list[bytes] = []
    size = 0
    for record in records:
        ids = b"".join(_ID.pack(i) for i in record.ids)
        piece = b"".join(
            (_OP.pack(record.op, len(record.ids)), ids, _LEN.pack(len(record.data)), record.data)
        )
        if parts and size + len(piece) > FRAME_BUDGET:
            yield b"".join(parts)
            parts, size = [], 0
        parts.append(piece)
        size += len(piece)
    if parts:
        yield b"".join(parts)


def decode_records(body: bytes) -> Iterator[tuple[int, list[int], bytes]]:
    """(op, socket ids, data) of each record; ValueError on a malformed body."""
    view = memoryview(body)
    at = 0
    while at < len(view):
        if at + _OP.size > len(view):
            raise ValueError("truncated record head")
        op, count = _OP.unpack_from(view, at)
        at += _OP.size
        if op & ~TO_FRONT not in (TEXT, BINARY, CLOSE, PART) or count == 0:
            raise ValueError(f"bad record (op {op}, {count} sockets)")
        end = at + count * _ID.size + _LEN.size
        if end > len(view):
            raise ValueError("truncated record")
        ids = [_ID.unpack_from(view, at + i * _ID.size)[0] for i in range(count)]
        (size,) = _LEN.unpack_from(view, end - _LEN.size)
        if end + size > len(view):
            raise ValueError("truncated record data")
        data = bytes(view[end : end + size])
        at = end + size
        if op & ~TO_FRONT == CLOSE and size < _CODE.size:
            raise ValueError("close record without a code")
        yield op, ids, data


def close_data(code: int, reason: str) -> bytes:
    return _CODE.pack(code) + reason.encode()[:123]


def parse_close(data: bytes) -> tuple[int, str]:
    (code,) = _CODE.unpack_from(data)
    return code, data[_CODE.size :].decode(errors="replace")


class _Bridge(WebSocketDriver):
    """One end of a bridged socket on this node, and the node across NATS (its driver)."""

    __slots__ = ("_forget", "_parts", "end", "finished", "node", "outbox", "socket")
    direction = 0  # TO_FRONT for the owner's half

    def __init__(
        self,
        end: WebSocket,
        node: str,
        socket: int,
        outbox: Outbox,
        forget: Callable[[_Bridge], None],
    ) -> None:
        self.end = end
        self.node = node
        self.socket = socket
        self.outbox = outbox
        self._forget = forget
        self.finished = False
        self._parts: list[bytes] | None = None  # pieces of a large message arriving

    def start(self) -> None:
        end = self.end
        end.attach(self)
        while not self.finished:  # what was queued before the bridge existed
            try:
                message = end.receive_nowait()
            except WebSocketClosed:
                break  # closed() above already sent the close
            if message is None:
                break
            self.take(end, message)

    # -- what the end tells its driver ------------------------------------------------

    def take(self, ws: WebSocket, message: str | bytes) -> bool:
        """A message for the other node: it goes in this turn's SOCKETS frame."""
        if isinstance(message, str):
            op, data = TEXT | self.direction, self.outbox.encode(message)
        else:
            op, data = BINARY | self.direction, message
        if len(data) > PIECE:
            view = memoryview(data)
            while len(view) > PIECE:
                self.outbox.add(self.node, PART | self.direction, self.socket, bytes(view[:PIECE]))
                view = view[PIECE:]
            data = bytes(view)
        self.outbox.add(self.node, op, self.socket, data)
        return True

    def closed(self, ws: WebSocket) -> None:
        """This side closed (or its peer did): tell the other node once."""
        if self.finished:
            return
        self.finished = True
        self._forget(self)
        if ws.close_code is not None:
            code, reason = ws.close_code, ws.close_reason
        else:
            try:
                ws.receive_nowait()
                code, reason = 1005, ""
            except WebSocketClosed as closed:
                code, reason = closed.code, closed.reason
        self.outbox.add(self.node, CLOSE | self.direction, self.socket, close_data(code, reason))

    # -- what the other node tells us -------------------------------------------------

    def deliver(self, op: int, data: bytes) -> None:
        """A record from the other node."""
        if self.finished:
            return
        op &= ~TO_FRONT
        if op == PART:
            if self._parts is None:
                self._parts = []
            self._parts.append(data)
            return
        if self._parts is not None and op != CLOSE:
            self._parts.append(data)
            data, self._parts = b"".join(self._parts), None
        if op == CLOSE:
            code, reason = parse_close(data)
            self.drop(code, reason)
            return
        message: str | bytes = data.decode(errors="replace") if op == TEXT else data
        try:
            self.end.send_nowait(message)
        except WebSocketClosed:
            pass

    def drop(self, code: int, reason: str) -> None:
        """Close this side without telling the other node (it closed or is gone)."""
        if self.finished:
            return
        self.finished = True
        self._forget(self)
        self.end.close_now(code, reason)

    def hand_over(self, code: int, reason: str) -> None:
        """Close both sides: the other node's socket gets ``code`` too."""
        if self.finished:
            return
        self.outbox.add(self.node, CLOSE | self.direction, self.socket, close_data(code, reason))
        self.drop(code, reason)


class OwnedSocket(_Bridge):
    """On the owner: the client end of the object's pair, driven by the front node."""

    __slots__ = ()
    direction = TO_FRONT


class FrontSocket(_Bridge):
    """On the front node: the server end of the pair whose client end the server holds."""

    __slots__ = ()

    @classmethod
    def open(
        cls, node: str, socket: int, outbox: Outbox, forget: Callable[[_Bridge], None]
    ) -> tuple[FrontSocket, WebSocket]:
        pair = WebSocketPair()
        pair.server.accept()
        return cls(pair.server, node, socket, outbox, forget), pair.client


class Sockets:
    """Every bridged socket of this node, both roles, keyed by (node, socket id).

    ``max_queue_bytes`` is the site's ``ws_max_queue_bytes``: on the owner it bounds
    both inboxes of an object's pair, as the server bounds a local socket's pair.
    """

    def __init__(self, outbox: Outbox, max_queue_bytes: int = MAX_BUFFERED_BYTES) -> None:
        self.outbox = outbox
        self.max_queue_bytes = max_queue_bytes
        self._owned: dict[tuple[str, int], _Bridge] = {}  # we own the object
        self._front: dict[tuple[str, int], _Bridge] = {}  # we hold the client
        # Socket ids start at random: a restarted node never reuses its last run's.
        self._next = secrets.randbits(40) << 16

    def own(self, end: WebSocket, front: str, protocol: str | None = None) -> int:
        """Bridge the client end of an object's pair to ``front``; its socket id.

        The pair gets what a local socket's pair gets from the server: the queue bound,
        and ``protocol``, the subprotocol of the 101 (the front node's handshake sends it
        as it is, or fails the socket).
        """
        end.bound_buffers(self.max_queue_bytes)
        end.protocol = protocol
        self._next += 1
        bridge = OwnedSocket(end, front, self._next, self.outbox, self._forget_owned)
        self._owned[(front, self._next)] = bridge
        bridge.start()
        return self._next

    def front(self, owner: str, socket: int) -> WebSocket:
        """The client end for the server, bridged to ``owner``'s socket ``socket``."""
        bridge, client = FrontSocket.open(owner, socket, self.outbox, self._forget_front)
        self._front[(owner, socket)] = bridge
        bridge.start()
        return client

    def refuse(self, owner: str, socket: int) -> None:
        """A 101 arrived for a call that was given up: close the object's end."""
        self.outbox.add(owner, CLOSE, socket, close_data(1011, "the caller went away"))

    def _forget_owned(self, bridge: _Bridge) -> None:
        self._owned.pop((bridge.node, bridge.socket), None)

    def _forget_front(self, bridge: _Bridge) -> None:
        self._front.pop((bridge.node, bridge.socket), None)

    def receive(self, sender: str, frame: Frame) -> None:
        """A SOCKETS frame from ``sender``; raises ValueError if it is malformed."""
        records = list(decode_records(frame.body))  # all or nothing
        for op, ids, data in records:
            table = self._front if op & TO_FRONT else self._owned
            for socket in ids:
                bridge = table.get((sender, socket))
                if bridge is not None:
                    bridge.deliver(op, data)

    def node_gone(self, node: str) -> None:
        """``node`` died or left: its sockets' other halves here are closed."""
        for key, bridge in list(self._front.items()):
            if key[0] == node:
                bridge.drop(SERVICE_RESTART, "the object's node went away")
        for key, bridge in list(self._owned.items()):
            if key[0] == node:
                bridge.drop(1006, "the client's node went away")

    def nodes(self) -> set[str]:
        """The nodes holding the other halves of our bridged sockets."""
        return {node for node, _ in self._owned} | {node for node, _ in self._front}

    def hand_over_all(self) -> None:
        """Shutting down: other nodes' sockets of our objects get 1012; the sockets of
        our clients (if the server has not closed them already) 1001, as on one process."""
        for bridge in list(self._owned.values()):
            bridge.hand_over(SERVICE_RESTART, "the object moves to another node")
        for bridge in list(self._front.values()):
            bridge.hand_over(GOING_AWAY, "")

    @property
    def count(self) -> tuple[int, int]:
        """(sockets of our objects held elsewhere, sockets held here of remote objects)."""
        return len(self._owned), len(self._front)
