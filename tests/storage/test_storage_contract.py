"""The storage contract, run on every registered driver (BACKENDS in
tests/storage/conftest.py: memory, SQLite, PostgreSQL), on asyncio and Trio."""

from __future__ import annotations

import math
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import anyio
import pytest

from kitpy.errors import StorageError
from kitpy.storage import Storage
from kitpy.storage.driver import Driver, Op, OpKind
from kitpy.storage.views import EngineBackend as Backend

pytestmark = pytest.mark.anyio


# -- get / put / delete ------------------------------------------------------------


async def test_get_missing_is_none(backend: Backend) -> None:
    assert await backend.storage("ns", "o").get("nope") is None


async def test_put_then_get(backend: Backend) -> None:
    storage = backend.storage("ns", "o")
    value = {"a": [1, 2.5, "x", None, True, {"b": False}], "ü": "é😀"}
    await storage.put("k", value)
    assert await storage.get("k") == value
    await storage.put("k", 7)
    assert await storage.get("k") == 7


@pytest.mark.parametrize(
    "value",
    [None, True, False, 0, -1, 2**80, 1.5, -0.0, "", "text", [], {}, [[[]]], {"": {"": 1}}],
)
async def test_json_values_round_trip(backend: Backend, value: Any) -> None:
    storage = backend.storage("ns", "o")
    await storage.put("k", value)
    got = await storage.get("k")
    assert got == value and type(got) is type(value)
    assert await storage.list() == {"k": value}


async def test_stored_value_is_a_copy(backend: Backend) -> None:
    storage = backend.storage("ns", "o")
    value: dict[str, Any] = {"list": [1]}
    await storage.put("k", value)
    value["list"].append(2)
    got = await storage.get("k")
    assert got == {"list": [1]}
    got["list"].append(3)
    assert await storage.get("k") == {"list": [1]}


async def test_put_many_and_get_many(backend: Backend) -> None:
    storage = backend.storage("ns", "o")
    await storage.put({"a": 1, "b": 2, "c": 3})
    assert await storage.get(["a", "c", "missing"]) == {"a": 1, "c": 3}
    assert await storage.get([]) == {}
    assert await storage.get(["missing"]) == {}


async def test_put_empty_dict_is_a_no_op(backend: Backend) -> None:
    storage = backend.storage("ns", "o")
    await storage.put({})
    assert await storage.list() == {}


async def test_delete_one_returns_whether_it_existed(backend: Backend) -> None:
    storage = backend.storage("ns", "o")
    await storage.put("a", 1)
    assert await storage.delete("a") is True
    assert await storage.delete("a") is False
    assert await storage.get("a") is None


async def test_delete_many_returns_how_many_existed(backend: Backend) -> None:
    storage = backend.storage("ns", "o")
    await storage.put({"a": 1, "b": 2, "c": 3})
    assert await storage.delete(["a", "b", "x", "a"]) == 2
    assert await storage.delete([]) == 0
    assert await storage.list() == {"c": 3}


async def test_objects_and_namespaces_are_separate(backend: Backend) -> None:
    one, two, other = (
        backend.storage("ns", "one"),
        backend.storage("ns", "two"),
        backend.storage("other", "one"),
    )
    await one.put("k", 1)
    await two.put("k", 2)
    await other.put("k", 3)
    assert [await s.get("k") for s in (one, two, other)] == [1, 2, 3]
    await one.delete_all()
    assert [await s.get("k") for s in (one, two, other)] == [None, 2, 3]


async def test_the_same_object_asked_twice_shares_its_state(backend: Backend) -> None:
    first, second = backend.storage("ns", "o"), backend.storage("ns", "o")
    first.put("k", 1)  # not awaited: the other view still sees it
    assert await second.get("k") == 1
    await second.sync()


# -- list --------------------------------------------------------------------------

KEYS = ["a", "a\x00", "a\x00b", "ab", "abc", "abd", "b", "ba", "z", "é", "\ue000", "😀", "😀x"]


def _utf8_sorted(keys: list[str], reverse: bool = False) -> list[str]:
    return sorted(keys, key=lambda key: key.encode("utf-8"), reverse=reverse)


