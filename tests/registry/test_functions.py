"""Function invocation against a real loopback HTTP function: success, error, timeout,
cold starts, the event object it receives, and the metrics computed from the calls."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest


class FunctionServer:
    """`/ok` answers seed 003's response format echoing the event, `/fail` a 500,
    `/slow` after 3 s (past the tests' 1 s function timeout)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                event = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.events.append(event)
                if self.path == "/slow":
                    time.sleep(3)
                status = 500 if self.path == "/fail" else 200
                body = json.dumps({"statusCode": status, "body": {"echo": event["body"]}})
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def function_server() -> Iterator[FunctionServer]:
    server = FunctionServer()
    yield server
    server.close()


def _create(api: httpx.Client, name: str, endpoint: str, **extra: Any) -> None:
    body = {"name": name, "runtime": "python39", "handler": "handler.handler",
            "endpoint": endpoint, **extra}  # fmt: skip
    response = api.post("/api/v1/functions", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["status"]["state"] == "running"


def test_invoke_forwards_the_event_and_reports_cold_starts(
    api: httpx.Client, function_server: FunctionServer
) -> None:
    _create(api, "echo", function_server.url + "/ok")
    first = api.post("/api/v1/functions/echo/invoke?trace=1", json={"key": "value", "data": [1]})
    assert first.status_code == 200, first.text
    assert first.json() == {"statusCode": 200, "body": {"echo": {"key": "value", "data": [1]}}}
    assert first.headers["X-Cold-Start"] == "true"
    assert 0 < float(first.headers["X-Function-Duration"]) < 5
    event = function_server.events[-1]
    assert event["method"] == "POST" and event["path"] == "/invoke"
    assert event["query"] == {"trace": "1"}
    assert "authorization" not in {k.lower() for k in event["headers"]}  # never forwarded
    second = api.post("/api/v1/functions/echo/invoke", json={"n": 2})
    assert second.headers["X-Cold-Start"] == "false"  # warm within function_keep_warm (2 s)
    assert api.get("/api/v1/functions/echo").json()["status"]["replicas"] == 1
    time.sleep(2.2)
    third = api.post("/api/v1/functions/echo/invoke", json={"n": 3})
    assert third.headers["X-Cold-Start"] == "true"
    metrics = api.get("/api/v1/functions/echo/metrics", params={"timeframe": "1h"}).json()
    assert metrics["invocations"] == 3 and metrics["coldStarts"] == 2
    assert metrics["errors"] == 0 and metrics["errorRate"] == 0
    assert 0 < metrics["avgDuration"] < 5 and metrics["costEstimate"] > 0


def test_a_function_with_min_replicas_never_starts_cold(
    api: httpx.Client, function_server: FunctionServer
) -> None:
    _create(api, "always-up", function_server.url + "/ok", minReplicas=1)
    response = api.post("/api/v1/functions/always-up/invoke", json={})
    assert response.headers["X-Cold-Start"] == "false"


def test_errors_and_timeouts_are_answered_and_counted(
    api: httpx.Client, function_server: FunctionServer
) -> None:
    _create(api, "broken", function_server.url + "/fail")
    failed = api.post("/api/v1/functions/broken/invoke", json={"x": 1})
    assert failed.status_code == 500  # the function's own answer, passed through
    assert failed.json()["statusCode"] == 500
    _create(api, "sleepy", function_server.url + "/slow")
    started = time.monotonic()
    slow = api.post("/api/v1/functions/sleepy/invoke", json={})
    assert slow.status_code == 504 and slow.json()["error"]["code"] == "GATEWAY_TIMEOUT"
    assert time.monotonic() - started < 2.5
    _create(api, "gone", "http://127.0.0.1:9/nothing-listens")
    gone = api.post("/api/v1/functions/gone/invoke", json={})
    assert gone.status_code == 502 and gone.json()["error"]["code"] == "BAD_GATEWAY"
    for name in ("broken", "sleepy", "gone"):
        metrics = api.get(f"/api/v1/functions/{name}/metrics").json()
        assert (metrics["invocations"], metrics["errors"], metrics["errorRate"]) == (1, 1, 1.0)
    series = 'hakon_function_invocation_duration_seconds{function="broken"}[1h]'
    query = f"sum by (outcome) (count_over_time({series}))"
    recorded = api.get("/prometheus/api/v1/query", params={"query": query})
    assert recorded.json()["data"]["result"][0]["metric"] == {"outcome": "error"}


def test_invoke_of_an_unknown_or_unroutable_function(api: httpx.Client) -> None:
    assert api.post("/api/v1/functions/nobody/invoke", json={}).status_code == 404
    body = {"name": "nowhere", "runtime": "go119", "handler": "Handler"}
    assert api.post("/api/v1/functions", json=body).json()["status"]["state"] == "pending"
    response = api.post("/api/v1/functions/nowhere/invoke", json={})
    assert (
        response.status_code == 409 and response.json()["error"]["details"]["field"] == "endpoint"
    )


def test_put_replaces_and_the_name_is_the_id(
    api: httpx.Client, function_server: FunctionServer
) -> None:
    _create(api, "replaced", function_server.url + "/ok", environment={"A": "1"})
    body = {"name": "replaced", "runtime": "go119", "handler": "Main"}
    put = api.put("/api/v1/functions/replaced", json=body)
    assert put.status_code == 200 and put.json()["environment"] == {}  # replaced, not merged
    assert "endpoint" not in put.json()
    renamed = api.put("/api/v1/functions/replaced", json={**body, "name": "other"})
    assert renamed.status_code == 400 and renamed.json()["error"]["details"]["field"] == "name"
    assert api.post("/api/v1/functions", json=body).status_code == 409
    listed = api.get("/api/v1/functions", params={"limit": 2})
    assert isinstance(listed.json(), list) and len(listed.json()) <= 2
    assert int(listed.headers["X-Total-Count"]) >= 1
