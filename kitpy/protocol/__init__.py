"""kitpy.protocol: HTTP/1.1 and WebSocket as bytes in, events out (no I/O, no anyio)."""

from __future__ import annotations

from kitpy.protocol.events import NEED_DATA as NEED_DATA
from kitpy.protocol.events import BodyData as BodyData
from kitpy.protocol.events import BodyEnd as BodyEnd
from kitpy.protocol.events import CloseReceived as CloseReceived
from kitpy.protocol.events import ConnectionClosed as ConnectionClosed
from kitpy.protocol.events import Message as Message
from kitpy.protocol.events import NeedData as NeedData
from kitpy.protocol.events import PongReceived as PongReceived
from kitpy.protocol.events import ProtocolError as ProtocolError
from kitpy.protocol.events import RequestHead as RequestHead
from kitpy.protocol.http11 import Framing as Framing
from kitpy.protocol.http11 import HTTP11Protocol as HTTP11Protocol
from kitpy.protocol.limits import Limits as Limits
from kitpy.protocol.websocket import CloseState as CloseState
from kitpy.protocol.websocket import WebSocketProtocol as WebSocketProtocol

__all__ = (
    "NEED_DATA",
    "BodyData",
    "BodyEnd",
    "CloseReceived",
    "CloseState",
    "ConnectionClosed",
    "Framing",
    "HTTP11Protocol",
    "Limits",
    "Message",
    "NeedData",
    "PongReceived",
    "ProtocolError",
    "RequestHead",
    "WebSocketProtocol",
)