def _expected(
    prefix: str | None, start: str | None, end: str | None, limit: int | None, reverse: bool
) -> list[str]:
    """Cloudflare's rules, spelled out on byte strings."""
    chosen = [
        key
        for key in KEYS
        if (prefix is None or key.startswith(prefix))
        and (start is None or key.encode() >= start.encode())
        and (end is None or key.encode() < end.encode())
    ]
    ordered = _utf8_sorted(chosen, reverse)
    return ordered if limit is None else ordered[:limit]


LIST_CASES = [
    pytest.param({}, id="all"),
    pytest.param({"prefix": "a"}, id="prefix"),
    pytest.param({"prefix": "ab"}, id="prefix-ab"),
    pytest.param({"prefix": "😀"}, id="prefix-astral"),
    pytest.param({"prefix": "nothing"}, id="prefix-none-match"),
    pytest.param({"start": "ab"}, id="start-inclusive"),
    pytest.param({"end": "b"}, id="end-exclusive"),
    pytest.param({"start": "ab", "end": "ba"}, id="start-end"),
    pytest.param({"start": "b", "end": "b"}, id="start-equals-end"),
    pytest.param({"start": "z", "end": "a"}, id="start-after-end"),
    pytest.param({"limit": 3}, id="limit"),
    pytest.param({"limit": 100}, id="limit-above-count"),
    pytest.param({"reverse": True}, id="reverse"),
    pytest.param({"reverse": True, "limit": 3}, id="reverse-limit"),
    pytest.param({"prefix": "a", "start": "ab"}, id="prefix-start"),
    pytest.param({"prefix": "a", "start": "0"}, id="prefix-start-below"),
    pytest.param({"prefix": "a", "end": "abd"}, id="prefix-end"),
    pytest.param({"prefix": "a", "end": "zz"}, id="prefix-end-above"),
    pytest.param({"prefix": "a", "limit": 2}, id="prefix-limit"),
    pytest.param({"prefix": "a", "reverse": True, "limit": 2}, id="prefix-reverse-limit"),
    pytest.param({"start": "a\x00", "end": "abd", "limit": 3}, id="start-end-limit"),
    pytest.param(
        {"start": "ab", "end": "z", "reverse": True, "limit": 2}, id="start-end-reverse-limit"
    ),
    pytest.param(
        {"prefix": "a", "start": "ab", "end": "abd", "reverse": True, "limit": 5},
        id="everything",
    ),
    pytest.param({"start": "é"}, id="start-non-ascii"),
    pytest.param({"end": "\ue000"}, id="end-private-use"),
]


@pytest.mark.parametrize("options", LIST_CASES)
async def test_list(backend: Backend, options: dict[str, Any]) -> None:
    storage = backend.storage("ns", "o")
    await storage.put({key: index for index, key in enumerate(KEYS)})
    await backend.storage("ns", "neighbour").put(dict.fromkeys(KEYS, -1))
    got = await storage.list(**options)
    want = _expected(
        options.get("prefix"),
        options.get("start"),
        options.get("end"),
        options.get("limit"),
        options.get("reverse", False),
    )
    assert list(got) == want
    assert all(got[key] == KEYS.index(key) for key in got)


