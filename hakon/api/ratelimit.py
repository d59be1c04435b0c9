"""Token-bucket rate limiting per token subject.

Each bucket holds up to `burst` requests and refills at `rate` per second.
The decision carries what the `X-RateLimit-*` headers report: the bucket size,
whole requests left, and the unix time at which the bucket will be full again.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: int
    retry_after: float

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"x-ratelimit-limit", str(self.limit).encode()),
            (b"x-ratelimit-remaining", str(self.remaining).encode()),
            (b"x-ratelimit-reset", str(self.reset_at).encode()),
        ]


class TokenBucketLimiter:
    MAX_KEYS = 100_000

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: str, now: float | None = None) -> Decision:
        now = time.time() if now is None else now
        with self._lock:
            tokens, updated = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + max(0.0, now - updated) * self.rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            if len(self._buckets) >= self.MAX_KEYS and key not in self._buckets:
                self._forget_full(now)
            self._buckets[key] = (tokens, now)
        retry_after = 0.0 if allowed else (1.0 - tokens) / self.rate
        return Decision(
            allowed=allowed,
            limit=self.burst,
            remaining=int(tokens),
            reset_at=math.ceil(now + (self.burst - tokens) / self.rate),
            retry_after=retry_after,
        )

    def _forget_full(self, now: float) -> None:
        full = [
            k
            for k, (tokens, updated) in self._buckets.items()
            if tokens + (now - updated) * self.rate >= self.burst
        ]
        for k in full:
            del self._buckets[k]
