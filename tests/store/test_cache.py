"""The row-group cache: hits skip decoding, and it never holds more than its bound."""

from __future__ import annotations

import numpy as np

from hakon.store.cache import RowGroupCache


def test_hits_skip_the_loader_and_the_bound_holds() -> None:
    cache = RowGroupCache(max_bytes=3 * 800)
    loads: list[int] = []

    def loader(key: int):  # type: ignore[no-untyped-def]
        def load() -> dict[str, np.ndarray]:
            loads.append(key)
            return {"v": np.zeros(100)}  # 800 bytes

        return load

    for key in (1, 2, 3, 1):
        cache.get(key, loader(key))
    assert loads == [1, 2, 3] and cache.hits == 1
    cache.get(4, loader(4))  # evicts the least recently used: 2
    assert cache.nbytes <= cache.max_bytes
    cache.get(1, loader(1))
    cache.get(2, loader(2))
    assert loads == [1, 2, 3, 4, 2]


def test_an_entry_larger_than_the_cache_is_returned_but_not_kept() -> None:
    cache = RowGroupCache(max_bytes=100)
    got = cache.get("big", lambda: {"v": np.zeros(1000)})
    assert len(got["v"]) == 1000 and cache.nbytes == 0


def test_a_removed_blocks_entries_are_forgotten() -> None:
    cache = RowGroupCache(1 << 20)
    column = {"v": np.zeros(100)}
    cache.get(("/blocks/a.parquet", "raw", 0), lambda: column)
    cache.get(("/blocks/a.parquet", 1), lambda: column)
    cache.get(("/blocks/b.parquet", 0), lambda: column)
    cache.forget("/blocks/a.parquet")
    assert cache.nbytes == 800
    loads: list[int] = []

    def load() -> dict[str, np.ndarray]:
        loads.append(1)
        return column

    cache.get(("/blocks/b.parquet", 0), load)
    assert loads == []  # b's entry stayed


def test_entries_not_read_for_the_idle_time_leave() -> None:
    clock = [1000.0]
    cache = RowGroupCache(1 << 20, idle_s=60, clock=lambda: clock[0])
    column = {"v": np.zeros(100)}
    cache.get("read often", lambda: column)
    cache.get("read once", lambda: column)
    clock[0] += 45
    cache.get("read often", lambda: column)  # a hit renews it
    clock[0] += 30  # "read once" is 75 s idle now, "read often" 30 s
    cache.expire()
    assert cache.nbytes == 800
    loads: list[str] = []
    cache.get("read often", lambda: loads.append("often") or column)  # type: ignore[func-returns-value]
    cache.get("read once", lambda: loads.append("once") or column)  # type: ignore[func-returns-value]
    assert loads == ["once"]
    clock[0] += 61  # both idle: a read of something else clears them on its way
    cache.get("new", lambda: column)
    assert cache.nbytes == 800


def test_no_idle_bound_keeps_entries_until_the_size_needs_them() -> None:
    clock = [0.0]
    cache = RowGroupCache(1 << 20, idle_s=0, clock=lambda: clock[0])
    cache.get("a", lambda: {"v": np.zeros(100)})
    clock[0] += 10**6
    cache.expire()
    assert cache.nbytes == 800