@pytest.mark.parametrize("options", LIST_CASES)
async def test_list_merges_unflushed_writes(backend: Backend, options: dict[str, Any]) -> None:
    """Half the keys committed, then changes not yet flushed: list sees the result."""
    storage = backend.storage("ns", "o")
    await storage.put({key: index for index, key in enumerate(KEYS) if index % 2 == 0})
    storage.put({key: index for index, key in enumerate(KEYS) if index % 2 == 1})
    storage.delete(["ab", "z", "a"])
    storage.put("a", KEYS.index("a"))
    global_keys = [key for key in KEYS if key not in ("ab", "z")]
    got = await storage.list(**options)
    want = [
        key
        for key in _expected(
            options.get("prefix"),
            options.get("start"),
            options.get("end"),
            None,
            options.get("reverse", False),
        )
        if key in global_keys
    ]
    limit = options.get("limit")
    assert list(got) == (want if limit is None else want[:limit])
    await storage.sync()
    assert await storage.list(**options) == got


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"limit": 0}, "positive int"),
        ({"limit": -1}, "positive int"),
        ({"limit": 1.5}, "positive int"),
        ({"prefix": 1}, "takes a str"),
        ({"start": b"a"}, "takes a str"),
    ],
)
async def test_list_rejects_bad_options(
    backend: Backend, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(StorageError, match=message):
        await backend.storage("ns", "o").list(**options)


# -- delete_all --------------------------------------------------------------------


async def test_delete_all(backend: Backend) -> None:
    storage = backend.storage("ns", "o")
    await storage.put({"a": 1, "b": 2})
    await storage.set_alarm(1000.0)
    await storage.delete_all()
    assert await storage.list() == {}
    assert await storage.get("a") is None
    assert await storage.get_alarm() == 1000.0  # the alarm is not a key


async def test_delete_all_then_put_before_flush(backend: Backend) -> None:
    storage = backend.storage("ns", "o")
    await storage.put({"a": 1, "b": 2})
    storage.delete_all()
    storage.put("c", 3)
    assert await storage.list() == {"c": 3}
    assert await storage.get(["a", "c"]) == {"c": 3}
    await storage.sync()
    assert await storage.list() == {"c": 3}


# -- transactions ------------------------------------------------------------------


async def test_transaction_commits_at_exit(backend: Backend) -> None:
    storage = backend.storage("ns", "o")
    await storage.put({"keep": 1, "drop": 2})
    async with storage.transaction() as txn:
        await txn.put("new", 3)
        txn.put({"more": 4})
        assert await txn.delete("drop") is True
        assert await storage.get("new") is None  # not visible outside before commit
    assert await storage.list() == {"keep": 1, "more": 4, "new": 3}


async def test_transaction_sees_its_own_writes(backend: Backend) -> None:
    storage = backend.storage("ns", "o")
    await storage.put({"a": 1, "b": 2, "c": 3})
    async with storage.transaction() as txn:
        txn.put("b", 20)
        txn.put("d", 4)
        assert await txn.delete(["a", "x"]) == 1
        assert await txn.get("b") == 20
        assert await txn.get("a") is None
        assert await txn.get(["a", "b", "d"]) == {"b": 20, "d": 4}
        assert await txn.list() == {"b": 20, "c": 3, "d": 4}
        assert await txn.list(reverse=True, limit=2) == {"d": 4, "c": 3}
        assert await txn.delete("d") is True  # put in this transaction
        assert await txn.delete("a") is False  # deleted in this transaction
    assert await storage.list() == {"b": 20, "c": 3}


async def test_transaction_exception_writes_nothing(backend: Backend) -> None:
    storage = backend.storage("ns", "o")
    await storage.put("a", 1)
    with pytest.raises(RuntimeError, match="boom"):
        async with storage.transaction() as txn:
            txn.put("a", 2)
            txn.put("b", 2)
            txn.delete("a")
            raise RuntimeError("boom")
    assert await storage.list() == {"a": 1}


async def test_transaction_explicit_rollback_writes_nothing(backend: Backend) -> None:
    storage = backend.storage("ns", "o")
    async with storage.transaction() as txn:
        txn.put("a", 1)
        txn.rollback()
        with pytest.raises(StorageError, match="rolled back"):
            txn.put("b", 2)
    assert await storage.list() == {}


async def test_transaction_is_not_usable_after_its_block(backend: Backend) -> None:
    storage = backend.storage("ns", "o")
    async with storage.transaction() as txn:
        pass
    with pytest.raises(StorageError, match="over"):
        txn.put("a", 1)


async def test_transaction_validates_values_at_put(backend: Backend) -> None:
    storage = backend.storage("ns", "o")
    async with storage.transaction() as txn:
        with pytest.raises(StorageError, match="'bad'.*set"):
            txn.put("bad", {1, 2})
        txn.put("good", 1)
    assert await storage.list() == {"good": 1}


# -- validation --------------------------------------------------------------------


class Thing:
    pass


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param({1, 2}, "key 'k'.*type set", id="set"),
        pytest.param((1, 2), "key 'k'.*type tuple", id="tuple"),
        pytest.param(b"x", "key 'k'.*type bytes", id="bytes"),
        pytest.param(Thing(), "key 'k'.*type Thing", id="object"),
        pytest.param(datetime.now(UTC), "key 'k'.*type datetime", id="datetime"),
        pytest.param(math.nan, "key 'k'.*nan", id="nan"),
        pytest.param(math.inf, "key 'k'.*inf", id="inf"),
        pytest.param({1: "a"}, "key 'k'.*key of type int", id="int-dict-key"),
        pytest.param(
            {"a": [1, {"b": {3}}]}, r"key 'k'.*\['a'\]\[1\]\['b'\] is of type set", id="nested"
        ),
        pytest.param("\ud800", "key 'k'.*lone surrogate", id="lone-surrogate"),
    ],
)
async def test_put_rejects_values_that_are_not_json(
    backend: Backend, value: object, message: str
) -> None:
    storage = backend.storage("ns", "o")
    with pytest.raises(StorageError, match=message):
        storage.put("k", value)  # raises at once, not when awaited
    with pytest.raises(StorageError, match=message):
        storage.put({"ok": 1, "k": value})
    assert await storage.list() == {}  # a bad entry writes none of its siblings


