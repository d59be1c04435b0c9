"""Engine behaviour beyond the model test: labels API, retention, bad batches."""

from __future__ import annotations

import time

import numpy as np
import pytest

from hakon.errors import InvalidRequest
from hakon.store.catalog import Catalog
from hakon.store.engine import HOUR_MS, Store, StoreOptions
from hakon.store.interface import RAW, SampleBatch
from hakon.store.labels import Matcher, canonical, encode_labels, series_ids


@pytest.fixture
def store(tmp_path):
    catalog = Catalog.open_in(tmp_path)
    s = Store(tmp_path, catalog, StoreOptions(maintenance_interval_s=3600)).open()
    yield s
    s.close()
    catalog.close()


NOW = int(time.time() * 1000)
LABELS = [
    {"__name__": "cpu", "ns": "prod", "pod": "a"},
    {"__name__": "cpu", "ns": "dev", "pod": "b"},
    {"__name__": "mem", "ns": "prod", "pod": "a", "container": "app"},
]


def test_label_names_and_values_follow_matchers(store: Store) -> None:
    store.append(SampleBatch.from_series(LABELS, [0, 1, 2], [NOW - 1000] * 3, [1, 2, 3]))
    assert store.label_names() == ["__name__", "container", "ns", "pod"]
    assert store.label_names([Matcher("__name__", "=", "cpu")]) == ["__name__", "ns", "pod"]
    assert store.label_values("ns") == ["dev", "prod"]
    assert store.label_values("pod", [Matcher("ns", "=", "prod")]) == ["a"]
    assert store.label_values("__name__", [Matcher("pod", "=~", "a|b")]) == ["cpu", "mem"]
    assert store.label_values("nope") == []


def test_retention_removes_whole_blocks_per_resolution(store: Store) -> None:
    old = NOW - NOW % (2 * HOUR_MS) - 10 * HOUR_MS
    store.append(SampleBatch.from_series(LABELS, [0, 1], [old + 5, NOW - 1000], [1.0, 2.0]))
    store.flush()
    ids = np.array(list(store.select([Matcher("__name__", "=", "cpu")])))
    assert len(store.read(ids, old, NOW)) == 2
    # Eleven hours on, with raw kept 15 days: nothing goes.
    assert store.apply_retention(NOW + 11 * HOUR_MS) == 0
    # Past raw retention of the old partition only: its raw block goes, rollups stay.
    later = old + 2 * HOUR_MS + store.options.retention_ms[RAW] + 1
    assert store.apply_retention(later) == 1
    assert store.read(ids, old, old + HOUR_MS).timestamps.tolist() == []
    rollup = store.read_rollups(ids, old, old + HOUR_MS, 300_000)
    assert rollup.count.tolist() == [1] and rollup.sum.tolist() == [1.0]
    assert store.stats()["blocks"] == 1


@pytest.mark.parametrize(
    ("ts", "message"),
    [(NOW - 16 * 24 * HOUR_MS, "older than the raw retention"), (NOW + HOUR_MS, "future")],
)
def test_out_of_window_samples_are_refused_whole(store: Store, ts: int, message: str) -> None:
    batch = SampleBatch.from_series(LABELS, [0, 1], [NOW - 1000, ts], [1.0, 2.0])
    with pytest.raises(InvalidRequest, match=message):
        store.append(batch)
    assert store.stats()["samples"] == 0 and store.stats()["series"] == 0


def test_mismatched_columns_are_refused(store: Store) -> None:
    good = SampleBatch.from_series(LABELS, [0], [NOW - 1000], [1.0])
    bad = SampleBatch(good.series_ids, good.series_labels, good.sample_series,
                      good.timestamps, np.array([1.0, 2.0]))  # fmt: skip
    with pytest.raises(InvalidRequest, match="differ in length"):
        store.append(bad)


