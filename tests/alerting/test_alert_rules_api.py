"""`/api/v1/alert-rules` on a real server: seed 002's shape, checked expressions, and the
rules evaluate beside rule files until deleted."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from serverproc import HakonProcess, wait_for

RULE = {
    "name": "DatabaseConnectionFailure",
    "description": "Alert when database connection fails",
    "expression": "increase(database_connection_errors_total[5m]) > 5",
    "duration": "2m",
    "severity": "critical",
    "labels": {"team": "backend", "service": "database"},
    "annotations": {"summary": "Database connection failures detected"},
}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    proc = HakonProcess(tmp_path_factory.mktemp("rules") / "data").start()
    headers = {"Authorization": f"Bearer {proc.admin_token()}"}
    with httpx.Client(base_url=proc.url, headers=headers, timeout=10) as client:
        try:
            yield client
        finally:
            proc.stop()


def test_create_get_list_update_delete(api: httpx.Client) -> None:
    created = api.post("/api/v1/alert-rules", json=RULE)
    assert created.status_code == 201, created.text
    rule = created.json()
    assert {k: rule[k] for k in RULE} == RULE
    assert rule["group"] == "api" and rule["interval"] == "1m" and rule["state"] == "inactive"
    assert api.get(f"/api/v1/alert-rules/{rule['id']}").json() == rule
    listed = api.get("/api/v1/alert-rules").json()
    assert listed["total"] == 1 and listed["per_page"] == 20
    groups = api.get("/prometheus/api/v1/rules").json()["data"]["groups"]
    (loaded,) = [r for g in groups for r in g["rules"]]
    assert loaded["name"] == RULE["name"] and loaded["labels"]["severity"] == "critical"
    assert loaded["annotations"]["description"] == RULE["description"]
    patched = api.patch(f"/api/v1/alert-rules/{rule['id']}", json={"severity": "warning"})
    assert patched.json()["severity"] == "warning"
    duplicate = api.post("/api/v1/alert-rules", json=RULE)
    assert duplicate.status_code == 409
    assert api.delete(f"/api/v1/alert-rules/{rule['id']}").status_code == 204
    assert api.get(f"/api/v1/alert-rules/{rule['id']}").status_code == 404
    assert api.get("/prometheus/api/v1/rules").json()["data"]["groups"] == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"expression": "sum(rate(x[5m])"}, "expression"),
        ({"duration": "soon"}, "duration"),
        ({"labels": {"bad-name": "x"}}, "labels"),
        ({"annotations": {"s": "{{ if $value }}x{{ end }}"}}, "annotations"),
        ({"name": ""}, "body.name"),
    ],
)
def test_a_bad_rule_is_a_400_naming_the_field(
    api: httpx.Client, change: dict[str, object], field: str
) -> None:
    r = api.post("/api/v1/alert-rules", json={**RULE, "name": "Bad", **change})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["details"]["field"] == field
    assert api.get("/api/v1/alert-rules").json()["total"] == 0  # nothing was stored


def test_an_api_rule_fires(api: httpx.Client) -> None:
    rule = {**RULE, "name": "Hot", "expression": "room_temp > 30", "duration": "0s",
            "interval": "1s", "group": "fast"}  # fmt: skip
    created = api.post("/api/v1/alert-rules", json=rule).json()
    body = f'room_temp{{room="lab"}} 35 {int(time.time() * 1000)}\n'
    assert api.post("/api/v1/import/prometheus", content=body).status_code == 204
    wait_for(lambda: api.get(f"/api/v1/alert-rules/{created['id']}").json()["state"] == "firing")
    (alert,) = api.get("/api/v1/alerts").json()["alerts"]
    assert alert["name"] == "Hot" and alert["severity"] == "critical"
    assert alert["description"] == RULE["description"]
    api.delete(f"/api/v1/alert-rules/{created['id']}")
