"""The head: recent samples in memory, readable the moment they are durable.

Appends land in a tail of chunks (cheap: a list append). When the tail grows
past `run_rows`, it is sealed and sorted into a run, sorted by (series,
timestamp) and deduplicated, by a background thread (numpy sorts release the
GIL, so this uses the second core). Reads binary-search the runs and scan the
small tail. Every array is immutable once added, so a snapshot is just the
current lists.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hakon.store.merge import Part, merge_parts, ranges_for, run_starts, spans


class Run:
    """Sorted, deduplicated samples, with a directory of their series.

    A read binary-searches its ids in the directory (one entry per series, ~1/10 of
    the rows and small enough to stay in cache) instead of twice in the rows: for
    1,000 ids in a run of 1 M rows that took 4x less time. Runs whose time span
    misses the read are skipped whole; in the head they are cut in arrival order,
    so a read of the last hour touches the last hour's runs.
    """

    __slots__ = ("ids", "max_ts", "min_ts", "series", "starts", "timestamps", "values")

    def __init__(self, series: np.ndarray, timestamps: np.ndarray, values: np.ndarray) -> None:
        self.series, self.timestamps, self.values = series, timestamps, values
        first = np.flatnonzero(run_starts(series))
        self.ids: np.ndarray | None = None
        self.starts: np.ndarray | None = None
        # A directory only where it is much smaller than the rows: with a million
        # series scraped about once per run it would be as long, and add 16 B to the
        # 24 of each sample (300 B per series over the 20 runs of 20 scrapes).
        if len(first) * 2 <= len(series):
            self.ids = series[first]
            self.starts = np.append(first, len(series))
        self.min_ts = int(timestamps.min()) if len(timestamps) else 0
        self.max_ts = int(timestamps.max()) if len(timestamps) else -1

    def select(self, ids: np.ndarray, start: int, end: int) -> Part | None:
        if not len(self.series) or self.max_ts < start or self.min_ts > end:
            return None
        if self.ids is None or self.starts is None:
            rows = ranges_for(self.series, ids)
        else:
            pos = np.searchsorted(self.ids, ids)
            pos = pos[self.ids[np.minimum(pos, len(self.ids) - 1)] == ids]
            rows = spans(self.starts[pos], self.starts[pos + 1])
        ts = self.timestamps[rows]
        in_range = (ts >= start) & (ts <= end)
        rows = rows[in_range]
        return self.series[rows], ts[in_range], self.values[rows]


@dataclass(frozen=True)
class HeadSnapshot:
    runs: tuple[Run, ...]
    chunks: tuple[Part, ...]  # unsorted, oldest first; newer than every run

    def read_runs(self, ids: np.ndarray, start: int, end: int) -> list[Part]:
        """The parts sorted by (series, timestamp) and deduplicated."""
        return [p for p in (run.select(ids, start, end) for run in self.runs) if p is not None]

    def read_chunks(self, ids: np.ndarray, start: int, end: int) -> list[Part]:
        """The parts in arrival order: a series' rows need not be together or in time
        order, and a later row wins a repeated timestamp."""
        parts: list[Part] = []
        if not self.chunks:
            return parts
        # Unsorted chunks: a bitmap on the ids' low 16 bits (ids are hashes) passes
        # about len(ids) / 65536 of other series; only those get a binary search.
        bitmap = np.zeros(1 << 16, dtype=bool)
        bitmap[ids & 0xFFFF] = True
        for s, t, v in self.chunks:
            rows = np.flatnonzero(bitmap[s & 0xFFFF])
            if not len(rows):
                continue
            cand = s[rows]
            pos = np.searchsorted(ids, cand)
            pos[pos == len(ids)] = 0
            tc = t[rows]
            rows = rows[(ids[pos] == cand) & (tc >= start) & (tc <= end)]
            if len(rows):
                parts.append((s[rows], t[rows], v[rows]))
        return parts

    def all_parts(self) -> list[Part]:
        return [(r.series, r.timestamps, r.values) for r in self.runs] + list(self.chunks)


class Head:
    def __init__(self, run_rows: int = 1 << 20, wake: threading.Event | None = None) -> None:
        self.run_rows = run_rows
        self._lock = threading.Lock()
        self._runs: list[Run] = []
        self._sealed: list[list[Part]] = []  # groups waiting to become runs, oldest first
        self._tail: list[Part] = []
        self._tail_rows = 0
        self.samples = 0
        self.min_ts: int | None = None
        self.max_ts: int | None = None
        self.first_insert: float | None = None
        self.seal_ready = wake if wake is not None else threading.Event()

    def insert(self, series: np.ndarray, ts: np.ndarray, values: np.ndarray, now: float) -> None:
        if not len(ts):
            return
        lo, hi = int(ts.min()), int(ts.max())
        with self._lock:
            self._tail.append((series, ts, values))
            self._tail_rows += len(ts)
            self.samples += len(ts)
            self.min_ts = lo if self.min_ts is None else min(self.min_ts, lo)
            self.max_ts = hi if self.max_ts is None else max(self.max_ts, hi)
            if self.first_insert is None:
                self.first_insert = now
            if self._tail_rows >= self.run_rows:
                self._sealed.append(self._tail)
                self._tail, self._tail_rows = [], 0
                self.seal_ready.set()

    def seal_pending(self, stop: Callable[[], bool] = lambda: False) -> None:
        """Sort sealed chunk groups into runs (called by the maintenance thread)."""
        while not stop():
            with self._lock:
                if not self._sealed:
                    return
                group = self._sealed[0]
            merged = merge_parts(group)
            run = Run(merged.series, merged.timestamps, merged.values)
            with self._lock:
                self._sealed.pop(0)
                self._runs.append(run)

    def snapshot(self) -> HeadSnapshot:
        with self._lock:
            chunks = [c for group in self._sealed for c in group] + self._tail
            return HeadSnapshot(tuple(self._runs), tuple(chunks))

    def __len__(self) -> int:
        return self.samples
