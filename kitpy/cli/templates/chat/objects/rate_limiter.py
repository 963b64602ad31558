"""RateLimiter: one per client address, shared by every room.

It allows one action per ``INTERVAL`` seconds on average, with a grace of ``GRACE``
seconds so that a burst of a few actions passes (``GRACE / INTERVAL + 1`` in a row
from rest: five with the defaults). A rejected action is not counted, so a client
that keeps trying still gets one through every ``INTERVAL`` seconds.

The rooms call it through a stub (RPC), never from the internet:

- ``await limiter.acquire()``: try to perform an action; returns
  ``{"allowed": bool, "retry_after": seconds}``.
- ``await limiter.status()``: the same answer without performing anything.

The state lives in memory only: after ``GRACE + INTERVAL`` idle seconds it would be
back to "allow" anyway, and an object is only evicted after being idle.
"""

from __future__ import annotations

import time

from kitpy import DurableObject

#: Seconds per action, on average.
INTERVAL = 5.0
#: How far ahead of now the budget may be spent before actions are refused.
GRACE = 20.0


class RateLimiter(DurableObject):
    def __init__(self, state, env):
        super().__init__(state, env)
        # The time at which the budget is back to full; in the past means "at rest".
        self.next_allowed = 0.0

    def acquire(self):
        """Spend one action if the budget allows it."""
        return self._verdict(spend=True)

    def status(self):
        """Whether an action would be allowed now, without spending one."""
        return self._verdict(spend=False)

    def _verdict(self, *, spend):
        now = time.monotonic()
        self.next_allowed = max(now, self.next_allowed)
        allowed = self.next_allowed - now <= GRACE
        if spend and allowed:
            self.next_allowed += INTERVAL
        retry_after = max(0.0, self.next_allowed - now - GRACE)
        return {"allowed": allowed, "retry_after": round(retry_after, 3)}
