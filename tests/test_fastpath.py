"""The ingest routes served without FastAPI's machinery answer as every other route
does: same auth outcomes, error bodies, headers, metrics, aliases. Over HTTP
against a real `hakon serve`; the data-driven ingest cases cover their bodies."""

from __future__ import annotations

import json
import time

import cramjam
import httpx
import pytest
from fastapi import APIRouter, FastAPI, Query, Request

from hakon.api.auth import require
from hakon.api.fastpath import IngestFastPath
from hakon.api.routes.ingest import FAST_ROUTES
from hakon.auth.secret import read_secret
from hakon.auth.tokens import TokenAuthority
from hakon.ingest.remote_write import encode_write_request


@pytest.fixture(scope="module")
def minter(server) -> TokenAuthority:
    return TokenAuthority(read_secret(server.data_dir))


def _remote_write(name: str) -> bytes:
    now = int(time.time() * 1000)
    body = encode_write_request([({"__name__": name, "job": "x"}, [(now, 1.5)])])
    return bytes(cramjam.snappy.compress_raw(body))


def _pods(cluster: str) -> bytes:
    return json.dumps(
        {
            "cluster_id": cluster,
            "context": {"name": cluster},
            "collected_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "resources": [{"namespace": "a", "name": "p", "cpu_usage_cores": 0.5}],
        }
    ).encode()


RW_HEADERS = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}
JSON = {"Content-Type": "application/json"}


def _error(resp: httpx.Response, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    assert body["error"]["request_id"] == resp.headers["x-request-id"]
    return body["error"]


def test_the_busiest_ingest_routes_are_served_fast() -> None:
    assert "/api/v1/write" in FAST_ROUTES
    assert "/api/v1/hakongo/pods" in FAST_ROUTES


def _post(server, path: str, body: bytes, headers: dict) -> httpx.Response:
    return httpx.post(server.url + path, content=body, headers=headers, timeout=10)


def test_success_answers_headers_and_metrics(server, minter) -> None:
    token, _ = minter.mint(subject="agent", scopes=["metrics:write"], ttl_seconds=600)
    auth = {"Authorization": f"Bearer {token}", "X-Request-ID": "fast-1"}
    resp = _post(server, "/api/v1/write", _remote_write("fp_a"), {**RW_HEADERS, **auth})
    assert resp.status_code == 204 and resp.content == b""
    assert resp.headers["x-request-id"] == "fast-1"
    assert int(resp.headers["x-ratelimit-limit"]) > 0  # the ingest bucket's headers
    resp = _post(server, "/v1/hakongo/pods", _pods("fp-c"), {**JSON, **auth})
    assert resp.status_code == 200 and resp.json() == {"accepted_samples": 1}
    text = httpx.get(server.url + "/metrics").text
    assert 'route="/api/v1/write",status="204"' in text
    assert 'route="/api/v1/hakongo/pods",status="200"' in text


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}, {"Authorization": "x"}],
)
def test_without_a_bearer_token_is_401(server, headers: dict) -> None:
    resp = _post(server, "/api/v1/write", _remote_write("fp_b"), {**RW_HEADERS, **headers})
    _error(resp, 401, "UNAUTHORIZED")


def test_scope_binding_and_bad_bodies_are_refused_as_elsewhere(server, minter) -> None:
    reader, _ = minter.mint(subject="r", scopes=["metrics:read"], ttl_seconds=600)
    resp = _post(server, "/api/v1/hakongo/pods", _pods("fp-d"),
                 {**JSON, "Authorization": f"Bearer {reader}"})  # fmt: skip
    assert _error(resp, 403, "FORBIDDEN")["details"]["required_scope"] == "metrics:write"
    bound, _ = minter.mint(
        subject="b", scopes=["metrics:write"], ttl_seconds=600, cluster_id="fp-mine"
    )
    auth = {"Authorization": f"Bearer {bound}"}
    resp = _post(server, "/api/v1/hakongo/pods", _pods("fp-other"), {**JSON, **auth})
    _error(resp, 403, "FORBIDDEN")
    resp = _post(server, "/api/v1/write", _remote_write("fp_c"), {**RW_HEADERS, **auth})
    _error(resp, 403, "FORBIDDEN")
    writer, _ = minter.mint(subject="w", scopes=["metrics:write"], ttl_seconds=600)
    auth = {"Authorization": f"Bearer {writer}"}
    resp = _post(server, "/api/v1/write", b"not snappy", {**RW_HEADERS, **auth})
    assert _error(resp, 400, "INVALID_REQUEST")["details"]["field"] == "body"
    resp = _post(server, "/api/v1/hakongo/pods", _pods("fp-e"),
                 {"Content-Type": "text/plain", **auth})  # fmt: skip
    _error(resp, 415, "UNSUPPORTED_MEDIA_TYPE")


def test_other_methods_still_go_through_fastapi(server) -> None:
    _error(httpx.get(server.url + "/api/v1/write"), 405, "METHOD_NOT_ALLOWED")


def test_only_endpoints_taking_what_the_fast_path_supplies_are_accepted() -> None:
    router = APIRouter()
    checker = require("metrics:write", bucket="ingest", bound_ok=True).checker  # type: ignore[attr-defined]

    @router.post("/with-query")
    async def with_query(request: Request, precision: str = Query("ns")) -> None: ...

    with pytest.raises(ValueError, match="endpoint takes"):
        IngestFastPath(FastAPI(), FastAPI(), router, {"/with-query": checker})
    with pytest.raises(LookupError):
        IngestFastPath(FastAPI(), FastAPI(), router, {"/missing": checker})
