"""The seeds' native range endpoints on a real server: buckets, aggregates, rollups, errors.

Data goes in through the real ingest routes (seed 001 edge reports, HakonGo
node payloads); every expected figure below is worked out by hand from it.
The same answers must come back from the head (rollups computed on the fly)
and, after a flush, from the stored rollup blocks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from serverproc import HakonProcess

MIN = 60_000
NOW_MS = int(time.time() * 1000)
BASE_MS = (NOW_MS - 40 * MIN) // (5 * MIN) * (5 * MIN)  # a 5-minute boundary, 40+ min ago


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def api(server: HakonProcess) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {server.admin_token()}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        for k in range(30):  # one report a minute: six 5-minute buckets of five
            for node, factor in (("node-a", 1), ("node-b", 2)):
                body = {
                    "timestamp": iso(BASE_MS + k * MIN),
                    "cpu_usage": factor * k,
                    "memory_usage": 2.0,
                    "memory_total": 8.0,
                    "network": {"rx_bytes": 1000 * k, "tx_bytes": 10 * k},
                }
                r = client.post(f"/api/v1/metrics/nodes/{node}", json=body)
                assert r.status_code == 200, r.text
            resources = [
                {
                    "name": f"n{i}",
                    "cpu_capacity_cores": 4,
                    "cpu_usage_cores": 1 + i,
                    "memory_capacity_bytes": 1000,
                    "memory_working_set_bytes": 250,
                    "network_rx_bytes_total": 600 * k,
                    "network_tx_bytes_total": 300 * k,
                    "pods_running": 10,
                    "ready": True,
                }
                for i in range(2)
            ]
            payload = {
                "cluster_id": "c-1",
                "context": {"name": "prod"},
                "collected_at": iso(BASE_MS + k * MIN),
                "resources": resources,
            }
            r = client.post("/api/v1/hakongo/nodes", json=payload)
            assert r.status_code in (200, 202, 204), r.text
        yield client


def buckets_of(points: list[dict[str, Any]]) -> dict[str, float]:
    return {p["timestamp"]: p["value"] for p in points}


def expected(fn: Any) -> dict[str, float]:
    """Bucket j (five reports, k = 5j .. 5j+4) -> fn(j)."""
    return {iso(BASE_MS + 5 * MIN * j): fn(j) for j in range(6)}


@pytest.mark.parametrize(
    ("aggregate", "per_bucket"),
    [
        ("avg", lambda j: 5 * j + 2),
        ("min", lambda j: 5 * j),
        ("max", lambda j: 5 * j + 4),
        ("sum", lambda j: 25 * j + 10),
        ("count", lambda j: 5),
        ("last", lambda j: 5 * j + 4),
        ("p95", lambda j: 5 * j + 3.8),
    ],
)
def test_node_buckets_per_aggregate(api: httpx.Client, aggregate: str, per_bucket: Any) -> None:
    r = api.get(
        "/api/v1/metrics/nodes/node-a",
        params={"timeframe": "1h", "resolution": "5m", "aggregate": aggregate},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["node_id"] == "node-a"
    assert (body["timeframe"], body["resolution"], body["aggregate"]) == ("1h", "5m", aggregate)
    got = buckets_of(body["metrics"]["cpu_usage"])
    assert got == pytest.approx(expected(per_bucket))


def test_node_counter_rate_and_one_minute_raw_buckets(api: httpx.Client) -> None:
    body = api.get("/api/v1/metrics/nodes/node-a", params={"resolution": "5m"}).json()
    rates = buckets_of(body["metrics"]["network_rx_rate"])
    # 5,000 bytes between consecutive buckets' last reports, 300 s apart; none for the first.
    assert rates == pytest.approx({k: 5000 / 300 for k in list(expected(lambda j: 0))[1:]})
    minute = api.get("/api/v1/metrics/nodes/node-a", params={"resolution": "1m"}).json()
    got = buckets_of(minute["metrics"]["cpu_usage"])
    assert got == {iso(BASE_MS + k * MIN): k for k in range(30)}


def test_fleet_view(api: httpx.Client) -> None:
    body = api.get("/api/v1/metrics", params={"timeframe": "1h", "resolution": "5m"}).json()
    assert body["nodes_count"] == 2
    got = buckets_of(body["aggregated"]["cpu_usage_avg"])
    assert got == pytest.approx(expected(lambda j: 1.5 * (5 * j + 2)))
    assert body["nodes"]["node-a"]["cpu_usage_avg"] == pytest.approx(14.5)
    assert body["nodes"]["node-b"]["cpu_usage_avg"] == pytest.approx(29.0)
    assert body["nodes"]["node-b"]["memory_usage_avg"] == pytest.approx(2.0)
    maxed = api.get("/api/v1/metrics", params={"aggregate": "max"}).json()
    assert buckets_of(maxed["aggregated"]["cpu_usage_max"]) == pytest.approx(
        expected(lambda j: 2 * (5 * j + 4))
    )


def test_cluster_view_in_seed_002_shape(api: httpx.Client) -> None:
    params = {
        "start": iso(BASE_MS),
        "end": iso(BASE_MS + 30 * MIN - 1000),
        "step": "5m",
        "metrics": "cpu_usage,memory_usage,network_io,pods_running",
    }
    body = api.get("/api/v1/clusters/c-1/metrics", params=params).json()
    cpu = body["metrics"]["cpu_usage"]
    assert cpu["metric"] == "cpu_usage"
    # (1 + 2) cores used of 2 x 4: 37.5 %, in every bucket
    assert cpu["values"] == [[t, "37.5"] for t in expected(lambda j: 0)]
    assert {v for _, v in body["metrics"]["memory_usage"]["values"]} == {"25"}
    # two nodes x (600 + 300) bytes a minute: 1,800 bytes / 60 s
    io = [float(v) for _, v in body["metrics"]["network_io"]["values"]]
    assert io == pytest.approx([30.0] * 5)
    assert {v for _, v in body["metrics"]["pods_running"]["values"]} == {"20"}


def test_stored_rollups_give_the_same_answers(api: httpx.Client) -> None:
    queries = [
        ("/api/v1/metrics/nodes/node-a", {"resolution": "5m", "aggregate": "avg"}),
        ("/api/v1/metrics/nodes/node-b", {"resolution": "1h", "aggregate": "max"}),
        ("/api/v1/metrics", {"resolution": "5m", "aggregate": "last"}),
        ("/api/v1/clusters/c-1/metrics", {"step": "5m", "start": iso(BASE_MS)}),
    ]
    before = [api.get(path, params=params).json() for path, params in queries]
    flushed = api.post("/api/v1/admin/flush").json()["storage"]
    assert flushed["head_samples"] == 0 and flushed["rollup_blocks"] > 0  # now read from blocks
    after = [api.get(path, params=params).json() for path, params in queries]
    for b, a in zip(before, after, strict=True):
        b.pop("end", None), a.pop("end", None)
        assert a == b


@pytest.mark.parametrize(
    ("path", "params", "status", "field"),
    [
        ("/api/v1/metrics/nodes/node-a", {"aggregate": "median"}, 400, "aggregate"),
        ("/api/v1/metrics/nodes/node-a", {"resolution": "soon"}, 400, "resolution"),
        (
            "/api/v1/metrics/nodes/node-a",
            {"timeframe": "30d", "resolution": "1s"},
            400,
            "resolution",
        ),
        ("/api/v1/metrics/nodes/nobody", {}, 404, None),
        ("/api/v1/clusters/c-1/metrics", {"metrics": "cpu_usage,magic"}, 400, "metrics"),
        ("/api/v1/clusters/c-1/metrics", {"start": "tomorrow"}, 400, "start"),
        ("/api/v1/clusters/nope/metrics", {}, 404, None),
    ],
)
def test_bad_requests_name_the_field(
    api: httpx.Client, path: str, params: dict[str, str], status: int, field: str | None
) -> None:
    r = api.get(path, params=params)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    if field:
        assert error["details"]["field"] == field