async def test_put_rejects_a_value_that_contains_itself(backend: Backend) -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(StorageError, match="key 'k'.*nests deeper"):
        backend.storage("ns", "o").put("k", loop)


@pytest.mark.parametrize("key", ["", 1, None, b"k", "\udc00"])
async def test_bad_keys(backend: Backend, key: Any) -> None:
    storage = backend.storage("ns", "o")
    with pytest.raises(StorageError, match="key"):
        storage.put(key, 1)
    with pytest.raises(StorageError, match="key"):
        storage.delete(key)
    with pytest.raises(StorageError, match="key"):
        await storage.get(key)
    with pytest.raises(StorageError, match="key"):
        await storage.get(["ok", key])


async def test_put_needs_a_value(backend: Backend) -> None:
    storage = backend.storage("ns", "o")
    with pytest.raises(StorageError, match="needs a value"):
        storage.put("k")  # type: ignore[call-overload]
    with pytest.raises(StorageError, match="takes no value"):
        storage.put({"k": 1}, 2)  # type: ignore[call-overload]


@pytest.mark.parametrize(("namespace", "object_id"), [("", "o"), ("ns", ""), ("ns", 5)])
async def test_bad_names(backend: Backend, namespace: Any, object_id: Any) -> None:
    with pytest.raises(StorageError, match="non-empty str"):
        backend.storage(namespace, object_id)


# -- alarms ------------------------------------------------------------------------


async def test_alarm_set_get_delete(backend: Backend) -> None:
    storage = backend.storage("ns", "o")
    assert await storage.get_alarm() is None
    await storage.set_alarm(1_700_000_000.5)
    assert await storage.get_alarm() == 1_700_000_000.5
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    await storage.set_alarm(when)
    assert await storage.get_alarm() == when.timestamp()
    await storage.set_alarm(5)
    assert await storage.get_alarm() == 5.0
    await storage.delete_alarm()
    assert await storage.get_alarm() is None
    await storage.delete_alarm()  # no alarm: fine


@pytest.mark.parametrize(
    ("when", "message"),
    [
        (datetime(2030, 1, 1), "aware datetime, got naive"),
        ("2030-01-01", "got str"),
        (math.nan, "got float"),
        (True, "got bool"),
    ],
)
async def test_set_alarm_rejects(backend: Backend, when: Any, message: str) -> None:
    with pytest.raises(StorageError, match=message):
        backend.storage("ns", "o").set_alarm(when)


async def test_pending_alarms(backend: Backend) -> None:
    await backend.storage("ns", "a").set_alarm(30.0)
    await backend.storage("ns", "b").set_alarm(10.0)
    await backend.storage("other", "a").set_alarm(20.0)
    gone = backend.storage("ns", "gone")
    await gone.set_alarm(5.0)
    await gone.delete_alarm()
    assert await backend.pending_alarms() == [
        ("ns", "b", 10.0),
        ("other", "a", 20.0),
        ("ns", "a", 30.0),
    ]
    backend.storage("ns", "c").set_alarm(1.0)  # not yet flushed: still listed
    backend.storage("ns", "a").delete_alarm()
    assert await backend.pending_alarms() == [
        ("ns", "c", 1.0),
        ("ns", "b", 10.0),
        ("other", "a", 20.0),
    ]
    await backend.sync()


async def test_alarm_read_your_writes(backend: Backend) -> None:
    storage = backend.storage("ns", "o")
    storage.set_alarm(42.0)
    assert await storage.get_alarm() == 42.0
    storage.delete_alarm()
    assert await storage.get_alarm() is None
    await storage.sync()
    assert await storage.get_alarm() is None


# -- group commit and read-your-writes ---------------------------------------------


