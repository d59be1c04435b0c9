"""Long PromQL ranges answer *_over_time from rollups, with the raw answers' values."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hakon.query.engine import Engine, QueryOptions
from hakon.store.catalog import Catalog
from hakon.store.engine import Store, StoreOptions
from hakon.store.interface import SampleBatch

HOUR = 3_600_000
END = (int(time.time() * 1000) // HOUR - 2) * HOUR  # a whole hour, two hours ago
START = END - 8 * 24 * HOUR


class CountingReader:
    """The real store, counting which kind of read each query makes."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.raw_reads = 0
        self.rollup_reads = 0

    def select(self, matchers: Any) -> Any:
        return self.store.select(matchers)

    def read(self, ids: Any, start: int, end: int, at: Any = None) -> Any:
        self.raw_reads += 1
        return self.store.read(ids, start, end, at)

    def read_rollups(self, ids: Any, start: int, end: int, resolution: int) -> Any:
        self.rollup_reads += 1
        return self.store.read_rollups(ids, start, end, resolution)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    data: Path = tmp_path_factory.mktemp("rollups")
    s = Store(data, Catalog.open_in(data), StoreOptions(maintenance_interval_s=3600)).open()
    rng = np.random.default_rng(3)
    labels = [{"__name__": "temp", "room": str(i)} for i in range(3)]
    ts = np.arange(START + 1, END, 300_000)  # every 5 minutes, never on a boundary
    ts = ts + rng.integers(0, 200_000, len(ts))
    index = np.repeat(np.arange(3), len(ts))
    values = np.round(rng.normal(20, 3, 3 * len(ts)), 2)
    s.append(SampleBatch.from_series(labels, index, np.tile(ts, 3), values))
    s.flush()
    yield s
    s.close()


@pytest.mark.parametrize(
    "query",
    [
        "avg_over_time(temp[1h])",
        "max_over_time(temp[2h])",
        "min_over_time(temp[1h])",
        "sum_over_time(temp[1h])",
        "count_over_time(temp[3h])",
        "last_over_time(temp[1h])",
        "present_over_time(temp[1h])",
        "sum by (room) (avg_over_time(temp{room=~'1|2'}[1h]))",
    ],
)
def test_a_long_aligned_query_reads_rollups_and_matches_raw(store: Store, query: str) -> None:
    rolled_reader = CountingReader(store)
    rolled = Engine(rolled_reader).range(query, START + 3 * HOUR, END, HOUR)  # type: ignore[arg-type]
    assert rolled_reader.raw_reads == 0 and rolled_reader.rollup_reads == 1
    raw_reader = CountingReader(store)
    raw_engine = Engine(raw_reader, QueryOptions(rollup_min_span_ms=0))  # type: ignore[arg-type]
    raw = raw_engine.range(query, START + 3 * HOUR, END, HOUR)
    assert raw_reader.rollup_reads == 0
    a, b = rolled.value, raw.value
    assert a.labels == b.labels  # type: ignore[union-attr]
    assert (a.present == b.present).all()  # type: ignore[union-attr]
    np.testing.assert_allclose(a.values[a.present], b.values[b.present], rtol=1e-12)  # type: ignore[union-attr]


def test_five_minute_rollups_serve_ranges_of_whole_five_minutes(store: Store) -> None:
    reader = CountingReader(store)
    Engine(reader).range("avg_over_time(temp[90m])", START + 3 * HOUR, END, HOUR)  # type: ignore[arg-type]
    assert reader.rollup_reads == 1 and reader.raw_reads == 0


@pytest.mark.parametrize(
    ("query", "step", "start"),
    [
        ("avg_over_time(temp[1h])", HOUR, END - 24 * HOUR),  # too short a span
        ("avg_over_time(temp[97m])", HOUR, START + 3 * HOUR),  # range not whole buckets
        ("avg_over_time(temp[1h])", 7 * 60_000, START + 3 * HOUR),  # step not whole buckets
        ("rate(temp[1h])", HOUR, START + 3 * HOUR),  # not answerable from rollups
    ],
)
def test_other_queries_read_raw_samples(store: Store, query: str, step: int, start: int) -> None:
    reader = CountingReader(store)
    Engine(reader).range(query, start, END, step)  # type: ignore[arg-type]
    assert reader.rollup_reads == 0 and reader.raw_reads == 1
