"""Functions of range vectors (`rate`, `*_over_time`, ...) over all windows at once.

Each function gets every (series, step) window as global index bounds
`[lo, hi)` into the fetched samples and returns values and a presence mask.
Functions needing only the ends of a window (rate, last, count, changes,
resets) use O(1) gathers and prefix sums; the rest gather the windows'
samples flat and reduce with `ufunc.reduceat`, chunked to bound memory.
The formulas follow Prometheus 3's `promql/functions.go`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hakon.query.values import RangeSamples
from hakon.query.windows import gather

GATHER_CHUNK = 4_000_000  # samples gathered at once by the reduce-based functions
# Windows computed at once: small enough that a chain of numpy temporaries stays
# in cache and reuses freed buffers instead of faulting in fresh pages.
ROW_CHUNK_WINDOWS = 1 << 16


@dataclass
class Windows:
    samples: RangeSamples
    lo: np.ndarray  # int64 [S, T]
    hi: np.ndarray
    ends: np.ndarray  # int64 [T]: each window's end (eval time minus offset), ms
    steps: np.ndarray  # int64 [T]: evaluation times, ms
    range_ms: int
    # Per-sample arrays derived once and shared by every row chunk (prefix sums).
    cache: dict[str, Any] = field(default_factory=dict)
    longest: int = 0  # the most samples in any window, over all rows

    def __post_init__(self) -> None:
        if not self.longest and self.lo.size:
            self.longest = int((self.hi - self.lo).max())

    @property
    def count(self) -> np.ndarray:
        return self.hi - self.lo

    def rows(self, a: int, b: int) -> Windows:
        return Windows(
            self.samples, self.lo[a:b], self.hi[a:b], self.ends, self.steps, self.range_ms,
            self.cache, self.longest,
        )  # fmt: skip

    def derived(self, key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]


Result = tuple[np.ndarray, np.ndarray]  # values [S, T], present [S, T]


def by_row_chunks(fn: Callable[[Windows], Result], w: Windows) -> Result:
    """Apply `fn` to bands of rows; every range function is independent per series."""
    n_rows, steps = w.lo.shape
    per_chunk = max(1, ROW_CHUNK_WINDOWS // max(steps, 1))
    if n_rows <= per_chunk:
        return fn(w)
    values = np.empty((n_rows, steps))
    present = np.empty((n_rows, steps), dtype=bool)
    for a in range(0, n_rows, per_chunk):
        b = min(a + per_chunk, n_rows)
        values[a:b], present[a:b] = fn(w.rows(a, b))
    return values, present


def _prefix(indicator: np.ndarray) -> np.ndarray:
    out = np.zeros(len(indicator) + 1, dtype=indicator.dtype)
    np.cumsum(indicator, out=out[1:])
    return out


def _pairs_within_series(samples: RangeSamples) -> np.ndarray:
    """True at i when samples i-1 and i belong to the same series (i >= 1); index 0 False."""
    same = np.ones(len(samples.ts), dtype=bool)
    starts = samples.offsets[:-1]
    same[starts[starts < len(same)]] = False
    return same


def _between_pairs(w: Windows, prefix: np.ndarray) -> np.ndarray:
    """Sum over the pairs (i-1, i) inside each window, from the prefix sum of a per-pair value."""
    lo1 = np.minimum(w.lo + 1, w.hi)
    return prefix[w.hi] - prefix[lo1]


def _counter_drops(w: Windows) -> np.ndarray:
    """Prefix sum of the value before each counter reset (what rate adds back)."""
    v = w.samples.values
    prev = np.empty_like(v)
    if len(v):
        prev[0] = 0.0
        prev[1:] = v[:-1]
    return _prefix(np.where((v < prev) & _pairs_within_series(w.samples), prev, 0.0))


# -- rate family ---------------------------------------------------------------------


def extrapolated(w: Windows, is_counter: bool, is_rate: bool) -> Result:
    n = w.count
    ok = n >= 2
    lo = np.where(ok, w.lo, 0)
    last_i = np.where(ok, w.hi - 1, 0)
    v, t = w.samples.values, w.samples.ts
    first_v, last_v = v[lo], v[last_i]
    result = last_v - first_v
    if is_counter:
        result += _between_pairs(w, w.derived("counter_drops", lambda: _counter_drops(w)))
    first_t, last_t = t[lo], t[last_i]
    range_start = (w.ends - w.range_ms)[None, :]
    range_end = w.ends[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        to_start = (first_t - range_start) / 1000.0
        to_end = (range_end - last_t) / 1000.0
        sampled = (last_t - first_t) / 1000.0
        average = sampled / np.maximum(n - 1, 1)
        threshold = average * 1.1
        to_start = np.where(to_start >= threshold, average / 2, to_start)
        if is_counter:
            to_zero = sampled * (first_v / result)
            clamp = (result > 0) & (first_v >= 0) & (to_zero < to_start)
            to_start = np.where(clamp, to_zero, to_start)
        to_end = np.where(to_end >= threshold, average / 2, to_end)
        factor = (sampled + to_start + to_end) / sampled
        if is_rate:
            factor = factor / (w.range_ms / 1000.0)
        out = result * factor
    return out, ok


def rate(w: Windows) -> Result:
    return extrapolated(w, True, True)


def increase(w: Windows) -> Result:
    return extrapolated(w, True, False)


def delta(w: Windows) -> Result:
    return extrapolated(w, False, False)


def _instant(w: Windows, is_rate: bool) -> Result:
    ok = w.count >= 2
    last_i = np.where(ok, w.hi - 1, 1)
    prev_i = last_i - 1
    v, t = w.samples.values, w.samples.ts
    if not len(v):
        return np.zeros(ok.shape), ok
    last_v, prev_v = v[last_i], v[prev_i]
    if not is_rate:
        return last_v - prev_v, ok
    diff = np.where(last_v < prev_v, last_v, last_v - prev_v)  # a reset: count from zero
    with np.errstate(divide="ignore", invalid="ignore"):
        return diff / ((t[last_i] - t[prev_i]) / 1000.0), ok


def irate(w: Windows) -> Result:
    return _instant(w, True)


def idelta(w: Windows) -> Result:
    return _instant(w, False)


# -- O(1) window functions ----------------------------------------------------------


def count_over_time(w: Windows) -> Result:
    n = w.count
    return n.astype(np.float64), n > 0


def present_over_time(w: Windows) -> Result:
    n = w.count
    return np.ones(n.shape), n > 0


def last_over_time(w: Windows) -> Result:
    ok = w.count > 0
    if not len(w.samples.values):
        return np.zeros(ok.shape), ok
    return w.samples.values[np.where(ok, w.hi - 1, 0)], ok


def _changed(w: Windows) -> np.ndarray:
    v = w.samples.values
    prev = np.concatenate([[np.nan], v[:-1]]) if len(v) else v
    changed = (v != prev) & ~(np.isnan(v) & np.isnan(prev)) & _pairs_within_series(w.samples)
    return _prefix(changed.astype(np.int64))


def _dropped(w: Windows) -> np.ndarray:
    v = w.samples.values
    prev = np.concatenate([[np.nan], v[:-1]]) if len(v) else v
    return _prefix(((v < prev) & _pairs_within_series(w.samples)).astype(np.int64))


def changes(w: Windows) -> Result:
    prefix = w.derived("changed", lambda: _changed(w))
    return _between_pairs(w, prefix).astype(np.float64), w.count > 0


def resets(w: Windows) -> Result:
    prefix = w.derived("dropped", lambda: _dropped(w))
    return _between_pairs(w, prefix).astype(np.float64), w.count > 0


# -- gathered window functions --------------------------------------------------------

Reducer = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _reduce(w: Windows, min_count: int, reducer: Reducer) -> Result:
    """Apply `reducer(values, ts, starts, lengths, window_rows)` to windows, chunk by chunk.

    `window_rows` is each window's flat (series * T + step) position, so
    reducers can look up per-step parameters.
    """
    n = w.count
    ok = n >= min_count
    out = np.zeros(n.shape)
    flat_ok = np.flatnonzero(ok.ravel())
    lo, hi = w.lo.ravel()[flat_ok], w.hi.ravel()[flat_ok]
    lengths = hi - lo
    if not len(flat_ok):
        return out, ok
    bounds = np.searchsorted(
        np.cumsum(lengths), np.arange(GATHER_CHUNK, lengths.sum(), GATHER_CHUNK)
    )
    flat_out = out.ravel()
    for a, b in zip([0, *bounds.tolist()], [*bounds.tolist(), len(lengths)], strict=True):
        if a >= b:
            continue
        idx, starts = gather(lo[a:b], hi[a:b])
        flat_out[flat_ok[a:b]] = reducer(
            w.samples.values[idx], w.samples.ts[idx], starts, lengths[a:b], flat_ok[a:b]
        )
    return out, ok


def sum_over_time(w: Windows) -> Result:
    return _reduce(w, 1, lambda v, t, s, n, r: np.add.reduceat(v, s))


def avg_over_time(w: Windows) -> Result:
    return _reduce(w, 1, lambda v, t, s, n, r: np.add.reduceat(v, s) / n)


def _sparse_table(values: np.ndarray, ufunc: np.ufunc, longest: int) -> np.ndarray:
    """Row k holds ufunc over values[i : i + 2**k] (clipped at the end), k < log2(longest) + 1."""
    levels = max(1, int(longest).bit_length())
    table = np.empty((levels, len(values)))
    table[0] = values
    for k in range(1, levels):
        half = 1 << (k - 1)
        table[k, -half:] = table[k - 1, -half:]
        ufunc(table[k - 1, :-half], table[k - 1, half:], out=table[k, :-half])
    return table


def _extreme(ufunc: np.ufunc) -> Callable[[Windows], Result]:
    """min/max over each window in O(1) from a sparse table: two overlapping power-of-two
    spans cover any window. fmax/fmin skip NaN unless all values are NaN, like Prometheus."""

    def fn(w: Windows) -> Result:
        n = w.count
        ok = n > 0
        table = w.derived(
            f"sparse_{ufunc.__name__}",
            lambda: _sparse_table(w.samples.values, ufunc, w.longest),
        )
        length = np.maximum(n, 1)
        k = np.floor(np.log2(length)).astype(np.int64)
        width = np.left_shift(1, k)
        lo = np.where(ok, w.lo, 0)
        hi = np.where(ok, w.hi, width)
        size = table.shape[1]
        flat = table.ravel()
        out = ufunc(flat[k * size + lo], flat[k * size + hi - width])
        return out, ok

    return fn


max_over_time = _extreme(np.fmax)
min_over_time = _extreme(np.fmin)


def _variance(v: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    mean = np.add.reduceat(v, starts) / lengths
    dev = v - np.repeat(mean, lengths)
    return np.add.reduceat(dev * dev, starts) / lengths


def stdvar_over_time(w: Windows) -> Result:
    return _reduce(w, 1, lambda v, t, s, n, r: _variance(v, s, n))


def stddev_over_time(w: Windows) -> Result:
    return _reduce(w, 1, lambda v, t, s, n, r: np.sqrt(_variance(v, s, n)))


def quantile_of_segments(
    values: np.ndarray, starts: np.ndarray, lengths: np.ndarray, q: np.ndarray
) -> np.ndarray:
    """Prometheus's quantile (linear interpolation, NaN sorting first) of each segment."""
    segment = np.repeat(np.arange(len(starts)), lengths)
    order = np.lexsort((values, ~np.isnan(values), segment))
    ordered = values[order]
    rank = q * (lengths - 1)
    lower = np.maximum(np.floor(rank), 0).astype(np.int64)
    lower = np.minimum(lower, lengths - 1)
    upper = np.minimum(lower + 1, lengths - 1)
    weight = rank - np.floor(rank)
    out = ordered[starts + lower] * (1 - weight) + ordered[starts + upper] * weight
    out = np.where(q < 0, -np.inf, out)
    out = np.where(q > 1, np.inf, out)
    return np.where(np.isnan(q), np.nan, out)