async def test_reads_see_writes_before_they_are_flushed(backend: Backend) -> None:
    storage = backend.storage("ns", "o")
    await storage.put({"old": 1, "gone": 2})
    commits = backend.commits
    storage.put("new", 3)
    storage.delete("gone")
    assert backend.commits == commits  # nothing awaited a write: nothing committed yet
    assert await storage.get("new") == 3
    assert await storage.get("gone") is None
    assert await storage.get(["old", "new", "gone"]) == {"old": 1, "new": 3}
    assert await storage.list() == {"new": 3, "old": 1}
    await storage.sync()
    assert backend.commits == commits + 1
    assert await storage.list() == {"new": 3, "old": 1}


async def test_writes_with_no_await_between_commit_together(backend: Backend) -> None:
    storage = backend.storage("ns", "o")
    other = backend.storage("ns", "p")
    commits = backend.commits
    first = storage.put("a", 1)
    other.put("b", 2)
    storage.delete("zz")
    storage.set_alarm(9.0)
    await first
    assert backend.commits == commits + 1
    await storage.sync()  # nothing left: no new commit
    assert backend.commits == commits + 1
    assert await other.get("b") == 2


class _Unwritable:
    """An op no driver can apply: reading what it does fails, as a full disk would."""

    def __init__(self, op: Op) -> None:
        self.namespace, self.object_id, self.key = op.namespace, op.object_id, op.key
        self.value, self.at = op.value, op.at

    @property
    def kind(self) -> OpKind:
        raise OSError(28, "No space left on device")


