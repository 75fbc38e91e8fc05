"""Request-rate limits as the CRMs enforce them: rolling windows and daily allowances."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

Clock = Callable[[], float]


class RollingWindow:
    """At most `limit` requests in any `seconds`-long window (HubSpot's ten-secondly limit)."""

    def __init__(self, limit: int, seconds: float, clock: Clock) -> None:
        self.limit = limit
        self.seconds = seconds
        self._clock = clock
        self._stamps: deque[float] = deque()

    def _expire(self, now: float) -> None:
        while self._stamps and self._stamps[0] <= now - self.seconds:
            self._stamps.popleft()

    def try_acquire(self) -> bool:
        now = self._clock()
        self._expire(now)
        if len(self._stamps) >= self.limit:
            return False
        self._stamps.append(now)
        return True

    def remaining(self) -> int:
        self._expire(self._clock())
        return max(0, self.limit - len(self._stamps))

    def seconds_until_free(self) -> float:
        now = self._clock()
        self._expire(now)
        if len(self._stamps) < self.limit:
            return 0.0
        return max(0.0, self._stamps[0] + self.seconds - now)

    def clear(self) -> None:
        self._stamps.clear()


class DailyAllowance:
    """A request count over a trailing day, kept in one-minute buckets to stay small.

    Salesforce counts API requests over a rolling 24 hours; HubSpot resets at midnight. Both are
    modelled as the trailing 24 hours, the stricter of the two for a client that spreads work.
    """

    _BUCKET_SECONDS = 60.0
    _BUCKETS = 24 * 60

    def __init__(self, limit: int, clock: Clock) -> None:
        self.limit = limit
        self._clock = clock
        self._buckets: deque[tuple[int, int]] = deque()  # (bucket number, count)
        self._used = 0

    def _expire(self, bucket: int) -> None:
        while self._buckets and self._buckets[0][0] <= bucket - self._BUCKETS:
            self._used -= self._buckets.popleft()[1]

    def _bucket(self) -> int:
        return math.floor(self._clock() / self._BUCKET_SECONDS)

    def try_acquire(self) -> bool:
        bucket = self._bucket()
        self._expire(bucket)
        if self._used >= self.limit:
            return False
        if self._buckets and self._buckets[-1][0] == bucket:
            self._buckets[-1] = (bucket, self._buckets[-1][1] + 1)
        else:
            self._buckets.append((bucket, 1))
        self._used += 1
        return True

    @property
    def used(self) -> int:
        self._expire(self._bucket())
        return self._used

    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    def clear(self) -> None:
        self._buckets.clear()
        self._used = 0
