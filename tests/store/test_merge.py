"""Merging parts: the no-sort path for time-disjoint parts equals the general sort."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hakon.store.merge import merge_parts, sort_dedup


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
