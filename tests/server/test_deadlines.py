"""kitpy.server.deadlines: one loop timer serves many owners, in deadline order."""

from __future__ import annotations

import gc

import anyio
import pytest

from kitpy.server.deadlines import deadlines


class Owner:
    def __init__(self, name: str, calls: list[str]) -> None:
        self.name = name
        self.calls = calls

    def deadline_reached(self) -> None:
        self.calls.append(self.name)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_owners_are_called_in_deadline_order_once(anyio_backend: str) -> None:
    calls: list[str] = []
    clock = deadlines()
    assert deadlines() is clock
    now = clock.loop.time()
    late, early, middle = Owner("late", calls), Owner("early", calls), Owner("middle", calls)
    clock.add(now + 0.06, late)
    clock.add(now + 0.01, early)
    clock.add(now + 0.03, middle)
    await anyio.sleep(0.1)
    assert calls == ["early", "middle", "late"]


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_an_owner_is_held_weakly_and_may_add_again(anyio_backend: str) -> None:
    calls: list[str] = []
    clock = deadlines()
    now = clock.loop.time()

    class Again(Owner):
        def deadline_reached(self) -> None:
            super().deadline_reached()
            if len(self.calls) < 3:
                clock.add(clock.loop.time() + 0.005, self)

    gone = Owner("gone", calls)
    again = Again("again", calls)
    clock.add(now + 0.01, gone)
    clock.add(now + 0.01, again)
    del gone
    gc.collect()
    await anyio.sleep(0.1)
    assert calls == ["again", "again", "again"]
