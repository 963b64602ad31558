"""A counter that records each construction (COUNTER_LOG) and names its node and instance."""

import asyncio
import os
import time
import uuid

from kitpy import DurableObject


class Counter(DurableObject):
    def __init__(self, state, env):
        super().__init__(state, env)
        self.node = os.environ.get("KITPY_NODE", "")
        self.token = uuid.uuid4().hex
        self._log(f"{state.id} {self.node} {self.token}")

    @staticmethod
    def _log(line):
        log = os.environ.get("COUNTER_LOG")
        if log:
            # One short O_APPEND write per line: lines of concurrent processes do not mix.
            fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, (line + "\n").encode())
            finally:
                os.close(fd)

    async def increment(self):
        n = (await self.state.storage.get("n") or 0) + 1
        await self.state.storage.put("n", n)
        return {"n": n, "node": self.node, "token": self.token}

    async def slow_increment(self, delay):
        """An increment whose write comes ``delay`` seconds after its read."""
        n = (await self.state.storage.get("n") or 0) + 1
        self._log(f"slow {self.state.id} {n}")
        await asyncio.sleep(delay)
        await self.state.storage.put("n", n)
        return {"n": n, "node": self.node, "token": self.token}

    async def who(self):
        return {"n": await self.state.storage.get("n") or 0, "node": self.node, "token": self.token}

    async def arm(self, delay):
        await self.state.storage.set_alarm(time.time() + delay)
        return self.node

    async def alarm(self):
        fired = await self.state.storage.get("fired") or []
        await self.state.storage.put("fired", [*fired, self.node])

    async def fired(self):
        return {
            "fired": await self.state.storage.get("fired") or [],
            "alarm": await self.state.storage.get_alarm(),
        }
