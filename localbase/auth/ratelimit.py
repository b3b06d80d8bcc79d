"""A sliding-window request counter, kept in memory (GoTrue keeps its limits in memory too)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable

# Forget the oldest keys beyond this many so that a flood of distinct keys stays bounded.
MAX_KEYS = 10_000


class RateLimiter:
    """At most ``limit`` hits per key within any ``window`` seconds."""

    def __init__(
        self, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._hits: dict[Hashable, deque[float]] = {}

    def hit(self, key: Hashable) -> bool:
        """Count one request for ``key``; False if it is over the limit (and not counted)."""
        now = self._clock()
        hits = self._hits.pop(key, None) or deque()
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        allowed = len(hits) < self.limit
        if allowed:
            hits.append(now)
        self._hits[key] = hits  # re-inserted last: dict order is least recently used first
        while len(self._hits) > MAX_KEYS:
            del self._hits[next(iter(self._hits))]
        return allowed
