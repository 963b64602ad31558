"""What only the PostgreSQL backend promises: fenced batches, NUL-safe keys, clear errors."""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio
import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kitpy.errors import StorageError
from kitpy.storage.postgres import PostgresBackend, decode_key, encode_key

pytestmark = pytest.mark.anyio


@given(st.text(min_size=1), st.text(min_size=1))
def test_stored_keys_keep_byte_order_and_round_trip(a: str, b: str) -> None:
    a, b = a.encode("utf-8", "replace").decode(), b.encode("utf-8", "replace").decode()
    assert "\x00" not in encode_key(a)
    assert decode_key(encode_key(a)) == a
    assert (a.encode() < b.encode()) == (encode_key(a).encode() < encode_key(b).encode())


@dataclass
class Held:
    """A stand-in for the placement: the epochs this "node" believes it holds."""

    node: str = "n1"
    epochs: dict[tuple[str, str], int] = field(default_factory=dict)

    def held_epoch(self, namespace: str, object_id: str) -> int | None:
        return self.epochs.get((namespace, object_id))


def _own(url: str, object_id: str, owner: str | None, epoch: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO kitpy_objects VALUES ('ns', %s, %s, %s) ON CONFLICT (namespace, "
            "object_id) DO UPDATE SET owner = excluded.owner, epoch = excluded.epoch",
            (object_id, owner, epoch),
        )


async def test_a_batch_commits_only_while_its_epoch_holds(postgres_url: str) -> None:
    held = Held(epochs={("ns", "a"): 1, ("ns", "b"): 1})
    _own(postgres_url, "a", "n1", 1)
    _own(postgres_url, "b", "n1", 1)
    backend = PostgresBackend(postgres_url, fencing=held)
    a, b = backend.storage("ns", "a"), backend.storage("ns", "b")
    await a.put("k", 1)
    _own(postgres_url, "b", "n2", 2)  # taken over by another node
    ok, fenced = a.put("k", 2), b.put("k", 2)  # one batch
    with pytest.raises(
        StorageError, match=r"ns/b refused, this node lost ownership.*n2 at epoch 2"
    ):
        await fenced
    with pytest.raises(StorageError, match="lost ownership"):
        await ok  # the whole batch failed: nothing of it is acknowledged
    assert await a.get("k") == 1 and await b.get("k") is None
    held.epochs.pop(("ns", "b"))
    with pytest.raises(StorageError, match="this node does not hold it"):
        await b.put("k", 3)
    await a.put("k", 3)  # the next batch of an object still held commits
    await backend.aclose()
    reader = PostgresBackend(postgres_url)
    assert await reader.storage("ns", "a").get("k") == 3
    assert await reader.storage("ns", "b").get("k") is None
    await reader.aclose()


async def test_an_unreachable_database_is_a_storage_error_without_the_password() -> None:
    with anyio.fail_after(30):
        backend = PostgresBackend("postgresql://kitpy:s3cret@127.0.0.1:1/kitpy")
        with pytest.raises(StorageError) as caught:
            await backend.storage("ns", "o").put("k", 1)
        message = str(caught.value)
        assert (
            "PostgreSQL storage postgresql://kitpy:***@127.0.0.1:1/kitpy: connecting failed"
            in message
        )
        assert "Connection refused" in message and "s3cret" not in message
        with pytest.raises(StorageError, match="connecting failed"):
            await backend.storage("ns", "o").get("k")
        await backend.aclose()
