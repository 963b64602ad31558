"""The four benchmark endpoints on Starlette, served by uvicorn and by hypercorn.

- ``GET /``            plain-text hello
- ``GET /users/{id}``  JSON from a route with a path parameter
- ``GET /sync``        the hello from a plain ``def`` (Starlette runs it in a thread)
- ``WS /ws/echo``      WebSocket echo
- ``WS /ws/room``      one broadcast room: every message goes to every member,
                       with the send loop a Starlette user would write
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

MEMBERS: set[WebSocket] = set()


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("Hello, world!")


def sync_hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("Hello, world!")


async def user(request: Request) -> JSONResponse:
    user_id = request.path_params["id"]
    return JSONResponse({"id": user_id, "name": f"user {user_id}"})


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnect:
        pass


async def room(websocket: WebSocket) -> None:
    await websocket.accept()
    MEMBERS.add(websocket)
    try:
        while True:
            message = await websocket.receive_text()
            for member in list(MEMBERS):
                try:
                    await member.send_text(message)
                except Exception:  # a member that left mid-broadcast
                    MEMBERS.discard(member)
    except WebSocketDisconnect:
        pass
    finally:
        MEMBERS.discard(websocket)


app = Starlette(
    routes=[
        Route("/", hello),
        Route("/users/{id}", user),
        Route("/sync", sync_hello),
        WebSocketRoute("/ws/echo", echo),
        WebSocketRoute("/ws/room", room),
    ]
)