def quantile_over_time(w: Windows, q: np.ndarray) -> Result:
    steps = len(w.steps)
    return _reduce(w, 1, lambda v, t, s, n, r: quantile_of_segments(v, s, n, q[r % steps]))


def _regression(
    v: np.ndarray, t: np.ndarray, starts: np.ndarray, lengths: np.ndarray, intercept_at: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares slope (per second) and intercept at `intercept_at` (ms) per segment."""
    x = (t - np.repeat(intercept_at, lengths)) / 1e3
    n = lengths.astype(np.float64)
    sum_x = np.add.reduceat(x, starts)
    sum_y = np.add.reduceat(v, starts)
    sum_xy = np.add.reduceat(x * v, starts)
    sum_x2 = np.add.reduceat(x * x, starts)
    with np.errstate(divide="ignore", invalid="ignore"):
        cov_xy = sum_xy - sum_x * sum_y / n
        var_x = sum_x2 - sum_x * sum_x / n
        slope = cov_xy / var_x
        intercept = sum_y / n - slope * sum_x / n
    first = v[starts]
    constant = np.maximum.reduceat(v != np.repeat(first, lengths), starts) == 0
    slope = np.where(constant, np.where(np.isinf(first), np.nan, 0.0), slope)
    intercept = np.where(constant, np.where(np.isinf(first), np.nan, first), intercept)
    return slope, intercept


def deriv(w: Windows) -> Result:
    return _reduce(w, 2, lambda v, t, s, n, r: _regression(v, t, s, n, t[s])[0])


def predict_linear(w: Windows, seconds: np.ndarray) -> Result:
    steps = len(w.steps)

    def reducer(
        v: np.ndarray, t: np.ndarray, s: np.ndarray, n: np.ndarray, r: np.ndarray
    ) -> np.ndarray:
        slope, intercept = _regression(v, t, s, n, w.steps[r % steps])
        return slope * seconds[r % steps] + intercept

    return _reduce(w, 2, reducer)


PLAIN: dict[str, Callable[[Windows], Result]] = {
    "rate": rate,
    "increase": increase,
    "delta": delta,
    "irate": irate,
    "idelta": idelta,
    "count_over_time": count_over_time,
    "present_over_time": present_over_time,
    "last_over_time": last_over_time,
    "changes": changes,
    "resets": resets,
    "sum_over_time": sum_over_time,
    "avg_over_time": avg_over_time,
    "max_over_time": max_over_time,
    "min_over_time": min_over_time,
    "stddev_over_time": stddev_over_time,
    "stdvar_over_time": stdvar_over_time,
    "deriv": deriv,
}
# Functions of a range vector whose result keeps the metric name.
KEEPS_NAME = {"last_over_time"}
