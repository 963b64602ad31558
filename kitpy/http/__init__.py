"""Value types shared by every layer: headers, URL, request, response, WebSocket ends."""

from __future__ import annotations

from kitpy.http.cookies import Cookies as Cookies
from kitpy.http.form import FormData as FormData
from kitpy.http.form import UploadFile as UploadFile
from kitpy.http.headers import Headers as Headers
from kitpy.http.request import Request as Request
from kitpy.http.response import Response as Response
from kitpy.http.response import error as error
from kitpy.http.response import html as html
from kitpy.http.response import json as json
from kitpy.http.response import redirect as redirect
from kitpy.http.response import text as text
from kitpy.http.url import URL as URL
from kitpy.http.url import QueryParams as QueryParams
from kitpy.http.websocket import WebSocket as WebSocket
from kitpy.http.websocket import WebSocketClosed as WebSocketClosed
from kitpy.http.websocket import WebSocketDriver as WebSocketDriver
from kitpy.http.websocket import WebSocketPair as WebSocketPair
from kitpy.http.websocket import WebSocketState as WebSocketState

__all__ = (
    "URL",
    "Cookies",
    "FormData",
    "Headers",
    "QueryParams",
    "Request",
    "Response",
    "UploadFile",
    "WebSocket",
    "WebSocketClosed",
    "WebSocketPair",
    "WebSocketDriver",
    "WebSocketState",
    "error",
    "html",
    "json",
    "redirect",
    "text",
)
