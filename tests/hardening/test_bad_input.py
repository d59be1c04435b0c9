"""Bad input everywhere: every JSON route and every ingest format gets truncated
bodies, wrong types, huge numbers, NaN, deep nesting, oversized strings, invalid
UTF-8, duplicate keys and a body sent byte by byte. Each is a clear 4xx (our
error body naming a field where there is one) and changes nothing."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from serverproc import HakonProcess

BAD_JSON: dict[str, bytes] = {
    "truncated": b'{"name": "x", "capacity": ',
    "array": b"[]",
    "string": b'"fleet"',
    "null": b"null",
    "wrong types": json.dumps(
        {
            "name": 12345,
            "capacity": "many",
            "address": [],
            "expression": {},
            "url": 5,
            "runtime": 3,
            "cluster_id": 7,
            "context": "x",
            "timestamp": True,
            "events": "all",
            "collected_at": [],
            "resources": {},
            "replicas": "three",
            "image": None,
        }
    ).encode(),
    "huge number": b'{"name": "big", "capacity": 1e400, "address": "h", "cpu_usage": 1e400,'
    b' "timestamp": "2026-11-27T10:00:00Z"}',
    "NaN": b'{"name": "nan", "capacity": NaN, "address": "h", "cpu_usage": NaN,'
    b' "timestamp": "2026-11-27T10:00:00Z"}',
    "deep nesting": b'{"name": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "oversized string": b'{"name": "' + b"a" * (8 << 20) + b'", "capacity": 1}',
    "invalid UTF-8": b'{"name": "\xff\xfe\xfd", "capacity": 1, "address": "h"}',
}
# Bodies each route would accept but for one key given twice.
DUPLICATED = [
    ("/api/v1/fleets", b'{"name": "d1", "capacity": 1, "capacity": 2}'),
    ("/api/v1/nodes", b'{"name": "d2", "address": "a", "address": "b"}'),
    ("/api/v1/alert-rules", b'{"name": "D3", "expression": "up", "expression": "up == 0"}'),
    ("/api/v1/webhooks", b'{"url": "http://127.0.0.1:9/", "events": ["a.b"], "url": "http://x/"}'),
    ("/api/v1/security/tokens", b'{"scopes": ["admin"], "scopes": ["metrics:read"]}'),
]
JSON_ROUTES = [
    ("POST", "/api/v1/clusters"), ("POST", "/api/v1/nodes"), ("POST", "/api/v1/workloads"),
    ("POST", "/api/v1/functions"), ("POST", "/api/v1/fleets"), ("POST", "/api/v1/instances"),
    ("POST", "/api/v1/alert-rules"), ("POST", "/api/v1/webhooks"),
    ("POST", "/api/v1/security/tokens"), ("POST", "/api/v1/security/tokens/validate"),
    ("POST", "/api/v1/hakongo/pods"), ("POST", "/api/v1/hakongo/nodes"),
    ("POST", "/api/v1/metrics/nodes/n-1"), ("PUT", "/api/v1/nodes/{node}/status"),
    ("PATCH", "/api/v1/fleets/{fleet}"), ("PUT", "/api/v1/functions/keep"),
]  # fmt: skip
TEXT_ROUTES = ["/api/v1/import/prometheus", "/write", "/api/v2/write", "/api/v1/write"]
BAD_TEXT: dict[str, bytes] = {
    "truncated": b'up{job="a"',
    "invalid UTF-8": b'up{job="\xff\xfe"} 1\n',
    "huge label": b'up{job="' + b"a" * (1 << 20) + b'"} 1\n',
    "many labels": b"up{" + b",".join(b'l%d="v"' % i for i in range(5000)) + b"} 1\n",
    "NaN timestamp": b"up 1 NaN\n",
    "binary": bytes(range(256)) * 64,
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HakonProcess]:
    with HakonProcess(tmp_path_factory.mktemp("bad") / "data", "--rate-limit-rps", "0") as proc:
        yield proc


@pytest.fixture(scope="module")
def api(server: HakonProcess) -> Iterator[httpx.Client]:
    with server.client(timeout=60) as client:
        fleet = client.post("/api/v1/fleets", json={"name": "keep", "capacity": 1}).json()
        node = client.post("/api/v1/nodes", json={"name": "keep", "address": "h"}).json()
        client.post("/api/v1/functions", json={"name": "keep", "runtime": "go119",
                                               "handler": "Handler"})  # fmt: skip
        client.ids = {"fleet": fleet["id"], "node": node["id"]}  # type: ignore[attr-defined]
        yield client


def state(api: httpx.Client) -> Any:
    """Everything a bad request could have changed."""
    lists = [api.get(p).json() for p in ("/api/v1/clusters", "/api/v1/nodes", "/api/v1/fleets",
             "/api/v1/workloads", "/api/v1/functions", "/api/v1/instances",
             "/api/v1/alert-rules", "/api/v1/webhooks")]  # fmt: skip
    series = api.get("/api/v1/admin/storage").json()["series"]
    return lists, series


def _check(response: httpx.Response, what: str) -> None:
    assert 400 <= response.status_code < 500, f"{what}: {response.status_code} {response.text}"
    error = response.json()["error"]
    assert error["code"] and error["message"], what


@pytest.mark.parametrize("case", sorted(BAD_JSON))
def test_bad_json_everywhere(api: httpx.Client, case: str) -> None:
    before = state(api)
    for method, path in JSON_ROUTES:
        url = path.format(**api.ids)  # type: ignore[attr-defined]
        response = api.request(method, url, content=BAD_JSON[case],
                               headers={"Content-Type": "application/json"})  # fmt: skip
        _check(response, f"{case}: {method} {path}")
    assert state(api) == before


def test_duplicate_keys_are_refused(api: httpx.Client) -> None:
    before = state(api)
    for path, body in DUPLICATED:
        response = api.post(path, content=body, headers={"Content-Type": "application/json"})
        _check(response, f"duplicate keys: POST {path}")
        assert "twice" in response.json()["error"]["message"]
    assert state(api) == before


@pytest.mark.parametrize("case", sorted(BAD_TEXT))
def test_bad_text_bodies_everywhere(api: httpx.Client, case: str) -> None:
    before = state(api)
    for path in TEXT_ROUTES:
        headers = {"Content-Type": "text/plain"}
        if path == "/api/v1/write":
            headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}
        response = api.post(path, content=BAD_TEXT[case], headers=headers)
        _check(response, f"{case}: POST {path}")
    assert state(api) == before


def test_a_body_sent_byte_by_byte_is_answered(server: HakonProcess, api: httpx.Client) -> None:
    """A slow sender is not an error; a slow sender that stops is (and holds nothing)."""
    body = b'{"name": "slowpoke", "capacity": 2}'
    token = server.admin_token()
    head = (f"POST /api/v1/fleets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")  # fmt: skip
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head.encode())
        for byte in body:
            sock.sendall(bytes([byte]))
            time.sleep(0.01)
        answer = sock.recv(65536).decode()
    assert answer.startswith("HTTP/1.1 201"), answer
    names = [f["name"] for f in api.get("/api/v1/fleets").json()["fleets"]]
    assert "slowpoke" in names
