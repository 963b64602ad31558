"""kitpy: file-based routes, its own HTTP/1.1 + WebSocket server, durable objects.

Everything a route, hook or object author types comes from here, annotations
included: ``async def get(event: RequestEvent) -> Response``,
``def __init__(self, state: DurableObjectState, env: Env)``.
"""

from __future__ import annotations

from kitpy.errors import DurableObjectError as DurableObjectError
from kitpy.errors import HTTPError as HTTPError
from kitpy.errors import KitpyError as KitpyError
from kitpy.errors import StorageError as StorageError
from kitpy.http.cookies import Cookies as Cookies
from kitpy.http.form import FormData as FormData
from kitpy.http.form import UploadFile as UploadFile
from kitpy.http.headers import Headers as Headers
from kitpy.http.request import Request as Request
from kitpy.http.response import Response as Response
from kitpy.http.response import error as error
from kitpy.http.response import html as html
from kitpy.http.response import json as json
from kitpy.http.response import json as json_response
from kitpy.http.response import redirect as redirect
from kitpy.http.response import text as text
from kitpy.http.url import URL as URL
from kitpy.http.url import QueryParams as QueryParams
from kitpy.http.websocket import WebSocket as WebSocket
from kitpy.http.websocket import WebSocketClosed as WebSocketClosed
from kitpy.http.websocket import WebSocketDriver as WebSocketDriver
from kitpy.http.websocket import WebSocketPair as WebSocketPair
from kitpy.objects.base import DurableObject as DurableObject
from kitpy.objects.gate import ObjectResetError as ObjectResetError
from kitpy.objects.ids import ObjectId as ObjectId
from kitpy.objects.namespace import Namespace as Namespace
from kitpy.objects.namespace import Stub as Stub
from kitpy.objects.state import DurableObjectState as DurableObjectState
from kitpy.runtime.cors import cors as cors
from kitpy.runtime.dispatch import on_loop as on_loop
from kitpy.runtime.event import Env as Env
from kitpy.runtime.event import Platform as Platform
from kitpy.runtime.event import RequestEvent as RequestEvent
from kitpy.runtime.hooks import Resolve as Resolve
from kitpy.runtime.hooks import sequence as sequence
from kitpy.storage.base import Storage as Storage
from kitpy.storage.base import Transaction as Transaction

__all__ = (
    "URL",
    "Cookies",
    "DurableObject",
    "DurableObjectError",
    "DurableObjectState",
    "Env",
    "FormData",
    "HTTPError",
    "Headers",
    "KitpyError",
    "Namespace",
    "ObjectId",
    "ObjectResetError",
    "Platform",
    "QueryParams",
    "Request",
    "RequestEvent",
    "Resolve",
    "Response",
    "Storage",
    "StorageError",
    "Stub",
    "Transaction",
    "UploadFile",
    "WebSocket",
    "WebSocketClosed",
    "WebSocketDriver",
    "WebSocketPair",
    "cors",
    "error",
    "html",
    "json",
    "json_response",
    "on_loop",
    "redirect",
    "sequence",
    "text",
)
