"""The seeds' native range endpoints: aligned buckets per series, from rollups when they fit.

A bucket is `[start, start + resolution)`, aligned to the resolution since the
epoch. When the resolution is a whole number of hours (or of 5 minutes) and the
aggregate is one a rollup carries (avg, min, max, sum, count, last), buckets are
combined from the store's 1 h (or 5 m) rollups: exact, and a 30-day view never
touches raw samples. Otherwise (p95, or resolutions such as 1m) raw samples are
read and bucketed here. Empty buckets are omitted from every answer.

docs/query.md lists which series each native metric is computed from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hakon.errors import InvalidRequest, NotFound, Unprocessable
from hakon.query.rangefuncs import quantile_of_segments
from hakon.store.interface import ROLLUP_RESOLUTIONS_MS, Reader, Rollups, Samples
from hakon.store.labels import METRIC_NAME, Labels, Matcher
from hakon.store.rollup import compute as compute_rollups

AGGREGATES = ("avg", "min", "max", "sum", "count", "last", "p95")
MAX_BUCKETS = 11_000


@dataclass
class Buckets:
    """Per series (rows) and bucket (columns): the aggregates of the samples in it."""

    labels: list[Labels]
    starts: np.ndarray  # int64 [B], ms
    count: np.ndarray  # [S, B]
    sum: np.ndarray
    min: np.ndarray
    max: np.ndarray
    last: np.ndarray
    last_ts: np.ndarray
    p95: np.ndarray | None = None
    source: str = "raw"  # raw, rollup_5m or rollup_1h

    def value(self, aggregate: str) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            if aggregate == "avg":
                return self.sum / self.count
            if aggregate == "p95":
                assert self.p95 is not None
                return self.p95
            return np.asarray(getattr(self, aggregate), dtype=np.float64)

    @property
    def present(self) -> np.ndarray:
        return self.count > 0

    def rate(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-second increase of counters between consecutive buckets' last samples.

        A drop counts as a reset (the new value is the increase). An approximation:
        resets inside a bucket are not seen; docs/query.md says so.
        """
        values = np.full(self.last.shape, np.nan)
        ok = np.zeros(self.last.shape, dtype=bool)
        for s in range(len(self.labels)):
            cols = np.flatnonzero(self.count[s] > 0)
            if len(cols) < 2:
                continue
            last, ts = self.last[s, cols], self.last_ts[s, cols]
            delta = np.diff(last)
            delta = np.where(delta < 0, last[1:], delta)
            seconds = np.diff(ts) / 1000.0
            values[s, cols[1:]] = delta / seconds
            ok[s, cols[1:]] = True
        return values, ok


def parse_aggregate(text: str | None) -> str:
    value = (text or "avg").strip().lower()
    if value not in AGGREGATES:
        raise InvalidRequest(
            f"aggregate must be one of {', '.join(AGGREGATES)}, not {text!r}", field="aggregate"
        )
    return value


def check_range(start: int, end: int, resolution: int, field: str = "resolution") -> None:
    if resolution < 1000:
        raise InvalidRequest("the resolution must be at least 1s", field=field)
    if end < start:
        raise InvalidRequest("end must not be before start", field="end")
    if (end - start) // resolution + 1 > MAX_BUCKETS:
        raise InvalidRequest(
            f"more than {MAX_BUCKETS} buckets: choose a coarser resolution", field=field
        )


