"""From a selector to samples, and from samples to per-step windows, without per-sample loops.

A window is the half-open index range `[lo, hi)` into a series' samples that
lies in `(end - range, end]` (Prometheus 3's left-open ranges; the same rule
bounds the instant lookback). Both bounds come from counting, per series and
step, the samples at or before a time: one bincount and one cumulative sum
over all series at once, instead of a binary search per (series, step).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hakon.errors import Unprocessable
from hakon.query.values import RangeSamples, is_stale
from hakon.store.interface import Reader
from hakon.store.labels import Labels, Matcher


def select_series(
    reader: Reader, matchers: Sequence[Matcher], max_series: int
) -> tuple[np.ndarray, list[Labels]]:
    """The sorted ids of the series `matchers` select, and their labels, within the limit."""
    selected = reader.select(matchers)
    if len(selected) > max_series:
        raise Unprocessable(
            f"the query selects {len(selected)} series, more than the limit of {max_series} "
            "(setting query_max_series); narrow the selector"
        )
    ids = np.fromiter(selected, dtype=np.int64, count=len(selected))
    ids.sort()
    return ids, [selected[i] for i in ids.tolist()]


def fetch(
    reader: Reader,
    matchers: Sequence[Matcher],
    start: int,
    end: int,
    *,
    max_series: int,
    max_samples: int,
    drop_stale: bool,
    at: np.ndarray | None = None,
) -> RangeSamples:
    """Samples with start <= t <= end of every series matching `matchers` (with `at`,
    only the last at or before each of those times)."""
    ids, labels = select_series(reader, matchers, max_series)
    samples = reader.read(ids, start, end, at=at)
    if len(samples) > max_samples:
        raise Unprocessable(
            f"the query reads {len(samples)} samples, more than the limit of {max_samples} "
            "(setting query_max_samples); shorten the range or narrow the selector"
        )
    ts, values, series = samples.timestamps, samples.values, samples.series
    if drop_stale and len(values):
        fresh = ~is_stale(values)
        if not fresh.all():
            ts, values, series = ts[fresh], values[fresh], series[fresh]
    offsets = np.searchsorted(series, ids).astype(np.int64)
    offsets = np.append(offsets, len(ts))
    return RangeSamples(labels, offsets, ts, values)


def counts_at_or_before(samples: RangeSamples, times: np.ndarray) -> np.ndarray:
    """`out[s, k]`: how many samples of series s have a timestamp <= times[k] (sorted)."""
    n_series = len(samples.offsets) - 1
    steps = len(times)
    if len(samples.ts) == 0:
        return np.zeros((n_series, steps), dtype=np.int64)
    # The first step at or after each sample: a sample counts from there on.
    if steps > 1 and _evenly_spaced(times):
        step = int(times[1] - times[0])
        first = -((times[0] - samples.ts) // step)  # ceil((ts - t0) / step)
        np.clip(first, 0, steps, out=first)
    else:
        first = np.searchsorted(times, samples.ts, side="left")
    lengths = np.diff(samples.offsets)
    row = np.repeat(np.arange(n_series, dtype=np.int64) * (steps + 1), lengths)
    hist = np.bincount(row + first, minlength=n_series * (steps + 1))
    return np.cumsum(hist.reshape(n_series, steps + 1)[:, :steps], axis=1)


def _evenly_spaced(times: np.ndarray) -> bool:
    d = np.diff(times)
    return bool(d[0] > 0 and (d == d[0]).all())


def window_bounds(
    samples: RangeSamples, ends: np.ndarray, range_ms: int
) -> tuple[np.ndarray, np.ndarray]:
    """Global sample indices [lo, hi) of each (series, step) window (end - range, end]."""
    base = samples.offsets[:-1, None]
    hi = base + counts_at_or_before(samples, ends)
    lo = base + counts_at_or_before(samples, ends - range_ms)
    return lo, hi


def gather(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of every sample of every non-empty window, and where each window starts.

    For reductions with no O(1) prefix form (stddev, quantiles, regression):
    the caller takes `values[idx]` and reduces at `starts` with `ufunc.reduceat`.
    """
    lengths = hi - lo
    total = int(lengths.sum())
    starts = np.zeros(len(lengths), dtype=np.int64)
    if len(lengths) > 1:
        np.cumsum(lengths[:-1], out=starts[1:])
    idx = np.arange(total, dtype=np.int64) - np.repeat(starts - lo, lengths)
    return idx, starts
