"""Calls to objects owned by another node: stub.fetch, RPC and alarms over NATS.

:class:`RemoteObjects` is the router an :class:`~kitpy.objects.registry.ObjectSystem`
consults when it has no live instance of an object. It asks the placement who owns
the object (remembering remote owners, so the hot path makes no database query),
runs the event here when this node owns it, and otherwise sends it to the owner:

- **RPC**: one CALL frame with the call's bytes, one RESULT frame with the outcome's
  bytes (:mod:`kitpy.objects.rpc`): one NATS round trip.
- **fetch**: a FETCH frame with the request head and the body's first chunk; a body
  larger than one chunk streams after the owner's first CREDIT, and a response body
  larger than one chunk streams behind RESPONSE the same way
  (:mod:`kitpy.cluster.streams`: at most ``WINDOW`` chunks in flight; a sender
  kept waiting for credit probes with an empty CHUNK, and a CHUNK for a call the
  receiver is done with is answered with CANCEL).
  A 101 bridges the socket (:mod:`kitpy.cluster.sockets`).
- **alarm**: an ALARM frame: "this object's alarm is due; you own it, make sure it is
  armed". The owner's scheduler fires it, so it fires once.

The owner checks that it still owns the object before it runs anything; if not it
answers FAILED ``not_owner``, and the caller asks the placement again and retries, as
it does when NATS reports nobody listening on the owner's inbox, until ``retry_for``
seconds have passed. A call whose owner dies after it was delivered fails with
:class:`OwnerGone` (it may or may not have run). Exceptions an object raises reach
the caller as the same type and message, as on one process.

Frame meta keys: ``f`` sender node; ``r`` set on frames of the serving side; ``ns``
and ``id`` the object; ``m``, ``u``, ``h``, ``c`` the request's method, URL, headers
and client; ``s``, ``h`` a response's status and headers; ``more`` a body follows in
CHUNKs; ``ws`` the owner's socket id of a 101; ``end`` the last chunk; ``n`` credit.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import weakref
from collections import deque
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
)
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

import anyio
import anyio.abc

from kitpy.cluster.sockets import Outbox, Sockets
from kitpy.cluster.streams import WINDOW, Inbound, Outbound, StreamBroken, peek, rechunk
from kitpy.cluster.transport import CHUNK_SIZE, Frame, Kind, Transport, encode_frame
from kitpy.errors import HTTPError, KitpyError
from kitpy.http.request import Request
from kitpy.http.response import Response
from kitpy.http.websocket import MAX_BUFFERED_BYTES, WebSocket
from kitpy.objects import rpc
from kitpy.objects.ids import ObjectId

if TYPE_CHECKING:
    from kitpy.objects.registry import ObjectSystem

__all__ = ("OwnerGone", "Placement", "RemoteObjects")

logger = logging.getLogger("kitpy.cluster")

_Key = tuple[str, str]
#: Remote owners remembered at most (the oldest is forgotten first).
MAX_REMEMBERED = 100_000


class Placement(Protocol):
    """Who owns which object (kitpy.cluster.placement implements it on PostgreSQL).

    ``locate`` answers an owner: one with an ``inbox`` attribute is another node
    (``node``, ``inbox``), any other (``epoch``) is this node.
    """

    node: str

    async def locate(self, namespace: str, object_id: str) -> Any: ...
    def release_local(self, namespace: str, object_id: str) -> None: ...
    def on_lost(self, callback: Callable[[str, str], None]) -> None: ...
    async def live_nodes(self) -> dict[str, str]: ...
    def on_node_dead(self, callback: Callable[[str], None]) -> None: ...


class OwnerGone(RuntimeError):
    """The owner of an object could not be reached, or died during the call."""


class _Retry(Exception):
    """The node asked is not (or no longer) the owner: locate again."""


class _Call:
    """A call this node sent, waiting for the owner's frames."""

    __slots__ = ("frames", "inbound", "node", "out", "waiter", "websocket")

    def __init__(self, node: str) -> None:
        self.node = node
        self.frames: deque[Frame] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.out: Outbound | None = None  # credit for the request body, once streaming
        self.inbound: Inbound | None = None  # the response body, once streaming
        self.websocket: WebSocket | None = None  # the client end of a bridged 101

    def push(self, frame: Frame) -> None:
        self.frames.append(frame)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next(self) -> Frame:
        while not self.frames:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        return self.frames.popleft()