def read_buckets(
    reader: Reader,
    matchers: Sequence[Matcher],
    start: int,
    end: int,
    resolution: int,
    *,
    want_p95: bool = False,
    max_series: int = 100_000,
) -> Buckets:
    """Bucket aggregates of every series matching `matchers` over [start, end]."""
    check_range(start, end, resolution)
    selected = reader.select(matchers)
    if len(selected) > max_series:
        raise Unprocessable(
            f"{len(selected)} series match, more than the limit of {max_series}; narrow the query"
        )
    ids = np.fromiter(selected, dtype=np.int64, count=len(selected))
    ids.sort()
    labels = [selected[i] for i in ids.tolist()]
    first = start - start % resolution
    n_buckets = (end - first) // resolution + 1
    starts = first + resolution * np.arange(n_buckets, dtype=np.int64)
    source = "raw"
    if not want_p95:
        for rollup_ms in sorted(ROLLUP_RESOLUTIONS_MS, reverse=True):
            if resolution % rollup_ms == 0:
                rollups = reader.read_rollups(ids, first, end, rollup_ms)
                source = f"rollup_{rollup_ms // 60_000}m" if rollup_ms < 3_600_000 else "rollup_1h"
                break
        else:
            rollups = None
    else:
        rollups = None
    p95 = None
    if rollups is None:
        samples = reader.read(ids, first, end)
        rollups = compute_rollups(samples, resolution)
        if want_p95:
            p95 = _quantiles(samples, ids, first, resolution, n_buckets)
    count, total, low, high, last, last_ts = _combine(rollups, ids, first, resolution, n_buckets)
    return Buckets(labels, starts, count, total, low, high, last, last_ts, p95, source)


def _combine(
    r: Rollups, ids: np.ndarray, first: int, resolution: int, n_buckets: int
) -> tuple[np.ndarray, ...]:
    """Fold rollup rows (sorted by series, bucket) into the requested, coarser buckets."""
    shape = (len(ids), n_buckets)
    count = np.zeros(shape, dtype=np.int64)
    total, low, high = np.zeros(shape), np.full(shape, np.nan), np.full(shape, np.nan)
    last, last_ts = np.full(shape, np.nan), np.zeros(shape, dtype=np.int64)
    if not len(r):
        return count, total, low, high, last, last_ts
    row = np.searchsorted(ids, r.series)
    col = (r.bucket - first) // resolution
    keep = (col >= 0) & (col < n_buckets)
    cell = row[keep] * n_buckets + col[keep]
    if not len(cell):
        return count, total, low, high, last, last_ts
    seg = np.flatnonzero(np.concatenate([[True], cell[1:] != cell[:-1]]))
    ends = np.append(seg[1:], len(cell)) - 1
    cells = cell[seg]
    pick = {c: getattr(r, c)[keep] for c in ("count", "sum", "min", "max", "last", "last_ts")}
    count.ravel()[cells] = np.add.reduceat(pick["count"], seg)
    total.ravel()[cells] = np.add.reduceat(pick["sum"], seg)
    low.ravel()[cells] = np.minimum.reduceat(pick["min"], seg)
    high.ravel()[cells] = np.maximum.reduceat(pick["max"], seg)
    last.ravel()[cells] = pick["last"][ends]
    last_ts.ravel()[cells] = pick["last_ts"][ends]
    return count, total, low, high, last, last_ts


def _quantiles(
    samples: Samples, ids: np.ndarray, first: int, resolution: int, n_buckets: int
) -> np.ndarray:
    out = np.full((len(ids), n_buckets), np.nan)
    keep = ~np.isnan(samples.values)
    series, ts, values = samples.series[keep], samples.timestamps[keep], samples.values[keep]
    if not len(ts):
        return out
    cell = np.searchsorted(ids, series) * n_buckets + (ts - first) // resolution
    seg = np.flatnonzero(np.concatenate([[True], cell[1:] != cell[:-1]]))
    lengths = np.diff(np.append(seg, len(cell)))
    q = np.full(len(seg), 0.95)
    out.ravel()[cell[seg]] = quantile_of_segments(values, seg, lengths, q)
    return out


def label_of(labels: Labels, name: str) -> str:
    for k, v in labels:
        if k == name:
            return v
    return ""


def metric_of(labels: Labels) -> str:
    return label_of(labels, METRIC_NAME)


def require_series(buckets: Buckets, what: str) -> None:
    if not buckets.labels:
        raise NotFound(f"no metrics recorded for {what}")
