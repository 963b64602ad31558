"""The event loop's ceiling: a bare asyncio Protocol answering every request head with fixed bytes.

``python bench/peers/canned.py --port 8000 [--host 127.0.0.1] [--no-uvloop]``

No parsing beyond finding the end of each head (``CRLF CRLF``) and glancing at its
request line, no Date header, no routing, no framework: each head gets one of three
prepared responses (hello, the JSON of ``/users/42``, the hello again from
``/sync``), written straight to the transport. A head that asks for
``Connection: close`` gets its answer and the connection closes. Nothing a real
server must do is done here, which is the point: this is how many requests per
second the event loop itself can carry on this core, the roof over every server in
the suite.
"""

from __future__ import annotations

import argparse
import asyncio


def _response(content_type: bytes, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nserver: canned\r\ncontent-type: "
        + content_type
        + b"\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


HELLO = _response(b"text/plain; charset=utf-8", b"Hello, world!")
USER = _response(b"application/json", b'{"id":"42","name":"user 42"}')


class Canned(asyncio.Protocol):
    __slots__ = ("buffer", "transport")

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        out = []
        start = 0
        close = False
        while True:
            end = buffer.find(b"\r\n\r\n", start)
            if end == -1:
                break
            head = buffer[start:end]
            out.append(USER if head.startswith(b"GET /users/") else HELLO)
            close = close or b"onnection: close" in head
            start = end + 4
        self.buffer = buffer[start:]
        assert self.transport is not None
        if out:
            self.transport.write(b"".join(out))
        if close:
            self.transport.close()


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Canned, host, port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--no-uvloop", action="store_true")
    args = parser.parse_args()
    if args.no_uvloop:
        asyncio.run(serve(args.host, args.port))
    else:
        import uvloop

        uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
