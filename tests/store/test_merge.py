"""Merging parts: the no-sort path for time-disjoint parts equals the general sort."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hakon.store.merge import (
    last_at_or_before,
    merge_in_pieces,
    merge_parts,
    run_starts,
    series_pieces,
    sort_dedup,
)


def _part(rng: np.random.Generator, ids: np.ndarray, t0: int, t1: int) -> tuple:
    rows = []
    for sid in ids.tolist():
        n = int(rng.integers(0, 5))
        ts = np.unique(rng.integers(t0, t1, n))
        rows += [(sid, t) for t in ts.tolist()]
    rows.sort()
    s = np.array([r[0] for r in rows], dtype=np.int64)
    t = np.array([r[1] for r in rows], dtype=np.int64)
    return s, t, rng.normal(size=len(rows))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_parts=st.integers(2, 4))
def test_time_disjoint_parts_merge_like_a_full_sort(seed: int, n_parts: int) -> None:
    rng = np.random.default_rng(seed)
    ids = np.unique(rng.integers(-(2**62), 2**62, 8))
    parts = [_part(rng, ids[rng.random(len(ids)) < 0.7], 1000 * i, 1000 * i + 999)
             for i in range(n_parts)]  # fmt: skip
    merged = merge_parts(parts)
    expected = sort_dedup(*(np.concatenate([p[k] for p in parts]) for k in range(3)))
    assert np.array_equal(merged.series, expected.series)
    assert np.array_equal(merged.timestamps, expected.timestamps)
    assert np.array_equal(merged.values, expected.values)


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from([-(2**63), -7, 0, 5, 2**63 - 1]),
            st.one_of(st.integers(0, 40), st.integers(-(2**62), 2**62)),
            st.floats(allow_nan=False),
        ),
        min_size=1,
        max_size=60,
    )
)
def test_sort_dedup_keeps_each_series_and_time_once_with_the_last_value(rows: list) -> None:
    """Arrival order with rewrites and series going back in time: the result is in
    (series, time) order and holds the last value written for each pair. Times
    2^62 apart take the general sort, near ones the nearly sorted second pass."""
    model = {(sid, t): v for sid, t, v in rows}
    series, ts, values = (np.array(column) for column in zip(*rows, strict=True))
    got = sort_dedup(series.astype(np.int64), ts.astype(np.int64), values.astype(np.float64))
    expected = sorted(model)
    assert list(zip(got.series.tolist(), got.timestamps.tolist(), strict=True)) == expected
    assert got.values.tolist() == [model[key] for key in expected]


def _last_at_or_before_by_scan(series: np.ndarray, ts: np.ndarray, at: np.ndarray) -> np.ndarray:
    keep = np.zeros(len(ts), dtype=bool)
    for t in at.tolist():
        for sid in np.unique(series).tolist():
            rows = np.flatnonzero((series == sid) & (ts <= t))
            if len(rows):
                keep[rows[-1]] = True
    return keep


def _thin(samples: tuple, at: np.ndarray) -> tuple:
    keep = last_at_or_before(samples[0], samples[1], at)
    return tuple(column[keep] for column in samples)


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_parts=st.integers(1, 4),
    n_at=st.integers(0, 6),
)
def test_thinning_each_part_then_the_merge_equals_thinning_the_merge(
    seed: int, n_parts: int, n_at: int
) -> None:
    """Overlapping parts with rewrites (a later part wins a shared timestamp), and
    times that fall on samples, between them, before and after all of them."""
    rng = np.random.default_rng(seed)
    ids = np.unique(rng.integers(-(2**62), 2**62, 5))
    parts = [_part(rng, ids[rng.random(len(ids)) < 0.8], 0, 60) for _ in range(n_parts)]
    at = np.unique(rng.integers(-5, 70, n_at)).astype(np.int64)
    merged = merge_parts(parts)
    full = (merged.series, merged.timestamps, merged.values)
    expected = _thin(full, at)
    scan = _last_at_or_before_by_scan(*full[:2], at)
    assert np.array_equal(expected[1], full[1][scan]) and np.array_equal(expected[0], full[0][scan])
    thinned = merge_parts([_thin(p, at) for p in parts])
    got = _thin((thinned.series, thinned.timestamps, thinned.values), at)
    for g, e in zip(got, expected, strict=True):
        assert np.array_equal(g, e)


@settings(max_examples=200, deadline=None)
@given(
    runs=st.lists(st.integers(1, 30), max_size=40),
    rows=st.integers(1, 50),
)
def test_series_pieces_cut_only_between_runs_and_stay_near_the_bound(
    runs: list[int], rows: int
) -> None:
    series = np.repeat(np.arange(len(runs), dtype=np.int64) * 7 % 11, runs)  # not sorted
    pieces = series_pieces(series, rows)
    if not len(series):
        assert pieces == []
        return
    run_first = set(np.flatnonzero(run_starts(series)).tolist())
    assert [a for a, _ in pieces] == [0] + [b for _, b in pieces[:-1]]  # contiguous
    assert pieces[-1][1] == len(series)
    for a, b in pieces:
        assert a in run_first and a < b
        assert b - a <= rows or len(set(series[a:b].tolist())) == 1  # only a long run is over


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_parts=st.one_of(st.integers(1, 10), st.integers(60, 140)),
    piece_rows=st.sampled_from([1, 7, 50, 1 << 30]),
)
def test_many_parts_large_and_small_merge_like_a_full_sort(
    seed: int, n_parts: int, piece_rows: int
) -> None:
    """A head's flush: a few large sorted runs among many small chunks (sorted or in
    arrival order, overlapping in time, rewriting each other's samples), merged
    whole and range of series by range."""
    rng = np.random.default_rng(seed)
    ids = np.unique(rng.integers(-(2**62), 2**62, 30))
    parts = []
    for i in range(n_parts):
        if rng.random() < 0.1:  # a large run
            s = np.repeat(ids, 20)
            t = np.tile(np.arange(20, dtype=np.int64) * 10 + 1000 * i, len(ids))
        else:
            k = int(rng.integers(1, 8))
            s = rng.choice(ids, k)
            t = rng.integers(0, 1000 * n_parts, k)
            if rng.random() < 0.5:
                order = np.lexsort((t, s))
                s, t = s[order], t[order]
        parts.append((s, t, rng.normal(size=len(t))))
    expected = sort_dedup(*(np.concatenate([p[k] for p in parts]) for k in range(3)))
    for merged in (merge_parts(parts), merge_in_pieces(parts, piece_rows)):
        assert np.array_equal(merged.series, expected.series)
        assert np.array_equal(merged.timestamps, expected.timestamps)
        assert np.array_equal(merged.values, expected.values)
