"""The engines the cluster tests run on are real servers, reachable as the nodes reach them."""

from __future__ import annotations

import nats
import psycopg
import pytest
from engines import NatsEngine, PostgresEngine


def test_each_test_database_is_new_and_empty(postgres_server: PostgresEngine) -> None:
    first, second = postgres_server.create_database(), postgres_server.create_database()
    try:
        assert first != second
        with psycopg.connect(first) as conn:
            conn.execute("CREATE TABLE t (x int)")
        with psycopg.connect(second) as conn:
            row = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename = 't'").fetchone()
            assert row == (0,)
    finally:
        postgres_server.drop_database(first)
        postgres_server.drop_database(second)


@pytest.mark.anyio
async def test_nats_server_carries_request_reply(nats_server: NatsEngine) -> None:
    client = await nats.connect(nats_server.url)
    try:

        async def echo(msg: nats.aio.msg.Msg) -> None:
            await msg.respond(b"re:" + msg.data)

        await client.subscribe("kitpy.test.echo", cb=echo)
        reply = await client.request("kitpy.test.echo", b"ping", timeout=10)
        assert reply.data == b"re:ping"
    finally:
        await client.close()