class _Served:
    """A call another node sent us, while its bodies stream."""

    __slots__ = ("inbound", "out")

    def __init__(self) -> None:
        self.inbound: Inbound | None = None
        self.out: Outbound | None = None


class RemoteObjects:
    """Routes events of objects to their owners and serves the events sent to us.

    Args:
        transport: this node's NATS connection (``connect(self.on_frame)`` starts it).
        placement: who owns what.
        retry_for: seconds a call keeps locating and retrying while the owner changes
            (the lease time plus a margin: a dead owner's objects move within it).
        ws_max_queue_bytes: the site's bound on a WebSocket's backlog, applied to the
            sockets of our objects whose clients are on other nodes.
    """

    def __init__(
        self,
        transport: Transport,
        placement: Placement,
        *,
        retry_for: float,
        ws_max_queue_bytes: int = MAX_BUFFERED_BYTES,
    ) -> None:
        self.transport = transport
        self.placement = placement
        self.node = transport.node
        self.retry_for = retry_for
        self.outbox = Outbox(transport)
        self.sockets = Sockets(self.outbox, ws_max_queue_bytes)
        self._system: ObjectSystem | None = None
        self._owners: dict[_Key, str] = {}  # remote owners we learned
        self._calls: dict[int, _Call] = {}
        self._served: dict[tuple[str, int], _Served] = {}
        self._next_call = 0
        self._tg: anyio.abc.TaskGroup | None = None
        self._sends: set[asyncio.Task[None]] = set()
        placement.on_lost(self._lost)
        placement.on_node_dead(self._node_dead)

    # -- lifecycle ------------------------------------------------------------------------

    def attach(self, system: ObjectSystem) -> None:
        self._system = system

    async def __aenter__(self) -> RemoteObjects:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        """Shutting down: other nodes' sockets of our objects get 1012, frames flush."""
        self.sockets.hand_over_all()
        await self.outbox.drain()
        tg, self._tg = self._tg, None
        assert tg is not None
        tg.cancel_scope.cancel()
        await tg.__aexit__(None, None, None)
        if self._sends:
            await asyncio.gather(*self._sends, return_exceptions=True)

    @property
    def system(self) -> ObjectSystem:
        if self._system is None:
            raise RuntimeError("RemoteObjects.attach(system) was not called")
        return self._system

    def _spawn(self, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        if self._tg is None:
            raise RuntimeError("the cluster node is not running")
        self._tg.start_soon(work)

    def _send_soon(self, node: str, frame: bytes) -> None:
        task = asyncio.ensure_future(self._send_quietly(node, frame))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _send_quietly(self, node: str, frame: bytes) -> None:
        try:
            await self.transport.send(node, frame)
        except Exception as exc:
            logger.warning("could not send to node %s: %s", node, exc)

    # -- placement events -----------------------------------------------------------------

    def _lost(self, namespace: str, object_id: str) -> None:
        self._owners.pop((namespace, object_id), None)
        if self._system is not None:
            self._system.evict(namespace, object_id, 1012, "the object moved to another node")

    def disconnected(self) -> None:
        """NATS dropped us: what was in flight may be lost, so every call and bridged
        socket in progress ends (calls fail, sockets get 1012 and reconnect)."""
        for node in {call.node for call in self._calls.values()} | self.sockets.nodes():
            self._node_dead(node)

    def _node_dead(self, node: str) -> None:
        for key in [k for k, owner in self._owners.items() if owner == node]:
            del self._owners[key]
        self.sockets.node_gone(node)
        gone = Frame(Kind.FAILED, 0, {"error": "gone"}, b"")
        for call in list(self._calls.values()):
            if call.node == node:
                call.push(gone)
                if call.out is not None:
                    call.out.break_(f"node {node} went away")
                if call.inbound is not None:
                    call.inbound.break_(f"node {node} went away")
        for (sender, _), served in list(self._served.items()):
            if sender == node:
                if served.inbound is not None:
                    served.inbound.break_(f"node {node} went away")
                if served.out is not None:
                    served.out.break_(f"node {node} went away")

    async def greet(self) -> None:
        """Tell every live node that this one (re)started (see Kind.HELLO)."""
        try:
            nodes = await self.placement.live_nodes()
        except Exception as exc:
            logger.warning("could not list the live nodes to greet them: %s", exc)
            return
        hello = encode_frame(Kind.HELLO, 0, {"f": self.node})
        for node in nodes:
            if node != self.node:
                await self._send_quietly(node, hello)

    def released(self, namespace: str, object_id: str) -> None:
        """The object system evicted an idle instance: its lease may go."""
        self.placement.release_local(namespace, object_id)

    def serving(self) -> bool:
        """False past the placement's local lease deadline: live instances here are stale."""
        return bool(getattr(self.placement, "valid", True))

    # -- the router (ObjectSystem calls these when no instance is live here) --------------

    async def _owner(self, key: _Key) -> str | None:
        """The owner's node name, or None when this node owns the object."""
        node = self._owners.get(key)
        if node is not None:
            return node
        owner = await self.placement.locate(*key)
        inbox = getattr(owner, "inbox", None)
        if inbox is None:
            return None
        node = str(owner.node)
        if node == self.node:
            return None
        if len(self._owners) >= MAX_REMEMBERED:
            del self._owners[next(iter(self._owners))]  # forget the oldest
        self._owners[key] = node
        return node

    async def _retrying(self, key: _Key, attempt: Callable[[str | None], Awaitable[Any]]) -> Any:
        deadline = anyio.current_time() + self.retry_for
        delay = 0.01
        while True:
            node = await self._owner(key)
            try:
                return await attempt(node)
            except _Retry as retry:
                self._owners.pop(key, None)
                if anyio.current_time() + delay > deadline:
                    raise OwnerGone(
                        f"durable object {key[0]}/{key[1]}: no node answered as its owner "
                        f"within {self.retry_for:g} s (last: {retry})"
                    ) from None
                await anyio.sleep(delay)
                delay = min(delay * 2, 0.25)

    def _open(self, node: str) -> tuple[int, _Call]:
        self._next_call += 1
        call = self._calls[self._next_call] = _Call(node)
        return self._next_call, call

    async def _send_call(
        self,
        kind: Kind,
        node: str,
        number: int,
        call: _Call,
        object_id: ObjectId,
        meta: dict[str, Any],
        first: bytes,
        rest: AsyncIterator[bytes] | None,
    ) -> Frame:
        """Send a CALL or FETCH with its first chunk; stream the rest once the owner takes it.

        Returns the owner's first answer after the whole body left (its RESULT or
        RESPONSE); raises what a FAILED answer carries, and ``_Retry`` while the call
        may still go elsewhere.
        """
        if object_id.name is not None:
            meta["nm"] = object_id.name
        if rest is not None:
            meta["more"] = 1
        frame = encode_frame(kind, number, meta, first)
        await self.transport.send(node, frame, reply=self.transport.reply_subject(number))
        key = (object_id.namespace, str(object_id))
        answer = await self._first_answer(number, call, key)
        if answer.kind is Kind.CREDIT and rest is not None:
            # The owner took the call: from here on it cannot be retried.
            call.out = Outbound(
                int(answer.meta.get("n", WINDOW)), self._prober(node, number, False)
            )
            self._spawn(lambda: self._pump(node, number, call.out, rest, reply=False))
            answer = await call.next()
            if answer.kind is Kind.FAILED:
                if answer.meta.get("error") == "gone":
                    raise OwnerGone(f"node {node} went away during the call")
                _raise_failure(answer)
        return answer

    async def _first_answer(self, number: int, call: _Call, key: _Key) -> Frame:
        frame = await call.next()
        if frame.kind is Kind.NO_RESPONDERS:
            raise _Retry(f"nobody listens on node {call.node}")
        if frame.kind is Kind.FAILED:
            error = frame.meta.get("error")
            if error == "not_owner":
                raise _Retry(f"node {call.node} is not the owner")
            if error == "gone":
                raise OwnerGone(
                    f"durable object {key[0]}/{key[1]}: its node {call.node} went away "
                    "during the call"
                )
            _raise_failure(frame)
        return frame

    async def call(self, object_id: ObjectId, payload: bytes) -> bytes:
        key = (object_id.namespace, str(object_id))

        async def attempt(node: str | None) -> bytes:
            if node is None:
                return await self.system.call(object_id, payload, routed=False)
            number, call = self._open(node)
            inbound = call.inbound = Inbound(lambda n: self._grant(node, number, n, False))
            try:
                meta: dict[str, Any] = {"f": self.node, "ns": key[0], "id": key[1]}
                first, rest = await peek(rechunk((payload,)))
                answer = await self._send_call(
                    Kind.CALL, node, number, call, object_id, meta, first, rest
                )
                if not answer.meta.get("more"):
                    return answer.body
                return b"".join([answer.body, *[chunk async for chunk in inbound.chunks()]])
            finally:
                self._calls.pop(number, None)

        result: bytes = await self._retrying(key, attempt)
        return result

    async def alarm(self, namespace: str, object_id: str) -> None:
        key = (namespace, object_id)

        async def attempt(node: str | None) -> None:
            if node is None:
                await self.system.run_alarm(namespace, object_id, routed=False)
                return
            number, call = self._open(node)
            try:
                meta = {"f": self.node, "ns": namespace, "id": object_id}
                frame = encode_frame(Kind.ALARM, number, meta)
                await self.transport.send(node, frame, reply=self.transport.reply_subject(number))
                await self._first_answer(number, call, key)
            finally:
                self._calls.pop(number, None)

        await self._retrying(key, attempt)

    async def fetch(self, object_id: ObjectId, request: Request) -> Response:
        key = (object_id.namespace, str(object_id))
        body: tuple[bytes, AsyncIterator[bytes] | None] | None = None

        async def attempt(node: str | None) -> Response:
            nonlocal body, request
            if node is None:
                if body is not None:  # we read its start while it was remote
                    request = _replayed(request, *body)
                return await self.system.fetch(object_id, request, routed=False)
            if body is None:
                body = await peek(rechunk(request.stream()))
            first, rest = body
            return await self._fetch_remote(node, object_id, request, first, rest)

        response: Response = await self._retrying(key, attempt)
        return response

    async def _fetch_remote(
        self,
        node: str,
        object_id: ObjectId,
        request: Request,
        first: bytes,
        rest: AsyncIterator[bytes] | None,
    ) -> Response:
        key = (object_id.namespace, str(object_id))
        number, call = self._open(node)
        # Ready before the call leaves: response chunks may follow RESPONSE at once.
        inbound = call.inbound = Inbound(lambda n: self._grant(node, number, n, False))
        done = False
        try:
            meta: dict[str, Any] = {
                "f": self.node,
                "ns": key[0],
                "id": key[1],
                "m": request.method,
                "u": str(request.url),
                "h": request.headers.items(),
            }
            if request.client is not None:
                meta["c"] = list(request.client)
            answer = await self._send_call(
                Kind.FETCH, node, number, call, object_id, meta, first, rest
            )
            if answer.kind is not Kind.RESPONSE:
                raise OwnerGone(f"node {node} answered {answer.kind.name} to a fetch")
            response = Response(None, int(answer.meta["s"]), answer.meta.get("h"))
            response.websocket = call.websocket
            if answer.meta.get("more"):
                response.body = None
                stream = self._response_body(number, node, answer.body, inbound)
                # The call ends with the stream: at its end, when it is closed, and when
                # it is dropped unread (a never started generator runs no ``finally``).
                loop = asyncio.get_running_loop()
                weakref.finalize(stream, _call_soon, loop, self._body_done, number, node, inbound)
                response.stream = stream
                done = True
            else:
                response.body = answer.body
            return response
        except BaseException:
            if call.out is not None:  # the request body was streaming: stop both sides
                call.out.break_("the caller gave up")
                self._send_soon(node, encode_frame(Kind.CANCEL, number, {"f": self.node}))
            raise
        finally:
            if not done:
                self._calls.pop(number, None)

    async def _response_body(
        self, number: int, node: str, first: bytes, inbound: Inbound
    ) -> AsyncIterator[bytes]:
        try:
            if first:
                yield first
            async for chunk in inbound.chunks():
                yield chunk
        finally:
            self._body_done(number, node, inbound)

    def _body_done(self, number: int, node: str, inbound: Inbound) -> None:
        """A streamed response body ended, or its reader gave it up: forget the call,
        and unless the body came whole, tell the owner to stop sending (CANCEL)."""
        if self._calls.pop(number, None) is not None and not inbound.finished:
            self._send_soon(node, encode_frame(Kind.CANCEL, number, {"f": self.node}))

    def _prober(self, node: str, number: int, reply: bool) -> Callable[[], None]:
        """A stalled sender's question to ``node``, "do you still read this body?": an
        empty CHUNK, which a node that forgot the call answers with CANCEL."""
        meta: dict[str, Any] = {"f": self.node, "r": 1} if reply else {"f": self.node}
        frame = encode_frame(Kind.CHUNK, number, meta)
        return lambda: self._send_soon(node, frame)

    def _grant(self, node: str, number: int, n: int, reply: bool) -> None:
        meta: dict[str, Any] = {"f": self.node, "n": n}
        if reply:
            meta["r"] = 1
        self._send_soon(node, encode_frame(Kind.CREDIT, number, meta))

    async def _pump(
        self,
        node: str,
        number: int,
        out: Outbound | None,
        chunks: AsyncIterator[bytes],
        *,
        reply: bool,
    ) -> None:
        """Send a body's chunks to ``node`` as its credit allows."""
        assert out is not None
        base: dict[str, Any] = {"f": self.node, "r": 1} if reply else {"f": self.node}
        end_meta = {**base, "end": 1}

        async def send(chunk: bytes, end: bool) -> None:
            frame = encode_frame(Kind.CHUNK, number, end_meta if end else base, chunk)
            await self.transport.send(node, frame)

        try:
            await out.send_all(chunks, send)
        except StreamBroken as exc:
            logger.info("a body stream to node %s stopped: %s", node, exc)
        except Exception as exc:
            logger.warning("a body stream to node %s failed: %s", node, exc)
            await self._send_quietly(node, encode_frame(Kind.CANCEL, number, base))

    # -- frames from other nodes ----------------------------------------------------------

    def on_frame(self, frame: Frame, reply: str) -> None:
        """Every frame of our inbox (the transport's handler; never blocks)."""
        kind = frame.kind
        if self._tg is None:
            # Not serving (starting or stopping): a caller asks the placement again.
            sender = frame.meta.get("f")
            if kind in (Kind.FETCH, Kind.CALL, Kind.ALARM) and isinstance(sender, str):
                meta = {"f": self.node, "r": 1, "error": "not_owner"}
                self._send_soon(sender, encode_frame(Kind.FAILED, frame.call, meta))
            return
        if kind is Kind.NO_RESPONDERS:
            call = self._calls.get(frame.call)
            if call is not None:
                call.push(frame)
            return
        sender = frame.meta.get("f")
        if not isinstance(sender, str):
            raise ValueError("no sender node in the frame")
        if kind is Kind.SOCKETS:
            self.sockets.receive(sender, frame)
        elif kind is Kind.HELLO:
            # The sender (re)started, maybe before its old lease ran out: its earlier
            # run's calls and sockets are gone, as if that run had been declared dead.
            self._node_dead(sender)
        elif kind in (Kind.FETCH, Kind.CALL, Kind.ALARM):
            namespace, object_id = frame.meta.get("ns"), frame.meta.get("id")
            if not (isinstance(namespace, str) and isinstance(object_id, str)):
                raise ValueError("no object named in the call")
            self._spawn(lambda: self._serve(sender, frame, namespace, object_id))
        elif frame.meta.get("r"):
            self._to_call(sender, frame)
        else:
            self._to_served(sender, frame)

    def _to_call(self, sender: str, frame: Frame) -> None:
        call = self._calls.get(frame.call)
        kind = frame.kind
        socket = frame.meta.get("ws") if kind is Kind.RESPONSE else None
        if call is None or call.node != sender:
            # A call we gave up on: close the object's end of a 101, stop a body.
            if socket is not None:
                self.sockets.refuse(sender, int(socket))
            streams = kind in (Kind.RESPONSE, Kind.RESULT) and frame.meta.get("more")
            if kind is Kind.CHUNK or streams:
                cancel = encode_frame(Kind.CANCEL, frame.call, {"f": self.node})
                self._send_soon(sender, cancel)
            return
        if socket is not None:
            # Bridged now, before the next frame: it may carry the socket's first messages.
            call.websocket = self.sockets.front(sender, int(socket))
        if kind is Kind.CHUNK:
            if call.inbound is not None:
                call.inbound.push(frame.body, bool(frame.meta.get("end")))
        elif kind is Kind.CREDIT and call.out is not None:
            call.out.grant(int(frame.meta.get("n", 0)))
        elif kind is Kind.CANCEL:
            if call.out is not None:
                call.out.break_("the owner stopped reading the body")
            if call.inbound is not None:
                call.inbound.break_("the owner stopped sending the body")
        else:
            call.push(frame)

    def _to_served(self, sender: str, frame: Frame) -> None:
        served = self._served.get((sender, frame.call))
        kind = frame.kind
        if served is None:
            if kind is Kind.CHUNK:  # a body (or a probe) for a call we are done with
                cancel = encode_frame(Kind.CANCEL, frame.call, {"f": self.node, "r": 1})
                self._send_soon(sender, cancel)
            return
        if kind is Kind.CHUNK and served.inbound is not None:
            served.inbound.push(frame.body, bool(frame.meta.get("end")))
        elif kind is Kind.CREDIT and served.out is not None:
            served.out.grant(int(frame.meta.get("n", 0)))
        elif kind is Kind.CANCEL:
            if served.out is not None:
                served.out.break_("the caller stopped reading the body")
            if served.inbound is not None:
                served.inbound.break_("the caller stopped sending the body")

    async def _owns(self, namespace: str, object_id: str) -> bool:
        if not getattr(self.placement, "valid", True):
            return False  # past the local lease deadline: another node may own it now
        if self.system.is_live(namespace, object_id):
            return True
        owner = await self.placement.locate(namespace, object_id)
        return getattr(owner, "inbox", None) is None or owner.node == self.node

    async def _answer(self, sender: str, kind: Kind, number: int, meta: dict[str, Any]) -> None:
        await self._send_quietly(
            sender, encode_frame(kind, number, {"f": self.node, "r": 1, **meta})
        )

    def _failure(self, number: int, error: Exception) -> bytes:
        """The FAILED frame that makes the caller raise ``error`` again.

        kitpy's own errors (StorageError, ObjectResetError...) cross as themselves;
        the others as RPC encodes them (HTTPError and built-ins as themselves).
        """
        meta: dict[str, Any] = {"f": self.node, "r": 1, "error": "raised"}
        cls = type(error)
        if isinstance(error, KitpyError) and not isinstance(error, HTTPError):
            if cls.__module__.startswith("kitpy."):
                meta["kitpy"] = f"{cls.__module__}:{cls.__qualname__}"
                meta["message"] = str(error)
        return encode_frame(Kind.FAILED, number, meta, rpc.encode_error(error))

    async def _serve(self, sender: str, frame: Frame, namespace: str, object_id: str) -> None:
        """Run one forwarded event; whatever goes wrong is answered, never raised here."""
        number = frame.call
        try:
            if namespace not in self.system.bindings or not await self._owns(namespace, object_id):
                await self._answer(sender, Kind.FAILED, number, {"error": "not_owner"})
                return
            name = frame.meta.get("nm")
            oid = ObjectId(namespace, object_id, name if isinstance(name, str) else None)
            if frame.kind is Kind.CALL:
                await self._serve_call(sender, frame, oid)
            elif frame.kind is Kind.ALARM:
                await self.system.ensure_alarm(namespace, object_id)
                await self._answer(sender, Kind.RESULT, number, {})
            else:
                await self._serve_fetch(sender, frame, oid)
        except Exception as exc:
            logger.warning(
                "%s/%s: a %s from node %s failed: %s: %s",
                namespace,
                object_id,
                frame.kind.name,
                sender,
                type(exc).__name__,
                exc,
            )
            await self._send_quietly(sender, self._failure(number, exc))

    async def _serve_call(self, sender: str, frame: Frame, oid: ObjectId) -> None:
        number = frame.call
        served = self._served[(sender, number)] = _Served()
        try:
            payload = frame.body
            if frame.meta.get("more"):  # a payload larger than a chunk follows
                inbound = served.inbound = Inbound(lambda n: self._grant(sender, number, n, True))
                await self._answer(sender, Kind.CREDIT, number, {"n": WINDOW})
                payload = b"".join([payload, *[chunk async for chunk in inbound.chunks()]])
            outcome = await self.system.call(oid, payload, routed=False)
            head: dict[str, Any] = {"f": self.node, "r": 1}
            await self._send_streamed(sender, number, served, Kind.RESULT, head, (outcome,))
        finally:
            self._served.pop((sender, number), None)

    async def _serve_fetch(self, sender: str, frame: Frame, oid: ObjectId) -> None:
        number = frame.call
        served = self._served[(sender, number)] = _Served()
        try:
            meta = frame.meta
            body: bytes | AsyncIterator[bytes] = frame.body
            if meta.get("more"):
                inbound = served.inbound = Inbound(lambda n: self._grant(sender, number, n, True))
                body = _prefixed(frame.body, inbound.chunks())
                await self._answer(sender, Kind.CREDIT, number, {"n": WINDOW})
            client = meta.get("c")
            request = Request(
                str(meta["m"]),
                str(meta["u"]),
                [tuple(pair) for pair in meta.get("h", [])],
                body,
                client=(str(client[0]), int(client[1])) if client else None,
            )
            try:
                response = await self.system.fetch(oid, request, routed=False)
            except Exception as exc:
                await self._send_quietly(sender, self._failure(number, exc))
                return
            await self._send_response(sender, number, served, response)
        finally:
            self._served.pop((sender, number), None)
            if served.inbound is not None and not served.inbound.finished:
                # the object answered without reading all of the body: stop the caller
                self._send_soon(sender, encode_frame(Kind.CANCEL, number, {"f": self.node, "r": 1}))

    async def _send_response(
        self, sender: str, number: int, served: _Served, response: Response
    ) -> None:
        head: dict[str, Any] = {
            "f": self.node,
            "r": 1,
            "s": response.status,
            "h": response.headers.items(),
        }
        if response.websocket is not None:
            # The object's pair stays here; the front node drives its client end.
            chosen = response.headers.get("sec-websocket-protocol")
            protocol = None if chosen is None else chosen.strip()
            head["ws"] = self.sockets.own(response.websocket, sender, protocol)
        body = response.body or b""
        if response.stream is None and len(body) <= CHUNK_SIZE:
            await self.transport.send(sender, encode_frame(Kind.RESPONSE, number, head, body))
            return
        source = response.stream if response.stream is not None else (body,)
        await self._send_streamed(sender, number, served, Kind.RESPONSE, head, source)

    async def _send_streamed(
        self,
        sender: str,
        number: int,
        served: _Served,
        kind: Kind,
        head: dict[str, Any],
        source: AsyncIterable[bytes] | Iterable[bytes],
    ) -> None:
        """Answer with ``kind`` and its body: inline if it fits one chunk, else streamed.

        The source is closed when this returns, also when the caller cancelled the
        stream (its ``finally`` runs now, not when it is collected).
        """
        rest: AsyncIterator[bytes] | None = None
        try:
            first, rest = await peek(rechunk(source))
            if rest is not None:
                head["more"] = 1
                served.out = Outbound(WINDOW, self._prober(sender, number, True))
            await self.transport.send(sender, encode_frame(kind, number, head, first))
            if rest is not None:
                await self._pump(sender, number, served.out, rest, reply=True)
        finally:
            with anyio.CancelScope(shield=True):
                if rest is not None:
                    await _close(rest)
                await _close(source)


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    """``callback(*args)`` on ``loop``: now if this is its thread (a finalizer may run in
    any thread), else soon; nothing once the loop closed."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    try:
        if running is loop:
            callback(*args)
        else:
            loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:
        pass


async def _close(source: object) -> None:
    """Close an iterator of body chunks (an object's stream) if it can be closed."""
    try:
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()
            return
        close = getattr(source, "close", None)
        if callable(close):
            close()
    except Exception as exc:
        logger.warning("closing a response stream failed: %s: %s", type(exc).__name__, exc)


def _replayed(request: Request, first: bytes, rest: AsyncIterator[bytes] | None) -> Request:
    body: bytes | AsyncIterator[bytes] = first if rest is None else _prefixed(first, rest)
    return Request(request.method, request.url, request.headers, body, client=request.client)


async def _prefixed(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk


def _raise_failure(frame: Frame) -> NoReturn:
    """Raise what a FAILED frame carries (see ``RemoteObjects._failure``)."""
    path = frame.meta.get("kitpy")
    if isinstance(path, str) and path.startswith("kitpy."):
        module, _, name = path.partition(":")
        try:
            cls: Any = importlib.import_module(module)
            for part in name.split("."):
                cls = getattr(cls, part)
        except (ImportError, AttributeError):
            cls = None
        if isinstance(cls, type) and issubclass(cls, KitpyError):
            error = cls.__new__(cls)  # its message as is, whatever its __init__ takes
            Exception.__init__(error, str(frame.meta.get("message", "")))
            raise error
    rpc.decode_outcome(frame.body)  # raises what the object raised
    raise OwnerGone(f"a failed call carried no error: {frame.meta!r}")