def test_a_failed_flush_is_retried_and_its_wal_kept_until_then(tmp_path, monkeypatch) -> None:
    import hakon.store.blockwriter as engine_mod

    catalog = Catalog.open_in(tmp_path)
    store = Store(tmp_path, catalog, StoreOptions(maintenance_interval_s=3600)).open()
    store.append(SampleBatch.from_series(LABELS, [0], [NOW - 3000], [1.0]))
    real = engine_mod.write_raw_block

    def broken(samples, path, rows, groups=None):  # writes part of a file, then the disk fills
        path.with_name(path.name + ".tmp").write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(engine_mod, "write_raw_block", broken)
    with pytest.raises(OSError):
        store.flush()
    assert list((tmp_path / "blocks").iterdir()) == []  # no orphan left behind
    monkeypatch.setattr(engine_mod, "write_raw_block", real)
    store.append(SampleBatch.from_series(LABELS, [1], [NOW - 2000], [2.0]))
    assert store.flush() == 2  # the failed head's samples too
    assert store.stats()["head_samples"] == 0 and store.stats()["samples"] == 2
    store.close()
    catalog.close()
    catalog = Catalog.open_in(tmp_path)
    reopened = Store(tmp_path, catalog).open()
    try:
        ids = np.array(list(reopened.select([Matcher("__name__", "=", "cpu")])))
        assert sorted(reopened.read(ids, NOW - 10_000, NOW).values.tolist()) == [1.0, 2.0]
    finally:
        reopened.close()
        catalog.close()


def test_forced_compaction_merges_an_open_partition(store: Store) -> None:
    for i in range(2):
        store.append(SampleBatch.from_series(LABELS, [0, 0], [NOW - 9000, NOW - 5000 + i], [i, i]))
        store.flush()
    assert store.stats()["blocks"] == 2
    assert store.compact() == 0  # open partition, fewer than compaction_min_blocks
    assert store.compact(force=True) == 1
    assert store.stats()["blocks"] == 1 and store.stats()["samples"] == 3
    ids = np.array(list(store.select([Matcher("pod", "=", "a")])))
    got = store.read(ids, NOW - 10_000, NOW)
    assert got.timestamps.tolist() == [NOW - 9000, NOW - 5000, NOW - 4999]
    assert got.values.tolist() == [1.0, 0.0, 1.0]  # the later write of NOW - 9000 won


@pytest.mark.parametrize("chunk_rows", [1 << 18, 7])
def test_a_read_at_given_times_keeps_the_last_sample_before_each(
    store: Store, chunk_rows: int
) -> None:
    """Over blocks (read whole, or in pieces of a few rows) and the head with a rewrite
    in the head: the samples an instant selector would pick from a full read, and
    only those."""
    store.THIN_CHUNK_ROWS = chunk_rows
    rng = np.random.default_rng(7)
    ts = NOW - 60_000 + np.arange(0, 60_000, 1000)
    for flush, half in ((True, ts[:30]), (False, ts[20:])):  # the head rewrites ten
        for _ in range(2):
            store.append(SampleBatch.from_series(LABELS, np.repeat([0, 1, 2], len(half)),
                         np.tile(half, 3), rng.normal(size=3 * len(half))))  # fmt: skip
        if flush:
            store.flush()
    ids = np.array(sorted(store.select([Matcher("ns", "=~", ".+")])))
    at = np.array([NOW - 59_500, NOW - 40_000, NOW - 35_001, NOW - 2_000, NOW + 5_000])
    full = store.read(ids, NOW - 60_000, NOW)
    got = store.read(ids, NOW - 60_000, NOW, at=at)
    keep = np.zeros(len(full.timestamps), dtype=bool)
    for sid in ids.tolist():
        for t in at.tolist():
            rows = np.flatnonzero((full.series == sid) & (full.timestamps <= t))
            keep[rows[-1]] = True
    assert store.stats()["blocks"] >= 1 and store.stats()["head_samples"] > 0
    assert got.series.tolist() == full.series[keep].tolist()
    assert got.timestamps.tolist() == full.timestamps[keep].tolist()
    assert got.values.tolist() == full.values[keep].tolist()


