"""kitpy: file-based routes, its own HTTP/1.1 + WebSocket server, durable objects.

Everything a route, hook or object author types comes from here.
"""

from __future__ import annotations

from kitpy.errors import HTTPError as HTTPError
from kitpy.errors import KitpyError as KitpyError
from kitpy.errors import StorageError as StorageError
from kitpy.http.headers import Headers as Headers
from kitpy.http.request import Request as Request
from kitpy.http.response import Response as Response
from kitpy.http.response import error as error
from kitpy.http.response import html as html
from kitpy.http.response import json as json
from kitpy.http.response import redirect as redirect
from kitpy.http.response import text as text
from kitpy.http.websocket import WebSocket as WebSocket
from kitpy.http.websocket import WebSocketClosed as WebSocketClosed
from kitpy.http.websocket import WebSocketPair as WebSocketPair
from kitpy.objects.base import DurableObject as DurableObject
from kitpy.runtime.hooks import sequence as sequence

__all__ = (
    "DurableObject",
    "HTTPError",
    "Headers",
    "KitpyError",
    "Request",
    "Response",
    "StorageError",
    "WebSocket",
    "WebSocketClosed",
    "WebSocketPair",
    "error",
    "html",
    "json",
    "redirect",
    "sequence",
    "text",
)
