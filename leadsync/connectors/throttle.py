"""Client-side pacing, so that 429s are rare rather than the pacing mechanism.

`WindowLimiter` keeps at most N requests in any rolling window (HubSpot's ten-secondly limit,
its five searches a second); `ConcurrencyLimiter` bounds requests in flight (Salesforce's
concurrent long-request limit). Both are thread-safe; time and sleep can be passed in.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class WindowLimiter:
    def __init__(
        self,
        limit: int,
        seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if limit < 1:
            raise ValueError("a window limiter needs a limit of at least 1")
        self.limit = limit
        self.seconds = seconds
        self._clock = clock
        self._sleep = sleep
        self._stamps: deque[float] = deque()
        self._lock = threading.Lock()
        self.waited = 0.0  # total seconds spent waiting, for metrics and benchmarks

    def acquire(self) -> None:
        """Wait until one more request fits the window, then count it."""
        while True:
            with self._lock:
                now = self._clock()
                while self._stamps and self._stamps[0] <= now - self.seconds:
                    self._stamps.popleft()
                if len(self._stamps) < self.limit:
                    self._stamps.append(now)
                    return
                delay = self._stamps[0] + self.seconds - now
            self.waited += delay
            self._sleep(delay)


class ConcurrencyLimiter:
    def __init__(self, limit: int) -> None:
        self._slots = threading.BoundedSemaphore(limit)

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self._slots:
            yield