def test_a_read_at_given_times_sees_unsorted_head_rows(store: Store) -> None:
    """One batch holding a series' samples out of time order stays unsorted in the head
    until it is sealed into a run: the read at given times must not thin it as if
    it were sorted."""
    store.append(SampleBatch.from_series(LABELS[:1], [0, 0, 0],
                 [NOW - 1000, NOW - 3000, NOW - 2000], [1.0, 2.0, 3.0]))  # fmt: skip
    ids = np.array(sorted(store.select([Matcher("pod", "=", "a"), Matcher("ns", "=", "prod")])))
    got = store.read(ids, NOW - 10_000, NOW, at=np.array([NOW - 2500, NOW - 500]))
    assert got.timestamps.tolist() == [NOW - 3000, NOW - 1000]
    assert got.values.tolist() == [2.0, 1.0]


@pytest.mark.parametrize("split_rows", [1 << 30, 50])
def test_a_large_read_decoded_in_pieces_equals_the_model(store: Store, split_rows: int) -> None:
    """Many series over two partitions, one of them in two overlapping blocks (the
    second rewriting some samples), and the head: a read cut into pieces of a few
    rows decoded side by side returns exactly what the last writes say."""
    store.SPLIT_READ_ROWS = split_rows
    rng = np.random.default_rng(11)
    labels = [{"__name__": "m", "pod": f"p{i}"} for i in range(90)]
    start = NOW - NOW % (2 * HOUR_MS) - 2 * HOUR_MS - 60_000  # the partition before
    model: dict[tuple[int, int], float] = {}
    for round_, flush in enumerate((True, True, False)):
        ts = start + np.arange(0, 120_000, 10_000) + round_ * 40_000  # overlaps the last
        rows = rng.permutation(np.repeat(np.arange(90), len(ts)))
        times = np.tile(ts, 90)
        values = rng.normal(size=len(rows))
        store.append(SampleBatch.from_series(labels, rows, times, values))
        for r, t, v in zip(rows.tolist(), times.tolist(), values.tolist(), strict=True):
            model[(r, t)] = v
        if flush:
            store.flush()
    assert store.stats()["blocks"] >= 3 and store.stats()["head_samples"] > 0
    ids = np.array(sorted(store.select([Matcher("__name__", "=", "m")])))
    sid = series_ids([canonical(ls) for ls in labels]).tolist()
    got = store.read(ids, start + 5_000, start + 150_000)
    want = sorted(
        (sid[r], t, v) for (r, t), v in model.items() if start + 5_000 <= t <= start + 150_000
    )
    assert list(zip(got.series.tolist(), got.timestamps.tolist(), got.values.tolist(),
                    strict=True)) == want  # fmt: skip


def test_the_new_series_of_a_commit_group_are_recorded_once_each_in_order(store: Store) -> None:
    """Batches of one group commit repeat series within and across them (a decode
    worker's batch lists a series once per sample): the WAL series record holds each
    unknown series once, in first-seen order, with its labels; known ones are left out."""
    canon = [canonical(ls) for ls in LABELS]
    x, y, z = series_ids(canon).tolist()
    store.append(SampleBatch.from_series(LABELS[2:], [0], [NOW - 5000], [1.0]))  # z is known

    def batch(ids: list[int]) -> SampleBatch:
        labels = [canon[[x, y, z].index(i)] for i in ids]
        n = len(ids)
        return SampleBatch(np.array(ids), labels, np.array(ids), np.full(n, NOW), np.ones(n))

    record = store._new_series([batch([y, x, y, z]), batch([z, x, y]), batch([x])])
    assert record is not None
    assert record.ids.tolist() == [y, x]
    assert record.labels == [encode_labels(canon[1]), encode_labels(canon[0])]
    assert store._new_series([batch([z, z])]) is None
