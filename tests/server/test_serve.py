"""serve() and run(): binding, readiness, errors."""

from __future__ import annotations

import socket

import anyio
import httpx
import pytest

from kitpy.http import Request, Response
from kitpy.server import Limits, run, serve

from .conftest import App, run_server


async def hello(app: App, request: Request) -> Response:
    return Response("hello")


def test_on_ready_reports_the_bound_port(backend: str) -> None:
    reported: list[list[tuple[str, int]]] = []
    with run_server(hello, backend, on_ready=reported.append) as server:
        assert reported == [[("127.0.0.1", server.port)]]
        assert server.port != 0
        with httpx.Client() as client:
            assert client.get(server.url).text == "hello"


def test_port_in_use_is_a_plain_oserror(backend: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        async def main() -> None:
            await serve(App(hello), port=port, access_log=None)

        with pytest.raises(OSError):
            anyio.run(main, backend=backend)


def test_run_rejects_an_unknown_backend() -> None:
    with pytest.raises(ValueError, match="'asyncio' or 'trio'"):
        run(App(hello), backend="twisted")


def test_lifespan_failure_propagates(backend: str) -> None:
    class Broken(App):
        def lifespan(self):  # type: ignore[no-untyped-def]
            raise RuntimeError("no database")

    async def main() -> None:
        await serve(Broken(hello), port=0, access_log=None)

    with pytest.raises(RuntimeError, match="no database"):
        anyio.run(main, backend=backend)


def test_limits_are_exported() -> None:
    assert Limits().max_body_bytes == 1024 * 1024
