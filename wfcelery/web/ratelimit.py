"""Failed logins counted per client address, in a sliding window, in the server process.

An address that failed ``limit`` times within ``window`` seconds waits until its oldest failure of them is
``window`` old; meanwhile every request from it is answered 429 with ``Retry-After`` -- a right password
too, or guessing would go on at full speed with only the answers slowed. A successful login clears the
address's count. The table holds at most ``max_addresses`` addresses (the least recently seen go first),
so a flood of addresses cannot grow the server's memory.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

#: Client addresses remembered at most.
MAX_ADDRESSES = 10_000


class FailureLimiter:
    """Sliding-window count of failures per key (a client address). Used from the event loop only."""

    def __init__(
        self,
        limit: int,
        window: float,
        max_addresses: int = MAX_ADDRESSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_addresses = max_addresses
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, address: str) -> int | None:
        """Whole seconds ``address`` must wait before its next attempt, or None when it may try now."""
        times = self._failures.get(address)
        if not times:
            return None
        now = self.clock()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[address]
            return None
        if len(times) < self.limit:
            return None
        return max(1, math.ceil(times[0] + self.window - now))

    def failed(self, address: str) -> None:
        times = self._failures.get(address)
        if times is None:
            times = self._failures[address] = deque(maxlen=self.limit)
        times.append(self.clock())
        self._failures.move_to_end(address)
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)
