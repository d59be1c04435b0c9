"""The query service: the engine behind a concurrency bound, built from settings.

Queries run in worker threads (numpy releases the GIL for the heavy parts),
at most `query_max_concurrency` at once, so a burst of dashboards cannot take
every core from ingest; a query that cannot start before its timeout fails
like one that ran too long.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from hakon.config import Settings
from hakon.errors import QueryTimeout
from hakon.query.engine import Engine, QueryOptions, Result
from hakon.store.interface import Reader

T = TypeVar("T")


def concurrency_from(setting: int) -> int:
    """-1 (the default): one query per core but one, at least one."""
    if setting > 0:
        return setting
    return max(1, (os.cpu_count() or 1) - 1)


def options_from(settings: Settings) -> QueryOptions:
    return QueryOptions(
        lookback_ms=int(settings.query_lookback_delta * 1000),
        timeout_s=settings.query_timeout,
        max_series=settings.query_max_series,
        max_samples=settings.query_max_samples,
        max_points=settings.query_max_points,
        rollup_min_span_ms=int(settings.query_rollup_min_span * 1000),
    )


class QueryService:
    def __init__(self, reader: Reader, options: QueryOptions, max_concurrency: int) -> None:
        self.reader = reader
        self.engine = Engine(reader, options)
        self.options = options
        self._slots = threading.BoundedSemaphore(max_concurrency)

    def _run(self, timeout_s: float | None, fn: Callable[[float], T]) -> T:
        budget = (
            self.options.timeout_s if timeout_s is None else min(timeout_s, self.options.timeout_s)
        )
        started = time.monotonic()
        if not self._slots.acquire(timeout=budget):
            raise QueryTimeout(
                f"no query slot became free within {budget:g}s "
                "(setting query_max_concurrency); retry later"
            )
        try:
            return fn(budget - (time.monotonic() - started))
        finally:
            self._slots.release()

    # Queries touching at most this many series x steps evaluate on the caller's
    # thread: a thread hop costs more than their whole evaluation (~1 ms of Python).
    SMALL_POINTS = 5_000

    def is_small(self, query: str, steps: int) -> bool:
        points = self.engine.estimated_points(query, steps)
        return points is not None and points <= self.SMALL_POINTS

    def instant(self, query: str, time_ms: int, timeout_s: float | None = None) -> Result:
        return self._run(timeout_s, lambda left: self.engine.instant(query, time_ms, left))

    def range(
        self, query: str, start_ms: int, end_ms: int, step_ms: int, timeout_s: float | None = None
    ) -> Result:
        return self._run(
            timeout_s, lambda left: self.engine.range(query, start_ms, end_ms, step_ms, left)
        )
