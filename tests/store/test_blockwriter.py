"""Flushes and merges in a child process: same blocks as in process, failures contained."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from hakon.store.block import BlockFile
from hakon.store.blockwriter import (
    NO_METRIC_KEY,
    BlockWriterProcess,
    ChildFailed,
    Job,
    MetricKeys,
    write_blocks,
)
from hakon.store.catalog import Catalog
from hakon.store.engine import HOUR_MS, Store, StoreOptions
from hakon.store.index import SeriesIndex
from hakon.store.interface import RAW, SampleBatch
from hakon.store.labels import METRIC_NAME, Matcher, canonical, series_id

NOW = int(time.time() * 1000)
BLOCK_START = NOW - NOW % (2 * HOUR_MS) - 4 * HOUR_MS  # two closed partitions back


def _store(path, **options) -> tuple[Store, Catalog]:
    catalog = Catalog.open_in(path)
    opts = StoreOptions(maintenance_interval_s=3600, child_min_rows=0, **options)
    return Store(path, catalog, opts).open(), catalog


def _batch(series: int, first: int, count: int, step: int = 15_000, seed: int = 0) -> SampleBatch:
    """`count` scrapes of `series` series (two metrics) from `first`, with noisy values."""
    rng = np.random.default_rng(seed)
    labels = [{"__name__": f"m{i % 2}", "pod": f"p{i}"} for i in range(series)]
    idx = np.repeat(np.arange(series), count)
    ts = np.tile(first + np.arange(count) * step, series)
    values = np.round(rng.normal(100, 10, series * count), 2)
    return SampleBatch.from_series(labels, idx, ts, values)


def _everything(store: Store) -> dict[tuple[int, int], float]:
    ids = np.array(list(store.select([Matcher("__name__", "=~", "m.*")])))
    s = store.read(ids, 0, NOW + HOUR_MS)
    keys = zip(s.series.tolist(), s.timestamps.tolist(), strict=True)
    return dict(zip(keys, s.values.tolist(), strict=True))


def test_a_flush_and_merge_in_a_child_read_back_as_written(tmp_path) -> None:
    store, catalog = _store(tmp_path)
    try:
        expected: dict[tuple[int, int], float] = {}
        for k, first in enumerate([BLOCK_START, BLOCK_START + 30 * 60_000, BLOCK_START]):
            batch = _batch(50, first, 600, seed=k)  # spans two partitions; the last rewrites
            store.append(batch)
            for i, t, v in zip(batch.sample_series, batch.timestamps, batch.values, strict=True):
                expected[(int(i), int(t))] = float(v)
            assert store.flush() > 0
        assert store.stats()["blocks"] == 6  # three flushes, two partitions each
        assert _everything(store) == expected
        assert store.compact(force=True) == 2
        assert store.stats()["blocks"] == 2
        assert store.stats()["samples"] == len(expected)  # rewrites deduplicated
        assert _everything(store) == expected
        ids = np.array(list(store.select([Matcher("__name__", "=", "m0")])))
        rollup = store.read_rollups(ids, BLOCK_START, BLOCK_START + HOUR_MS - 1, HOUR_MS)
        assert int(rollup.count.sum()) == sum(
            1 for (sid, t) in expected if sid in set(ids.tolist()) and t < BLOCK_START + HOUR_MS
        )
    finally:
        store.close()
        catalog.close()


def test_the_child_writes_the_blocks_this_process_would(tmp_path) -> None:
    """Same job, same bytes read back, whichever process writes it."""
    batch = _batch(30, BLOCK_START, 100)
    parts = [(batch.sample_series, batch.timestamps, batch.values)]
    keys = MetricKeys(np.sort(batch.series_ids), np.zeros(len(batch.series_ids), np.int64))
    (tmp_path / "a" / "blocks").mkdir(parents=True)
    (tmp_path / "b" / "blocks").mkdir(parents=True)
    here = write_blocks(Job(str(tmp_path / "a"), 2 * HOUR_MS, 512), parts, keys)
    there = BlockWriterProcess().run(Job(str(tmp_path / "b"), 2 * HOUR_MS, 512), parts, keys)
    assert [[(m.resolution_ms, m.rows, m.min_ts, m.max_ts) for m in p] for p in here] == [
        [(m.resolution_ms, m.rows, m.min_ts, m.max_ts) for m in p] for p in there
    ]
    a = BlockFile.open(tmp_path / "a" / here[0][0].file).read_raw(None, 0, NOW)
    b = BlockFile.open(tmp_path / "b" / there[0][0].file).read_raw(None, 0, NOW)
    assert np.array_equal(a.series, b.series) and np.array_equal(a.timestamps, b.timestamps)
    assert np.array_equal(a.values, b.values)
    assert here[0][0].resolution_ms == RAW


def test_an_error_in_the_child_fails_the_flush_and_a_retry_succeeds(tmp_path) -> None:
    store, catalog = _store(tmp_path)
    try:
        store.append(_batch(10, BLOCK_START, 20))
        blocks = tmp_path / "blocks"
        blocks.rmdir()
        blocks.write_bytes(b"")  # the child cannot create files under it
        with pytest.raises(OSError):
            store.flush()
        assert store.stats()["head_samples"] == 200  # still readable from the frozen head
        assert len(_everything(store)) == 200
        blocks.unlink()
        blocks.mkdir()
        assert store.flush() == 200
        assert store.stats()["head_samples"] == 0 and len(_everything(store)) == 200
    finally:
        store.close()
        catalog.close()


def test_a_killed_child_fails_the_flush_and_leaves_nothing_published(tmp_path) -> None:
    store, catalog = _store(tmp_path)
    try:
        store.append(_batch(1000, BLOCK_START, 400))  # big enough to be caught mid-job
        killed = threading.Event()

        def kill_child() -> None:
            while not killed.is_set():
                proc = store._child.proc
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    killed.set()
                time.sleep(0.001)

        killer = threading.Thread(target=kill_child, daemon=True)
        killer.start()
        with pytest.raises(ChildFailed):
            store.flush()
        killed.set()
        killer.join()
        assert store.stats()["blocks"] == 0 and store.stats()["head_samples"] == 400_000
        assert store.flush() == 400_000
        assert store.stats()["blocks"] == 1 and len(_everything(store)) == 400_000
        names = {p.name for p in (tmp_path / "blocks").iterdir()}
        assert len(names) == 3  # the raw block and its two rollups: no stray file
    finally:
        store.close()
        catalog.close()


def test_metric_keys_name_each_series_run_by_its_metric() -> None:
    index = SeriesIndex()
    labels = [canonical(x) for x in ({"__name__": "a", "i": "1"}, {"__name__": "b"}, {"i": "2"})]
    ids = [series_id(ls) for ls in labels]
    index.add(ids, labels)
    keys = MetricKeys(*index.metric_keys())
    stranger = 12345
    series = np.sort(np.array([*ids, stranger], dtype=np.int64)).repeat(3)
    expected = {
        ids[0]: series_id(((METRIC_NAME, "a"),)),
        ids[1]: series_id(((METRIC_NAME, "b"),)),
        ids[2]: NO_METRIC_KEY,  # no metric name
        stranger: NO_METRIC_KEY,  # not in the index
    }
    assert keys.of_runs(series).tolist() == [expected[s] for s in np.unique(series).tolist()]
    index.add([7], [canonical({"__name__": "c"})])  # a new series rebuilds the arrays
    assert 7 in MetricKeys(*index.metric_keys()).ids.tolist()
