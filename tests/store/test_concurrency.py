"""Reads during appends, flushes and compactions see no partial block and no duplicate."""

from __future__ import annotations

import threading
import time

import numpy as np

from hakon.store.catalog import Catalog
from hakon.store.engine import Store, StoreOptions
from hakon.store.interface import SampleBatch


def test_readers_see_consistent_snapshots(tmp_path) -> None:
    catalog = Catalog.open_in(tmp_path)
    store = Store(
        tmp_path, catalog, StoreOptions(compaction_min_blocks=2, maintenance_interval_s=3600)
    ).open()
    base = int(time.time() * 1000) - 3_600_000
    labels = [{"__name__": "c", "i": str(i)} for i in range(10)]
    ids = SampleBatch.from_series(labels, range(10), [base] * 10, [0.0] * 10).series_ids
    acked = [0] * 4
    stop = threading.Event()
    errors: list[str] = []

    def writer(w: int) -> None:
        n = 0
        while not stop.is_set() and n < 400:
            ts = base + (w * 1000 + n) * 10
            store.append(SampleBatch.from_series(labels, range(10), [ts] * 10, [float(n)] * 10))
            n += 1
            acked[w] = n

    def maintainer() -> None:
        while not stop.is_set():
            store.flush()
            store.compact()
            time.sleep(0.01)

    def reader() -> None:
        last = 0
        while not stop.is_set():
            floor = sum(acked) * 10
            got = store.read(ids, base, base + 10**8)
            pairs = np.stack([got.series, got.timestamps])
            if len(np.unique(pairs, axis=1)[0]) != len(got):
                errors.append("duplicate sample")
            if len(got) < max(floor, last):
                errors.append(f"lost samples: {len(got)} < {max(floor, last)}")
            last = len(got)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    threads += [threading.Thread(target=maintainer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads[:4]:
        t.join(timeout=60)
    stop.set()
    for t in threads[4:]:
        t.join(timeout=60)
    try:
        assert not errors, errors[:5]
        assert len(store.read(ids, base, base + 10**8)) == 4 * 400 * 10
        assert store.stats()["blocks"] >= 1
    finally:
        store.close()
        catalog.close()


def test_failed_fsync_acknowledges_nothing_it_could_not_persist(tmp_path, monkeypatch) -> None:
    import errno
    import os

    import pytest

    from hakon.errors import InsufficientStorage

    catalog = Catalog.open_in(tmp_path)
    store = Store(tmp_path, catalog, StoreOptions(maintenance_interval_s=3600)).open()
    base = int(time.time() * 1000) - 60_000
    labels = [{"__name__": "f", "i": str(i)} for i in range(3)]

    def batch(n: int) -> SampleBatch:
        return SampleBatch.from_series(labels, range(3), [base + n] * 3, [float(n)] * 3)

    store.append(batch(1))
    real = os.fdatasync
    calls = {"n": 0}

    def failing(fd: int) -> None:
        calls["n"] += 1
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdatasync", failing)
    with pytest.raises(InsufficientStorage):
        store.append(batch(2))
    assert calls["n"] == 1
    monkeypatch.setattr(os, "fdatasync", real)
    store.append(batch(3))  # the disk is back: appends work again
    ids = batch(1).series_ids
    assert sorted(set(store.read(ids, base, base + 10).timestamps.tolist())) == [base + 1, base + 3]
    store.close()
    catalog.close()
    catalog = Catalog.open_in(tmp_path)
    reopened = Store(tmp_path, catalog).open()
    try:  # the failed batch is not in the WAL either
        got = reopened.read(ids, base, base + 10)
        assert sorted(set(got.timestamps.tolist())) == [base + 1, base + 3]
        assert len(got) == 6
    finally:
        reopened.close()
        catalog.close()
