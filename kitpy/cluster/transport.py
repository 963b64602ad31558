"""The NATS side of a cluster node: subjects, framing, and this node's inbox.

Subjects. Every subject of a site starts with a prefix derived from its database
(:func:`site_prefix`), so two sites sharing one NATS server never meet. A node listens
on its *inbox* ``<prefix>.n.<node>`` and on ``<inbox>.r.<call id>``, where NATS itself
answers a call sent to a node that is not connected (a "no responders" status): the
caller learns at once that the owner it had cached is gone.

Framing. A NATS message between nodes is one *frame*: a fixed binary head (magic,
kind, call id, length of the meta), a compact JSON object of metadata (sender, object,
status...), then the body bytes as they are (a chunk of an HTTP body, RPC bytes,
WebSocket frames). Anything that does not decode -- a stray publisher, a truncated
message, an unknown kind -- is logged in one line and dropped; it never reaches the
object system.

This module knows nothing of objects: :mod:`kitpy.cluster.remote` gives the frames
their meaning.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any
from urllib.parse import urlsplit

import nats
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

__all__ = (
    "Frame",
    "FrameError",
    "Kind",
    "Transport",
    "TransportError",
    "decode_frame",
    "encode_frame",
    "site_prefix",
)

logger = logging.getLogger("kitpy.cluster")

_MAGIC = b"kp"
_HEAD = struct.Struct("!2sBQI")  # magic, kind, call id, meta length
#: Largest body a frame carries; HTTP bodies stream in chunks of at most this size.
CHUNK_SIZE = 64 * 1024
#: Seconds the first connection to NATS may take before start-up fails.
CONNECT_DEADLINE = 5.0
_NODE_NAME = re.compile(r"[A-Za-z0-9_-]{1,100}")


class Kind(IntEnum):
    """What a frame is; the meaning of each is in :mod:`kitpy.cluster.remote`."""

    FETCH = 1  # a stub.fetch: request head (+ first body chunk)
    CALL = 2  # an RPC call: payload bytes
    ALARM = 3  # an object's alarm is due: make sure the owner has it armed
    RESPONSE = 4  # answer to FETCH: response head (+ first body chunk)
    RESULT = 5  # answer to CALL or ALARM: outcome bytes
    FAILED = 6  # a call failed: meta "error" ("not_owner", "gone", ...) and "message"
    CHUNK = 7  # the next body chunk of a call (meta "end": last one)
    CREDIT = 8  # the receiver of a stream took chunks: meta "n" more may be sent
    CANCEL = 9  # the other side gave up on this call's stream
    SOCKETS = 10  # WebSocket frames for bridged sockets, coalesced (remote.py)
    NO_RESPONDERS = 11  # not on the wire: NATS said nobody listens on the call's target
    HELLO = 12  # a node (re)started: whatever others hold of its earlier run is stale


class FrameError(ValueError):
    """A NATS message that is not a kitpy frame."""


class TransportError(RuntimeError):
    """NATS is unreachable or refused us; the message names the URL."""


@dataclass(slots=True)
class Frame:
    kind: Kind
    call: int
    meta: dict[str, Any]
    body: bytes


def encode_frame(kind: Kind, call: int, meta: dict[str, Any] | None, body: bytes = b"") -> bytes:
    """The bytes of one frame."""
    head = b"" if not meta else json.dumps(meta, separators=(",", ":")).encode()
    return b"".join((_HEAD.pack(_MAGIC, kind, call, len(head)), head, body))


def decode_frame(data: bytes) -> Frame:
    """One frame from the bytes of a NATS message; FrameError says what is wrong."""
    if len(data) < _HEAD.size:
        raise FrameError(f"{len(data)} bytes, shorter than a frame head")
    magic, kind, call, size = _HEAD.unpack_from(data)
    if magic != _MAGIC:
        raise FrameError("not a kitpy frame (bad magic)")
    try:
        kind = Kind(kind)
    except ValueError:
        raise FrameError(f"unknown frame kind {kind}") from None
    end = _HEAD.size + size
    if end > len(data):
        raise FrameError("meta longer than the message")
    meta: dict[str, Any] = {}
    if size:
        try:
            decoded = json.loads(data[_HEAD.size : end])
        except (ValueError, UnicodeDecodeError) as exc:
            raise FrameError(f"meta is not JSON: {exc}") from None
        if not isinstance(decoded, dict):
            raise FrameError("meta is not a JSON object")
        meta = decoded
    return Frame(kind, call, meta, data[end:])


def site_prefix(postgres_url: str) -> str:
    """The subject prefix of the site whose database is ``postgres_url``.

    Host, port and database name decide it (not the password), so every node of one
    site agrees and two sites on one NATS server stay apart.
    """
    parts = urlsplit(postgres_url)
    where = f"{parts.hostname or ''}:{parts.port or ''}/{parts.path.lstrip('/')}"
    return "kitpy." + hashlib.sha256(where.encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=4096)
def subject_token(node: str) -> str:
    """``node`` as one token of a NATS subject (which has no '.', '*', '>' or spaces).

    A name of letters, digits, '-' and '_' stays itself; any other (``web-1.internal``)
    gets its other characters replaced and a digest of the whole name appended, so
    two names never share a token.
    """
    if _NODE_NAME.fullmatch(node):
        return node
    if not node:
        raise ValueError("a node name cannot be empty")
    digest = hashlib.sha256(node.encode()).hexdigest()[:10]
    return f"{re.sub(r'[^A-Za-z0-9_-]', '_', node)[:80]}-{digest}"


class Transport:
    """One NATS connection of one node: its inbox, and publishing to other inboxes.

    ``handler(frame, reply)`` is called for every frame that arrives, in arrival order,
    on the event loop; it must not block (it hands work to tasks).
    """

    def __init__(self, url: str, prefix: str, node: str) -> None:
        self.url = url
        self.prefix = prefix
        self.node = node
        self.inbox = self.inbox_of(node)
        self._nc: Client | None = None
        self.dropped = 0  # malformed messages dropped (for tests and status)

    def inbox_of(self, node: str) -> str:
        """The subject node ``node`` listens on."""
        return f"{self.prefix}.n.{subject_token(node)}"

    def reply_subject(self, call: int) -> str:
        """Where NATS reports that a call of ours found nobody listening."""
        return f"{self.inbox}.r.{call}"

    async def connect(
        self,
        handler: Callable[[Frame, str], None],
        on_disconnect: Callable[[], None] | None = None,
    ) -> None:
        """Connect and start listening; TransportError if NATS cannot be reached.

        ``on_disconnect()`` is called when an established connection drops: NATS
        reconnects by itself, but what was in flight may be lost.
        """

        failures: list[BaseException] = []

        async def on_disconnected() -> None:
            if self._nc is not None and not self._nc.is_closed:
                logger.warning("NATS %s: disconnected, reconnecting", self.url)
                if on_disconnect is not None:
                    on_disconnect()

        async def on_error(exc: Exception) -> None:
            if self._nc is None:
                failures.append(exc)  # still connecting: reported once, below
            else:
                logger.warning("NATS %s: %s", self.url, exc or type(exc).__name__)

        try:
            # Reconnects forever once connected; the first connection gets a deadline.
            nc = await asyncio.wait_for(
                nats.connect(
                    self.url,
                    name=f"kitpy {self.node}",
                    connect_timeout=2,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    error_cb=on_error,
                    disconnected_cb=on_disconnected,
                    pending_size=64 * 1024 * 1024,
                ),
                CONNECT_DEADLINE,
            )
        except (OSError, nats.errors.Error, TimeoutError) as exc:
            cause = failures[-1] if failures else exc
            if isinstance(cause, OSError) and cause.errno:
                reason = os.strerror(cause.errno).lower()  # "connection refused"
            else:
                reason = str(cause) or type(cause).__name__
            raise TransportError(f"cannot reach {self.url}: {reason}") from None
        self._nc = nc
        inbox = self.inbox

        async def on_message(msg: Msg) -> None:
            subject = msg.subject
            if subject != inbox:
                # <inbox>.r.<call>: a status NATS sends for a call that found nobody.
                _, _, call = subject.rpartition(".")
                if msg.headers and msg.headers.get("Status") == "503" and call.isdigit():
                    handler(Frame(Kind.NO_RESPONDERS, int(call), {}, b""), "")
                else:
                    self._drop(subject, "unexpected message on a reply subject")
                return
            try:
                frame = decode_frame(msg.data)
            except FrameError as exc:
                self._drop(subject, str(exc))
                return
            try:
                handler(frame, msg.reply)
            except Exception as exc:  # a frame that decodes but makes no sense
                self._drop(subject, f"{frame.kind.name}: {type(exc).__name__}: {exc}")

        await nc.subscribe(inbox, cb=on_message)
        await nc.subscribe(inbox + ".r.*", cb=on_message)
        await nc.flush()

    def _drop(self, subject: str, reason: str) -> None:
        self.dropped += 1
        logger.warning("dropped a malformed NATS message on %s: %s", subject, reason)

    async def send(self, node: str, frame: bytes, *, reply: str = "") -> None:
        """Publish ``frame`` to ``node``'s inbox (buffered; NATS writes it soon)."""
        nc = self._nc
        if nc is None or nc.is_closed:
            raise TransportError(f"the NATS connection to {self.url} is closed")
        await nc.publish(self.inbox_of(node), frame, reply=reply)

    async def close(self) -> None:
        """Flush what is buffered and close the connection."""
        nc, self._nc = self._nc, None
        if nc is not None and not nc.is_closed:
            try:
                await nc.flush(timeout=2)
            except (nats.errors.Error, TimeoutError):
                pass
            await nc.close()
