"""Webhooks end to end: a real receiver on loopback gets signed alert notifications,
once, retried through failures; the API never shows a secret."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from serverproc import HakonProcess, wait_for

from tests.alerting.receiver import Receiver

RULES = """
groups:
  - name: rooms
    interval: 1s
    rules:
      - alert: RoomTooHot
        expr: temp_celsius > 30
        for: 1s
        labels: {severity: warning}
        annotations: {summary: "{{ $labels.room }} at {{ $value }}"}
"""


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    """Receivers a test opens; all closed after it."""
    opened: list[Receiver] = []
    yield opened
    for receiver in opened:
        receiver.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[HakonProcess, httpx.Client]]:
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES)
    proc = HakonProcess(tmp_path / "data", "--rules", str(rules)).start()
    headers = {"Authorization": f"Bearer {proc.admin_token()}"}
    with httpx.Client(base_url=proc.url, headers=headers, timeout=10) as api:
        try:
            yield proc, api
        finally:
            proc.stop()


def _temp(api: httpx.Client, value: float) -> None:
    body = f'temp_celsius{{room="lab"}} {value} {int(time.time() * 1000)}\n'
    assert api.post("/api/v1/import/prometheus", content=body).status_code == 204


def test_one_signed_firing_then_one_resolved(
    server: tuple[HakonProcess, httpx.Client], receivers: list[Receiver]
) -> None:
    _, api = server
    receiver = Receiver()
    receivers.append(receiver)
    created = api.post(
        "/api/v1/webhooks",
        json={"url": receiver.url, "events": ["alert.firing", "alert.resolved"], "secret": "s3"},
    )
    assert created.status_code == 201, created.text
    hook = created.json()
    assert hook["has_secret"] is True and "secret" not in hook
    _temp(api, 35)
    (firing,) = wait_for(lambda: receiver.events("alert.firing"))
    headers, body = next(
        (h, b) for h, b in receiver.requests if h["X-Hakon-Event"] == "alert.firing"
    )
    expected = hmac.new(b"s3", headers["X-Hakon-Timestamp"].encode() + b"." + body, hashlib.sha256)
    assert headers["X-Hakon-Signature"] == "sha256=" + expected.hexdigest()
    assert firing["type"] == "alert.firing" and firing["id"].startswith("evt_")
    payload = firing["data"]
    assert payload["version"] == "4" and payload["status"] == "firing"
    (alert,) = payload["alerts"]
    assert alert["labels"] == {"alertname": "RoomTooHot", "room": "lab", "severity": "warning"}
    assert alert["annotations"] == {"summary": "lab at 35"}
    _temp(api, 20)
    (resolved,) = wait_for(lambda: receiver.events("alert.resolved"))
    assert resolved["data"]["status"] == "resolved"
    assert resolved["data"]["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"
    time.sleep(2)
    assert len(receiver.events("alert.firing")) == 1  # never announced twice


def test_a_failing_receiver_gets_the_event_once_after_retries(
    server: tuple[HakonProcess, httpx.Client], receivers: list[Receiver]
) -> None:
    _, api = server
    receiver = Receiver(fail=3)
    receivers.append(receiver)
    hook = api.post(
        "/api/v1/webhooks", json={"url": receiver.url, "events": ["webhook.test"]}
    ).json()
    assert api.post(f"/api/v1/webhooks/{hook['id']}/test").json() == {"queued": 1}
    wait_for(lambda: receiver.requests, timeout=40)
    (delivery,) = wait_for(
        lambda: [
            d
            for d in api.get(f"/api/v1/webhooks/{hook['id']}/deliveries").json()["deliveries"]
            if d["status"] == "delivered"
        ]
    )
    assert delivery["attempts"] == 4 and delivery["response_status"] == 204
    assert len(receiver.requests) == 1 and receiver.attempts == 4


def test_webhook_api_validates_and_hides_secrets(server: tuple[HakonProcess, httpx.Client]) -> None:
    _, api = server
    bad = api.post("/api/v1/webhooks", json={"url": "ftp://x/y", "events": ["alert.firing"]})
    assert bad.status_code == 400 and bad.json()["error"]["details"]["field"] == "url"
    none = api.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/h", "events": []})
    assert none.status_code == 400
    hook = api.post(
        "/api/v1/webhooks",
        json={"url": "http://127.0.0.1:9/h", "events": ["alert.firing"], "secret": "x"},
    ).json()
    listed = api.get("/api/v1/webhooks").json()
    assert listed["total"] == 1 and "secret" not in json.dumps(listed).replace("has_secret", "")
    patched = api.patch(f"/api/v1/webhooks/{hook['id']}", json={"active": False}).json()
    assert patched["active"] is False and patched["has_secret"] is True
    assert api.delete(f"/api/v1/webhooks/{hook['id']}").status_code == 204
    assert api.get(f"/api/v1/webhooks/{hook['id']}").status_code == 404


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "0.0.0.0"])
def test_a_webhook_cannot_point_at_this_server(
    server: tuple[HakonProcess, httpx.Client], host: str
) -> None:
    """Not even with webhook_allow_private on (the default): its admin routes are not
    a receiver. Other ports on the same host stay allowed (receivers run beside it)."""
    proc, api = server
    own = f"http://{host}:{proc.port}/api/v1/admin/flush"
    refused = api.post("/api/v1/webhooks", json={"url": own, "events": ["alert.firing"]})
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["details"]["field"] == "url"
    assert "this Hakon server itself" in refused.json()["error"]["message"]
    other = f"http://{host}:{proc.port + 1}/hook"
    hook = api.post("/api/v1/webhooks", json={"url": other, "events": ["alert.firing"]})
    assert hook.status_code == 201
    moved = api.patch(f"/api/v1/webhooks/{hook.json()['id']}", json={"url": own})
    assert moved.status_code == 400
    assert api.get(f"/api/v1/webhooks/{hook.json()['id']}").json()["url"] == other


def test_a_restart_does_not_announce_a_firing_alert_twice(
    tmp_path: Path, receivers: list[Receiver]
) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES)
    receiver = Receiver()
    receivers.append(receiver)
    first = HakonProcess(tmp_path / "data", "--rules", str(rules)).start()
    headers = {"Authorization": f"Bearer {first.admin_token()}"}
    try:
        with httpx.Client(base_url=first.url, headers=headers, timeout=10) as api:
            api.post("/api/v1/webhooks", json={"url": receiver.url, "events": ["alert.firing"]})
            _temp(api, 35)
            wait_for(lambda: receiver.events("alert.firing"))
    finally:
        first.stop()
    second = HakonProcess(tmp_path / "data", "--rules", str(rules)).start()
    try:
        with httpx.Client(base_url=second.url, headers=headers, timeout=10) as api:
            wait_for(lambda: api.get("/api/v1/alerts", params={"state": "firing"}).json()["total"])
            time.sleep(3)  # several evaluations after the restart
        assert len(receiver.events("alert.firing")) == 1
    finally:
        second.stop()
