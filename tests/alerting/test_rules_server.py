"""Rule files on a real server: scheduled evaluation, the Prometheus rules/alerts API,
ALERTS written back, reload by API and SIGHUP, and a bad file refused at start."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from serverproc import HakonProcess, wait_for

RULES = """
groups:
  - name: rooms
    interval: 1s
    rules:
      - record: room:temp:max
        expr: max by (room) (temp_celsius)
      - alert: RoomTooHot
        expr: room:temp:max > 30
        for: 2s
        labels:
          severity: warning
        annotations:
          summary: "{{ $labels.room }} at {{ $value }}°C"
"""
EXTRA = """
      - alert: AlwaysOn
        expr: vector(1)
"""


def test_rules_evaluate_on_schedule_and_reload(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES)
    server = HakonProcess(tmp_path / "data", "--rules", str(tmp_path / "*.yml")).start()
    try:
        headers = {"Authorization": f"Bearer {server.admin_token()}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=10) as api:
            now_ms = int(time.time() * 1000)
            body = (
                f'temp_celsius{{room="lab"}} 35 {now_ms}\ntemp_celsius{{room="hall"}} 20 {now_ms}\n'
            )
            assert api.post("/api/v1/import/prometheus", content=body).status_code == 204

            def firing() -> list[dict]:  # type: ignore[type-arg]
                alerts = api.get("/prometheus/api/v1/alerts").json()["data"]["alerts"]
                return [a for a in alerts if a["state"] == "firing"]

            (alert,) = wait_for(firing)
            assert alert["labels"] == {
                "alertname": "RoomTooHot",
                "room": "lab",
                "severity": "warning",
            }
            assert alert["annotations"] == {"summary": "lab at 35°C"}
            groups = api.get("/prometheus/api/v1/rules").json()["data"]["groups"]
            (group,) = groups
            assert group["name"] == "rooms" and group["interval"] == 1
            record, rule = group["rules"]
            assert (record["type"], record["health"]) == ("recording", "ok")
            assert (rule["type"], rule["state"], rule["duration"]) == ("alerting", "firing", 2)
            only_alerts = api.get("/prometheus/api/v1/rules", params={"type": "alert"}).json()
            assert [r["name"] for r in only_alerts["data"]["groups"][0]["rules"]] == ["RoomTooHot"]
            # The alert's state is published before its evaluation's ALERTS samples are
            # appended, so the series may trail the state by one append.
            alerts_series = wait_for(
                lambda: api.get(
                    "/prometheus/api/v1/query", params={"query": 'ALERTS{alertstate="firing"}'}
                ).json()["data"]["result"]
            )
            assert alerts_series[0]["metric"]["room"] == "lab"
            recorded = api.get("/prometheus/api/v1/query", params={"query": "room:temp:max"})
            assert len(recorded.json()["data"]["result"]) == 2

            rules.write_text(RULES + EXTRA)
            reloaded = api.post("/api/v1/admin/reload")
            assert reloaded.json() == {"groups": 1, "rules": 3}
            # State of unchanged rules survives the reload: still firing, same activeAt.
            assert firing()[0]["activeAt"] == alert["activeAt"]

            rules.write_text("groups: [")
            bad = api.post("/api/v1/admin/reload")
            assert bad.status_code == 400 and "not valid YAML" in bad.json()["error"]["message"]
            count = len(api.get("/prometheus/api/v1/rules").json()["data"]["groups"][0]["rules"])
            assert count == 3  # the running rules stay

            rules.write_text(RULES)
            assert server.proc is not None
            server.proc.send_signal(signal.SIGHUP)
            wait_for(
                lambda: (
                    len(api.get("/prometheus/api/v1/rules").json()["data"]["groups"][0]["rules"])
                    == 2
                )
            )
    finally:
        server.stop()


def test_a_bad_rule_file_stops_the_start(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: sum(\n")
    result = subprocess.run(
        [sys.executable, "-m", "hakon", "serve", "--data-dir", str(tmp_path / "d"),
         "--port", "1", "--rules", str(bad)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "cannot load rules" in result.stderr and "could not parse expression" in result.stderr


def test_a_restart_keeps_the_alert_firing_with_its_active_at(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES)
    data = tmp_path / "data"
    server = HakonProcess(data, "--rules", str(rules)).start()
    token = server.admin_token()
    headers = {"Authorization": f"Bearer {token}"}
    now_ms = int(time.time() * 1000)
    try:
        with httpx.Client(base_url=server.url, headers=headers, timeout=10) as api:
            body = f'temp_celsius{{room="lab"}} 35 {now_ms}\n'
            assert api.post("/api/v1/import/prometheus", content=body).status_code == 204

            def seed_alerts() -> list[dict]:  # type: ignore[type-arg]
                return api.get("/api/v1/alerts", params={"state": "firing"}).json()["alerts"]

            (before,) = wait_for(seed_alerts)
            assert before["name"] == "RoomTooHot" and before["severity"] == "warning"
            assert before["description"] == "lab at 35°C"
    finally:
        server.stop()
    again = HakonProcess(data, "--rules", str(rules)).start()
    try:
        with httpx.Client(base_url=again.url, headers=headers, timeout=10) as api:
            (after,) = wait_for(
                lambda: api.get("/api/v1/alerts", params={"state": "firing"}).json()["alerts"]
            )
            assert after["id"] == before["id"]
            assert after["started_at"] == before["started_at"]  # activeAt restored
            filtered = api.get("/api/v1/alerts", params={"severity": "page"}).json()
            assert filtered["alerts"] == [] and filtered["total"] == 0
    finally:
        again.stop()
