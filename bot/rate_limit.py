"""Per-user message limits: one user must not flood the bot for everyone.

A token bucket per (channel, user): `burst` messages at once, refilled at
`per_minute`. Over the limit the first message gets a polite reply and later
ones none (a reply to each would itself be a flood), until the bucket refills.
Buckets live in the server process: with `--workers N` a user may get up to N
times the rate, which still stops a flood.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    at: float
    warned: bool = False


class UserRateLimiter:
    # Full buckets are dropped when there are more than this many.
    MAX_BUCKETS = 10_000

    def __init__(
        self, *, burst: int, per_minute: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.burst = burst
        self.per_s = per_minute / 60.0
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> str:
        """ "ok" (go ahead), "warn" (refused: tell the user) or "quiet" (refused, already told)."""
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self.MAX_BUCKETS:
                    self._prune(now)
                bucket = self._buckets[key] = _Bucket(float(self.burst), now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.per_s)
            bucket.at = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                bucket.warned = False
                return "ok"
            if bucket.warned:
                return "quiet"
            bucket.warned = True
            return "warn"

    def _prune(self, now: float) -> None:
        for key in [
            k
            for k, b in self._buckets.items()
            if b.tokens + (now - b.at) * self.per_s >= self.burst
        ]:
            del self._buckets[key]
