"""wsproto alone: an echo server on anyio + wsproto with permessage-deflate, no framework.

``python bench/peers/wsproto_echo.py --port 9001 [--host 127.0.0.1]``

The reference for what kitpy's WebSocket path adds on top of wsproto: bench/autobahn.py
runs the compression cases (12.x, 13.x) against both and compares their durations.
wsproto parses the handshake too (``WSConnection`` in server mode); every message is
echoed whole, in the type it came.
"""

from __future__ import annotations

import argparse

import anyio
from anyio.abc import SocketStream
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Request,
    TextMessage,
)
from wsproto.extensions import PerMessageDeflate

STREAM_ERRORS = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError)


async def serve_one(stream: SocketStream) -> None:
    ws = WSConnection(ConnectionType.SERVER)
    parts: list[str | bytes] = []
    async with stream:
        while True:
            try:
                data = await stream.receive(65536)
            except STREAM_ERRORS:
                return
            ws.receive_data(data)
            out = b""
            for event in ws.events():
                if isinstance(event, Request):
                    out += ws.send(AcceptConnection(extensions=[PerMessageDeflate()]))
                elif isinstance(event, TextMessage | BytesMessage):
                    parts.append(event.data)
                    if event.message_finished:
                        if isinstance(event, TextMessage):
                            whole: str | bytes = "".join(parts)  # type: ignore[arg-type]
                            out += ws.send(TextMessage(data=whole))
                        else:
                            out += ws.send(BytesMessage(data=b"".join(parts)))  # type: ignore[arg-type]
                        parts.clear()
                elif isinstance(event, Ping):
                    out += ws.send(event.response())
                elif isinstance(event, CloseConnection):
                    try:
                        out += ws.send(event.response())
                    except Exception:  # already closing
                        pass
                    try:
                        await stream.send(out)
                    except STREAM_ERRORS:
                        pass
                    return
            if out:
                try:
                    await stream.send(out)
                except STREAM_ERRORS:
                    return
            if not data:
                return


async def main(host: str, port: int) -> None:
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    print(f"wsproto echo on ws://{host}:{port}", flush=True)
    await listener.serve(serve_one)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    args = parser.parse_args()
    anyio.run(main, args.host, args.port)
