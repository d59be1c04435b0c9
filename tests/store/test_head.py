"""The head's runs: a read through a run's series directory and time span selects
exactly the rows a scan of every row would."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hakon.store.head import Run
from hakon.store.merge import sort_dedup


def _scan(run: Run, ids: np.ndarray, start: int, end: int) -> tuple[np.ndarray, ...]:
    keep = np.isin(run.series, ids) & (run.timestamps >= start) & (run.timestamps <= end)
    return run.series[keep], run.timestamps[keep], run.values[keep]


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    rows=st.integers(0, 300),
    n_series=st.integers(1, 400),  # many rows per series (a directory) or about one (none)
    wanted=st.integers(0, 12),
    start=st.integers(-50, 1050),
    width=st.integers(0, 1100),
)
def test_a_run_selects_what_a_scan_selects(
    seed: int, rows: int, n_series: int, wanted: int, start: int, width: int
) -> None:
    rng = np.random.default_rng(seed)
    pool = np.unique(rng.integers(-(2**63), 2**63 - 1, n_series, dtype=np.int64))
    merged = sort_dedup(rng.choice(pool, rows), rng.integers(0, 1000, rows), rng.normal(size=rows))
    run = Run(merged.series, merged.timestamps, merged.values)
    # Ids in the run, ids absent from it, and ids below and above all of its ids.
    candidates = np.concatenate([pool, [-(2**63), 2**63 - 1]])
    ids = np.unique(rng.choice(candidates, wanted))
    got = run.select(ids, start, start + width)
    expected = _scan(run, ids, start, start + width)
    if got is None:  # skipped whole: empty, or its time span misses the read
        missed = run.max_ts < start or run.min_ts > start + width
        assert not len(expected[0]) and (not len(run.series) or missed)
        return
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e)


def test_the_edges_of_a_runs_time_span_are_inside_it() -> None:
    merged = sort_dedup(np.array([5, 5, 9]), np.array([100, 200, 150]), np.ones(3))
    run = Run(merged.series, merged.timestamps, merged.values)
    ids = np.array([5, 9])
    assert len(run.select(ids, 200, 300)[0]) == 1  # starts at its last timestamp
    assert len(run.select(ids, 0, 100)[0]) == 1  # ends at its first
    assert run.select(ids, 201, 300) is None
    assert run.select(ids, 0, 99) is None
