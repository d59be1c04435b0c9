"""Hakon pushes its alerts to a real Alertmanager (Debian's prometheus-alertmanager)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from peers import ALERTMANAGER, AlertmanagerProcess
from serverproc import HakonProcess

pytestmark = pytest.mark.skipif(
    ALERTMANAGER is None, reason="Debian package prometheus-alertmanager missing"
)

RULES = """
groups:
  - name: rooms
    interval: 1s
    rules:
      - alert: RoomTooHot
        expr: temp_celsius > 30
        labels: {severity: warning}
        annotations: {summary: "{{ $labels.room }} is hot"}
"""


def test_alerts_appear_in_alertmanager_and_resolve(tmp_path: Path) -> None:
    am = AlertmanagerProcess(tmp_path).start()
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES)
    hakon = HakonProcess(
        tmp_path / "data", "--rules", str(rules), "--alertmanager-url", am.url
    ).start()
    try:
        headers = {"Authorization": f"Bearer {hakon.admin_token()}"}
        with httpx.Client(base_url=hakon.url, headers=headers, timeout=10) as api:
            now = int(time.time() * 1000)
            body = f'temp_celsius{{room="lab"}} 35 {now}\n'
            assert api.post("/api/v1/import/prometheus", content=body).status_code == 204

            def in_alertmanager(active: bool) -> list[dict]:  # type: ignore[type-arg]
                params = {"active": str(active).lower(), "silenced": "false", "inhibited": "false"}
                alerts = httpx.get(am.url + "/api/v2/alerts", params=params).json()
                return [a for a in alerts if a["labels"].get("alertname") == "RoomTooHot"]

            deadline = time.monotonic() + 30
            while not in_alertmanager(True) and time.monotonic() < deadline:
                time.sleep(0.3)
            (alert,) = in_alertmanager(True)
            assert alert["labels"] == {
                "alertname": "RoomTooHot",
                "room": "lab",
                "severity": "warning",
            }
            assert alert["annotations"] == {"summary": "lab is hot"}
            assert alert["status"]["state"] == "active"

            body = f'temp_celsius{{room="lab"}} 20 {int(time.time() * 1000)}\n'
            assert api.post("/api/v1/import/prometheus", content=body).status_code == 204
            deadline = time.monotonic() + 30
            while in_alertmanager(True) and time.monotonic() < deadline:
                time.sleep(0.3)
            assert not in_alertmanager(True)  # resolved: endsAt reached
    finally:
        hakon.stop()
        am.stop()
