"""Every auth outcome, over HTTP against a real `hakon serve`."""

from __future__ import annotations

import time

import httpx
import pytest

from hakon.auth.secret import read_secret
from hakon.auth.tokens import TokenAuthority


@pytest.fixture(scope="module")
def minter(server) -> TokenAuthority:
    return TokenAuthority(read_secret(server.data_dir))


@pytest.fixture(scope="module")
def admin(server) -> str:
    return server.admin_token()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post(server, path: str, token: str | None, body: dict | None = None, **kw) -> httpx.Response:
    headers = bearer(token) if token else {}
    return httpx.post(server.url + path, json=body or {}, headers=headers, timeout=10, **kw)


def assert_error(resp: httpx.Response, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details", "request_id"}
    assert body["error"]["code"] == code
    assert body["error"]["request_id"] == resp.headers["x-request-id"]
    assert body["error"]["message"]
    return body["error"]


def test_health_and_ready_need_no_token(server) -> None:
    for path in ("/health", "/api/v1/health", "/v1/health"):
        body = httpx.get(server.url + path).json()
        assert body["status"] == "healthy" and body["version"]
        assert body["timestamp"].endswith("Z")
    assert httpx.get(server.url + "/ready").json() == {"status": "ready"}


def test_metrics_is_open_by_default_and_counts_requests(server) -> None:
    httpx.get(server.url + "/health")
    text = httpx.get(server.url + "/metrics").text
    assert 'hakon_http_requests_total{method="GET",route="/health",status="200"}' in text
    assert "hakon_http_request_duration_seconds_bucket" in text


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Basic YWRtaW46YWRtaW4="}, {"Authorization": "Bearer"}],
)
def test_missing_or_malformed_header_is_401(server, headers: dict) -> None:
    resp = httpx.post(server.url + "/api/v1/security/tokens", json={}, headers=headers)
    assert_error(resp, 401, "UNAUTHORIZED")


def test_expired_forged_garbage_and_revoked_tokens_are_401(server, minter, admin) -> None:
    expired, _ = minter.mint(subject="x", scopes=["admin"], ttl_seconds=1, now=time.time() - 60)
    forged, _ = TokenAuthority(b"f" * 64).mint(subject="x", scopes=["admin"], ttl_seconds=60)
    revoked, _ = minter.mint(subject="x", scopes=["admin"], ttl_seconds=60)
    assert post(server, "/api/v1/security/tokens/revoke", admin, {"token": revoked}).json() == {
        "success": True,
        "message": "Token successfully revoked",
    }
    for token, reason in [
        (expired, "expired"),
        (forged, "bad_signature"),
        ("abc.def.ghi", "malformed"),
        (revoked, "revoked"),
    ]:
        err = assert_error(post(server, "/api/v1/security/tokens", token), 401, "UNAUTHORIZED")
        assert err["details"]["reason"] == reason
        check = post(server, "/api/v1/security/tokens/validate", admin, {"token": token})
        assert check.status_code == 200
        assert check.json()["valid"] is False and check.json()["reason"] == reason


def test_valid_token_without_scope_is_403(server, minter) -> None:
    reader, _ = minter.mint(subject="r", scopes=["metrics:read"], ttl_seconds=60)
    err = assert_error(post(server, "/api/v1/security/tokens", reader, {}), 403, "FORBIDDEN")
    assert err["details"]["required_scope"] == "admin"


def test_admin_mints_a_bound_token_and_validate_describes_it(server, admin) -> None:
    resp = post(
        server,
        "/api/v1/security/tokens",
        admin,
        {"node_id": "node-uuid-1", "expiration": "2h", "scopes": ["metrics:write"]},
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["expires_at"].endswith("Z") and body["node_id"] == "node-uuid-1"
    check = post(server, "/api/v1/security/tokens/validate", admin, {"token": body["token"]})
    info = check.json()
    assert info["valid"] is True and info["node_id"] == "node-uuid-1"
    assert info["scopes"] == ["metrics:write"] and info["expires_at"] == body["expires_at"]
    # The minted token authenticates; it may validate but not mint.
    assert post(server, "/api/v1/security/tokens/validate", body["token"], {"token": admin}).json()[
        "valid"
    ]
    assert_error(post(server, "/api/v1/security/tokens", body["token"]), 403, "FORBIDDEN")


def test_a_token_may_revoke_itself_but_not_another(server, minter) -> None:
    mine, _ = minter.mint(subject="m", scopes=["metrics:read"], ttl_seconds=60)
    other, _ = minter.mint(subject="o", scopes=["metrics:read"], ttl_seconds=60)
    assert_error(
        post(server, "/api/v1/security/tokens/revoke", mine, {"token": other}), 403, "FORBIDDEN"
    )
    assert post(server, "/api/v1/security/tokens/revoke", mine, {"token": mine}).status_code == 200
    assert_error(
        post(server, "/api/v1/security/tokens/validate", mine, {"token": other}),
        401,
        "UNAUTHORIZED",
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"expiration": "soon"}, "body.expiration"),
        ({"expiration": "1000y"}, "expiration"),
        ({"scopes": ["root"]}, "body.scopes[0]"),
        ({"scopes": []}, "body.scopes"),
        ({"node_id": 5}, "body.node_id"),
        ({"node_id": "bad id with spaces"}, "body.node_id"),
        ({"unexpected": True}, "body.unexpected"),
    ],
)
def test_bad_token_requests_are_400_naming_the_field(server, admin, body, field) -> None:
    err = assert_error(post(server, "/api/v1/security/tokens", admin, body), 400, "INVALID_REQUEST")
    assert err["details"]["field"] == field
    assert field.split(".")[-1].split("[")[0] in err["message"]


def test_malformed_json_is_400(server, admin) -> None:
    resp = httpx.post(
        server.url + "/api/v1/security/tokens",
        content=b'{"node_id": ',
        headers={**bearer(admin), "content-type": "application/json"},
    )
    assert_error(resp, 400, "INVALID_REQUEST")


def test_unknown_route_and_wrong_method(server, admin) -> None:
    err = assert_error(
        httpx.get(server.url + "/api/v1/nope", headers=bearer(admin)), 404, "NOT_FOUND"
    )
    assert "/api/v1/nope" in err["message"]
    assert_error(httpx.delete(server.url + "/health"), 405, "METHOD_NOT_ALLOWED")


def test_v1_alias_and_request_id_echo(server, admin) -> None:
    resp = httpx.post(
        server.url + "/v1/security/tokens/validate",
        json={"token": admin},
        headers={**bearer(admin), "X-Request-ID": "req-abc123"},
    )
    assert resp.status_code == 200 and resp.json()["valid"] is True
    assert resp.headers["x-request-id"] == "req-abc123"
    # An unreasonable incoming id is replaced, not echoed.
    weird = httpx.get(server.url + "/health", headers={"X-Request-ID": "a b\tc"})
    assert weird.headers["x-request-id"] != "a b\tc" and len(weird.headers["x-request-id"]) == 32


def test_rate_limit_headers_on_authenticated_responses(server, admin) -> None:
    resp = post(server, "/api/v1/security/tokens/validate", admin, {"token": admin})
    assert int(resp.headers["x-ratelimit-limit"]) == 200
    assert 0 <= int(resp.headers["x-ratelimit-remaining"]) < 200
    assert int(resp.headers["x-ratelimit-reset"]) >= int(time.time())