async def test_a_failed_batch_writes_none_of_it(
    backend: Backend, driver: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The atomicity of a batch: a fault in its last op undoes the ones before."""
    storage = backend.storage("ns", "o")
    await storage.put({"a": 0, "doomed": 0})
    real_apply = driver.apply
    faults = 0

    def apply_with_a_fault(ops: list[Op]) -> list[int]:
        nonlocal faults
        if any(op.key == "poison" for op in ops):
            faults += 1
            ops = [_Unwritable(op) if op.key == "poison" else op for op in ops]  # type: ignore[misc]
        return real_apply(ops)

    monkeypatch.setattr(driver, "apply", apply_with_a_fault)
    first = storage.put("a", 1)
    second = storage.put("b", 2)
    backend.storage("ns", "other").put("c", 3)
    third = storage.delete("doomed")  # applied before the fault, then undone
    fourth = storage.put("poison", 4)
    for ack in (first, second, third, fourth):
        with pytest.raises(StorageError, match="No space left on device"):
            await ack
    assert faults == 1
    assert await storage.list() == {"a": 0, "doomed": 0}  # the whole batch is gone
    assert await backend.storage("ns", "other").list() == {}
    monkeypatch.setattr(driver, "apply", real_apply)
    await storage.put("d", 4)  # the next batch commits: no dead flusher
    assert await storage.list() == {"a": 0, "d": 4, "doomed": 0}


async def test_a_batch_applies_its_ops_in_order(backend: Backend) -> None:
    storage = backend.storage("ns", "o")
    await storage.put({"kept": 0, "cleared": 0})
    storage.put("k", 1)
    gone = storage.delete("k")
    storage.delete_all()
    storage.put("after", 2)
    again = storage.put("after", 3)
    assert await gone is True
    await again
    assert await storage.list() == {"after": 3}
    assert await backend.storage("ns", "o").get(["k", "kept", "after"]) == {"after": 3}


async def test_sync_reports_a_failed_write_nobody_awaited(
    backend: Backend, driver: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = backend.storage("ns", "o")

    def broken(*args: Any) -> list[int]:
        raise StorageError("injected failure")

    monkeypatch.setattr(driver, "apply", broken)
    storage.put("a", 1)
    with pytest.raises(StorageError, match="injected failure"):
        await backend.storage("ns", "other").put("b", 2)  # drives the batch, sees the error
    with pytest.raises(StorageError, match="injected failure"):
        await storage.sync()  # the object whose write was lost hears about it
    await storage.sync()  # reported once
    assert await storage.get("a") is None
    monkeypatch.undo()


async def test_concurrent_writers_share_commits(backend: Backend) -> None:
    async def writer(index: int) -> None:
        storage = backend.storage("ns", f"o{index % 7}")
        for step in range(5):
            await storage.put(f"k{index}-{step}", [index, step])

    commits = backend.commits
    async with anyio.create_task_group() as group:
        for index in range(100):
            group.start_soon(writer, index)
    assert backend.commits - commits < 100  # 500 acknowledged writes, far fewer commits
    for index in range(100):
        storage = backend.storage("ns", f"o{index % 7}")
        assert await storage.get(f"k{index}-4") == [index, 4]


async def test_a_cancelled_waiter_does_not_stop_the_commit(backend: Backend) -> None:
    storage = backend.storage("ns", "o")
    with anyio.CancelScope() as scope:
        ack = storage.put("a", 1)
        scope.cancel()
        await ack
        await anyio.sleep(1)  # cancelled here at the latest
    assert scope.cancelled_caught
    await storage.put("b", 2)
    assert await storage.list() == {"a": 1, "b": 2}


async def test_a_cancelled_driver_hands_the_batch_over(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The waiter that was to commit the next batch is cancelled: another one does."""
    engine = backend._engine
    storage = backend.storage("ns", "o")
    gate = anyio.Event()
    real_call = engine._call

    async def gated_call(fn: Any, *args: Any) -> Any:
        if fn == engine._driver.apply:
            await gate.wait()  # hold batch 1 in flight
        return await real_call(fn, *args)

    monkeypatch.setattr(engine, "_call", gated_call)
    done: list[str] = []
    claimant = anyio.CancelScope()

    async def await_ack(name: str, ack: Awaitable[None], scope: anyio.CancelScope) -> None:
        with scope:
            await ack
            done.append(name)

    async with anyio.create_task_group() as group:
        group.start_soon(await_ack, "first", storage.put("a", 1), anyio.CancelScope())
        await anyio.wait_all_tasks_blocked()  # batch 1 is in flight
        second = storage.put("b", 2)
        group.start_soon(await_ack, "claimant", second, claimant)  # to commit batch 2
        await anyio.wait_all_tasks_blocked()
        group.start_soon(await_ack, "other", second, anyio.CancelScope())
        await anyio.wait_all_tasks_blocked()
        claimant.cancel()
        await anyio.wait_all_tasks_blocked()
        gate.set()
    assert claimant.cancelled_caught
    assert sorted(done) == ["first", "other"]
    assert await storage.list() == {"a": 1, "b": 2}
    assert backend.commits == 2


async def test_reads_see_writes_while_their_commit_is_in_flight(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = backend._engine
    storage = backend.storage("ns", "o")
    await storage.put({"old": 0, "gone": 0})
    gate = anyio.Event()
    real_call = engine._call

    async def gated_call(fn: Any, *args: Any) -> Any:
        if fn == engine._driver.apply:
            await gate.wait()
        return await real_call(fn, *args)

    monkeypatch.setattr(engine, "_call", gated_call)
    async with anyio.create_task_group() as group:
        storage.put("new", 1)
        storage.delete("gone")
        group.start_soon(storage.sync)
        await anyio.wait_all_tasks_blocked()  # the batch is in flight
        storage.put("newer", 2)  # the next batch
        assert await storage.list() == {"new": 1, "newer": 2, "old": 0}
        assert await storage.get(["gone", "new"]) == {"new": 1}
        gate.set()
    assert await storage.list() == {"new": 1, "newer": 2, "old": 0}
    await storage.sync()
    assert await storage.list() == {"new": 1, "newer": 2, "old": 0}


async def test_an_ack_may_be_dropped_or_awaited_twice(backend: Backend) -> None:
    storage = backend.storage("ns", "o")
    storage.put("dropped", 1)  # no warning: the ack is not a coroutine
    ack = storage.delete("dropped")
    assert await ack is True
    assert await ack is True
    assert await storage.get("dropped") is None


async def test_closed_backend_refuses_work(backend: Backend) -> None:
    storage = backend.storage("ns", "o")
    storage.put("a", 1)
    await backend.aclose()
    await backend.aclose()  # idempotent
    with pytest.raises(StorageError, match="closed"):
        storage.put("b", 2)
    with pytest.raises(StorageError, match="closed"):
        await storage.get("a")


async def test_storage_protocol_is_satisfied(backend: Backend) -> None:
    storage: Storage = backend.storage("ns", "o")
    assert isinstance(storage, Storage)
    assert repr(storage) == "<ObjectStorage ns/o>"
