"""Timestamp sets: series with identical timestamps store them once per block."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hakon.store import block
from hakon.store.block import MIN_SET_MEMBERS, BlockFile, shared_timestamp_sets, write_raw_block
from hakon.store.cache import RowGroupCache
from hakon.store.interface import Samples


def _runs(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = np.array([len(a) for a in arrays], dtype=np.int64)
    first = np.concatenate(([0], np.cumsum(rows)[:-1])).astype(np.int64)
    return np.concatenate(arrays).astype(np.int64), first, rows


def _assert_sets_are_exact(arrays: list[np.ndarray], sets: np.ndarray) -> None:
    """Members of a set have equal arrays; an array held by enough runs is in a set."""
    for k in set(sets[sets >= 0].tolist()):
        members = np.flatnonzero(sets == k)
        assert len(members) >= MIN_SET_MEMBERS
        assert all(np.array_equal(arrays[m], arrays[members[0]]) for m in members)
    for i, a in enumerate(arrays):
        equal = [j for j, b in enumerate(arrays) if np.array_equal(a, b)]
        if len(equal) >= MIN_SET_MEMBERS:
            assert sets[i] >= 0 and (sets[equal] == sets[i]).all()
        else:
            assert sets[i] == -1


@given(st.integers(0, 2**32 - 1), st.integers(1, 60), st.integers(1, 6))
@settings(max_examples=60, deadline=None)
def test_sets_hold_exactly_the_runs_with_equal_timestamps(seed, n_runs, n_patterns) -> None:
    rng = np.random.default_rng(seed)
    patterns = [
        np.sort(rng.choice(10_000, rng.integers(1, 30), replace=False)) for _ in range(n_patterns)
    ]
    arrays = []
    for _ in range(n_runs):
        a = patterns[rng.integers(n_patterns)].copy()
        if rng.random() < 0.2:  # a near miss: one timestamp moved
            a[rng.integers(len(a))] += 1
        arrays.append(a)
    ts, first, rows = _runs(arrays)
    _assert_sets_are_exact(arrays, shared_timestamp_sets(ts, first, rows))


def test_runs_that_collide_on_the_fingerprint_are_still_told_apart(monkeypatch) -> None:
    """Buckets only propose members; each is compared with its leader row for row."""
    monkeypatch.setattr(block, "_fingerprints", lambda ts, first, rows: np.zeros(len(first)))
    a = np.array([0, 15_000, 30_007, 45_000])
    b = np.array([0, 15_003, 30_000, 45_000])  # same length, first and last
    arrays = [a] * MIN_SET_MEMBERS + [b] * (MIN_SET_MEMBERS - 1) + [a]
    sets = shared_timestamp_sets(*_runs(arrays))
    _assert_sets_are_exact(arrays, sets)
    assert (sets[:MIN_SET_MEMBERS] == 0).all() and sets[-1] == 0


def _scrapes(rng: np.random.Generator, n_series: int, n_targets: int) -> Samples:
    """Series of a few targets: each target's scrapes stamp all its series, jitter, missed
    scrapes and all; some series lose a sample of their own; some values are raw floats."""
    target_ts = []
    for _ in range(n_targets):
        ts = np.arange(int(rng.integers(1, 200)), dtype=np.int64) * 15_000
        ts += rng.integers(0, 21, len(ts))
        keep = rng.random(len(ts)) > 0.05
        target_ts.append(ts[keep] if keep.any() else ts[:1])
    ids = np.sort(rng.choice(2**40, n_series, replace=False)).astype(np.int64)
    series, stamps = [], []
    for sid in ids:
        ts = target_ts[rng.integers(n_targets)]
        if rng.random() < 0.1 and len(ts) > 1:
            ts = np.delete(ts, rng.integers(len(ts)))
        series.append(np.full(len(ts), sid))
        stamps.append(ts)
    s, t = np.concatenate(series), np.concatenate(stamps)
    values = np.round(rng.normal(100, 30, len(s)), 2)
    values[rng.random(len(s)) < 0.02] = np.pi
    return Samples(s, t, values)


@given(st.integers(0, 2**32 - 1), st.integers(1, 80), st.integers(1, 4), st.booleans())
@settings(max_examples=40, deadline=None)
def test_a_block_with_timestamp_sets_reads_back_what_was_written(
    tmp_path_factory, seed, n_series, n_targets, cached
) -> None:
    rng = np.random.default_rng(seed)
    samples = _scrapes(rng, n_series, n_targets)
    path = tmp_path_factory.mktemp("b") / "b.parquet"
    write_raw_block(samples, path, row_group_rows=64)
    f = BlockFile.open(path)
    cache = RowGroupCache(1 << 24) if cached else None
    ids = np.unique(samples.series)
    for _ in range(4):
        chosen = np.sort(rng.choice(ids, rng.integers(1, len(ids) + 1), replace=False))
        start = int(rng.integers(-15_000, 3_000_000))
        end = start + int(rng.integers(0, 3_000_000))
        got = f.read_raw(chosen, start, end, cache)
        want = (
            np.isin(samples.series, chosen)
            & (samples.timestamps >= start)
            & (samples.timestamps <= end)
        )
        assert got.series.tolist() == samples.series[want].tolist()
        assert got.timestamps.tolist() == samples.timestamps[want].tolist()
        assert got.values.tolist() == samples.values[want].tolist()


def test_series_of_one_target_store_their_timestamps_once(tmp_path) -> None:
    rng = np.random.default_rng(7)
    ts = np.arange(480, dtype=np.int64) * 15_000 + rng.integers(0, 21, 480)
    n = 200
    series = np.repeat(np.arange(n, dtype=np.int64), len(ts))
    values = np.cumsum(rng.poisson(50, n * len(ts))).astype(np.float64)
    shared = Samples(series, np.tile(ts, n), values)
    own = Samples(series, np.tile(ts, n) + np.repeat(np.arange(n), len(ts)) % 2, values)
    own_ts = own.timestamps.reshape(n, -1)
    own_ts[:, 1:] += rng.integers(0, 21, (n, len(ts) - 1))  # every series its own jitter
    sizes = {}
    for name, samples in (("shared", shared), ("own", own)):
        sizes[name] = write_raw_block(samples, tmp_path / f"{name}.parquet", 8192)
    f = BlockFile.open(tmp_path / "shared.parquet")
    assert f.directory is not None and f.directory.ts_set is not None
    assert (f.directory.ts_set == 0).all() and len(f.set_values) == len(ts)
    # The jitter is 4-5 bits a sample when each series has its own, next to nothing shared.
    saved_bits = (sizes["own"] - sizes["shared"]) * 8 / len(series)
    assert saved_bits > 3.5, sizes


@pytest.mark.parametrize("members", [MIN_SET_MEMBERS - 1, MIN_SET_MEMBERS])
def test_a_set_needs_enough_members(members: int) -> None:
    a = np.arange(5, dtype=np.int64) * 10
    sets = shared_timestamp_sets(*_runs([a] * members + [a + 1]))
    assert (sets[:members] >= 0).all() == (members >= MIN_SET_MEMBERS)
    assert sets[-1] == -1
