"""Query limits: too many series, samples or points is a 422; too slow is a 503 timeout."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from serverproc import HakonProcess

from hakon.errors import QueryTimeout, Unprocessable
from hakon.query.engine import Engine, QueryOptions
from hakon.store.catalog import Catalog
from hakon.store.engine import Store, StoreOptions
from hakon.store.interface import RAW, SampleBatch

SERIES, STEPS = 2000, 240
FOREVER = 10**14


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    data = tmp_path_factory.mktemp("limits")
    options = StoreOptions(retention_ms={RAW: FOREVER, 300_000: FOREVER, 3_600_000: FOREVER})
    s = Store(data, Catalog.open_in(data), options).open()
    labels = [{"__name__": "load", "i": str(i), "group": str(i % 10)} for i in range(SERIES)]
    index = np.repeat(np.arange(SERIES), STEPS)
    ts = np.tile(np.arange(STEPS) * 15_000 + 1_000, SERIES)
    s.append(SampleBatch.from_series(labels, index, ts, np.random.default_rng(0).random(len(ts))))
    yield s
    s.close()


def test_series_samples_and_points_limits_are_422(store: Store) -> None:
    query = "sum by (group) (rate(load[5m]))"
    with pytest.raises(Unprocessable, match="query_max_series"):
        Engine(store, QueryOptions(max_series=SERIES - 1)).range(query, 0, 3_600_000, 15_000)
    with pytest.raises(Unprocessable, match="query_max_samples"):
        Engine(store, QueryOptions(max_samples=1000)).range(query, 0, 3_600_000, 15_000)
    with pytest.raises(Unprocessable, match="query_max_points"):
        Engine(store, QueryOptions(max_points=SERIES * 10)).range(query, 0, 3_600_000, 15_000)
    # Within the limits, the same query answers.
    result = Engine(store, QueryOptions(max_series=SERIES)).range(query, 0, 3_600_000, 15_000)
    assert len(result.value.labels) == 10  # type: ignore[union-attr]


def test_a_query_past_its_timeout_fails_with_timeout(store: Store) -> None:
    engine = Engine(store, QueryOptions(timeout_s=1e-4))
    with pytest.raises(QueryTimeout, match="timed out"):
        engine.range("sum(rate(load[5m])) + sum(rate(load[1m]))", 0, 3_600_000, 15_000)


def test_a_limit_over_http_is_a_422_execution_error(tmp_path: Path) -> None:
    with HakonProcess(tmp_path / "data", "--query-max-series", "1") as srv:
        headers = {"Authorization": f"Bearer {srv.admin_token()}"}
        with httpx.Client(base_url=srv.url, headers=headers) as client:
            lines = "".join(f'm{{i="{i}"}} {i}\n' for i in range(3))
            r = client.post("/api/v1/import/prometheus", content=lines)
            assert r.status_code == 204, r.text
            r = client.get("/prometheus/api/v1/query", params={"query": "m"})
            assert r.status_code == 422, r.text
            body = r.json()
            assert (body["status"], body["errorType"]) == ("error", "execution")
            assert "query_max_series" in body["error"]
            one = client.get("/prometheus/api/v1/query", params={"query": 'm{i="1"}'})
            assert one.json()["data"]["result"][0]["value"][1] == "1"


def test_the_small_query_estimate_bounds_series_from_postings_alone(store: Store) -> None:
    engine = Engine(store)
    assert engine.estimated_points('load{i="7"}', 100) == 100
    assert engine.estimated_points('rate(load{i="7"}[5m]) + load{i="8"}', 10) == 20
    assert engine.estimated_points('sum(load{group="3"})', 1) == SERIES // 10
    assert engine.estimated_points('{i=~"7|8"}', 1) is None  # no equality matcher: unknown
    assert engine.estimated_points('max_over_time(load{i="7"}[5m:1m])', 1) is None
