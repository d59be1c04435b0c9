"""A damaged Parquet block and damaged catalog rows: the server still starts, reports
the damage in /api/v1/admin/storage (and the log), and serves everything else."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import httpx
from serverproc import HakonProcess

HOUR_MS = 3_600_000


def _write(api: httpx.Client, name: str, ts_ms: int) -> None:
    body = "".join(f'{name}{{i="{i}"}} {i} {ts_ms + i}\n' for i in range(50))
    assert api.post("/api/v1/import/prometheus", content=body).status_code == 204


def _count(api: httpx.Client, query: str, at_ms: int) -> int:
    body = api.get("/prometheus/api/v1/query", params={"query": query, "time": at_ms / 1000})
    result = body.json()["data"]["result"]
    return int(float(result[0]["value"][1])) if result else 0


def test_damaged_block_and_rows_are_reported_and_the_rest_served(tmp_path: Path) -> None:
    data = tmp_path / "data"
    now = int(time.time() * 1000)
    old_ms, new_ms = now - 5 * HOUR_MS, now - 60_000
    server = HakonProcess(data).start()
    headers = {"Authorization": f"Bearer {server.admin_token()}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as api:
        _write(api, "old_metric", old_ms)
        _write(api, "new_metric", new_ms)
        _write(api, "labels_lost", new_ms)
        assert api.post("/api/v1/admin/flush").status_code == 200
        kept = api.post("/api/v1/fleets", json={"name": "kept", "capacity": 1}).json()
        lost = api.post("/api/v1/fleets", json={"name": "lost", "capacity": 1}).json()
        rule = api.post("/api/v1/alert-rules", json={"name": "R", "expression": "up == 0"})
        hook = api.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/", "events": ["x.y"]})
        assert rule.status_code == 201 and hook.status_code == 201
    server.stop()

    with duckdb.connect(str(data / "catalog.duckdb")) as con:
        (old_file,) = con.execute(
            "SELECT file FROM blocks WHERE resolution_ms = 0 AND max_ts < ? ", [now - HOUR_MS]
        ).fetchone()  # type: ignore[misc]
        con.execute("UPDATE registry_resources SET spec = '{not json' WHERE id = ?", [lost["id"]])
        con.execute("UPDATE alert_rules SET labels = '[' WHERE id = ?", [rule.json()["id"]])
        con.execute("UPDATE webhooks SET events = 'nope' WHERE id = ?", [hook.json()["id"]])
        con.execute("UPDATE series SET labels = 'garbage' WHERE labels LIKE '%labels_lost%'")
    block = data / old_file
    block.write_bytes(block.read_bytes()[: block.stat().st_size // 2])  # torn in half

    server = HakonProcess(data).start()
    try:
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as api:
            storage = api.get("/api/v1/admin/storage").json()
            assert [d["file"] for d in storage["damaged"]] == [old_file]
            tables = sorted({d["table"] for d in storage["damaged_rows"]})
            assert tables == ["alert_rules", "registry_resources", "series", "webhooks"]
            assert "damaged" in server.output  # and the log says so
            assert _count(api, "count(new_metric)", new_ms + 1000) == 50
            assert _count(api, "count(labels_lost)", new_ms + 1000) == 0
            fleets = [f["id"] for f in api.get("/api/v1/fleets").json()["fleets"]]
            assert fleets == [kept["id"]]
            assert api.get("/api/v1/alert-rules").json()["rules"] == []
            assert api.get("/api/v1/webhooks").status_code == 200
            assert (
                api.post("/api/v1/fleets", json={"name": "new", "capacity": 1}).status_code == 201
            )
    finally:
        server.stop()
