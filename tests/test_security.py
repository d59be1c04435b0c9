"""docs/security.md's promises, against a real server: scopes on every route, bound
tokens confined to their binding, secrets never in answers or logs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from serverproc import HakonProcess

from hakon.api.openapi import scope_table
from hakon.auth.tokens import ADMIN, SCOPES

DOC = Path(__file__).parent.parent / "docs" / "security.md"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HakonProcess]:
    proc = HakonProcess(tmp_path_factory.mktemp("security") / "data", "--rate-limit-rps", "0")
    with proc:
        yield proc


@pytest.fixture(scope="module")
def schema(server: HakonProcess) -> dict[str, Any]:
    return httpx.get(server.url + "/openapi.json").json()


def _mint(server: HakonProcess, **body: Any) -> str:
    response = httpx.post(
        server.url + "/api/v1/security/tokens",
        json=body,
        headers={"Authorization": f"Bearer {server.admin_token()}"},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


def _call(server: HakonProcess, method: str, path: str, token: str | None) -> httpx.Response:
    url = server.url + re.sub(r"\{[^}]+\}", "some-id", path)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    kwargs: dict[str, Any] = {}
    if method in ("post", "put", "patch"):
        kwargs["json"] = {}
    return httpx.request(method.upper(), url, headers=headers, timeout=30, **kwargs)


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, ops in schema["paths"].items()
        for method, op in ops.items()
        if op.get("security") and {} not in op["security"]  # `/metrics` is open by default
    ]


def test_the_scope_table_in_the_docs_is_current(schema: dict[str, Any]) -> None:
    table = scope_table(schema)
    assert table in DOC.read_text(), "docs/security.md's table is stale; it should read:\n" + table


def test_every_route_refuses_a_token_without_its_scope(
    server: HakonProcess, schema: dict[str, Any]
) -> None:
    """A token with every scope but the one a route needs gets 403; none at all, 401."""
    tokens = {
        scope: _mint(server, scopes=[s for s in SCOPES if s not in (scope, ADMIN)])
        for scope in SCOPES
    }
    wrong: list[str] = []
    checked = 0
    for method, path, op in _operations(schema):
        anonymous = _call(server, method, path, None)
        if anonymous.status_code != 401:
            wrong.append(f"{method.upper()} {path} without a token: {anonymous.status_code}")
        scope = op.get("x-required-scope")
        if scope is None:
            continue
        answer = _call(server, method, path, tokens[scope])
        checked += 1
        body = answer.json()
        kind = body["errorType"] if "errorType" in body else body["error"]["code"].lower()
        if answer.status_code != 403 or kind != "forbidden":  # ours, or Prometheus's envelope
            wrong.append(f"{method.upper()} {path} without {scope}: {answer.status_code}")
    assert not wrong, "\n".join(wrong)
    assert checked >= 90


def test_a_bound_token_stays_inside_its_binding(server: HakonProcess) -> None:
    every = [s for s in SCOPES if s != ADMIN]
    node = _mint(server, node_id="edge-a", scopes=every)
    cluster = _mint(server, cluster_id="c-a", scopes=every)
    now = datetime.now(UTC).isoformat()
    sample = {"timestamp": now, "cpu_usage": 1, "memory_usage": 1,
              "memory_total": 2, "disk_usage": 1, "disk_total": 2}  # fmt: skip

    def status(method: str, path: str, token: str, **kw: Any) -> int:
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.request(method, server.url + path, headers=headers, **kw).status_code

    assert status("POST", "/api/v1/metrics/nodes/edge-a", node, json=sample) == 200
    assert status("POST", "/api/v1/metrics/nodes/edge-b", node, json=sample) == 403
    assert status("GET", "/api/v1/metrics/nodes/edge-a", node) == 200
    assert status("GET", "/api/v1/metrics/nodes/edge-b", node) == 403
    node_usage = {"name": "n1", "cpu_capacity_cores": 2, "cpu_usage_cores": 0.5}
    payload = {"cluster_id": "c-a", "context": {"name": "a"}, "collected_at": now,
               "resources": [node_usage]}  # fmt: skip
    assert status("POST", "/api/v1/hakongo/nodes", cluster, json=payload) in (200, 202, 204)
    other = {**payload, "cluster_id": "c-b"}
    assert status("POST", "/api/v1/hakongo/nodes", cluster, json=other) == 403
    assert status("GET", "/api/v1/clusters/c-a/metrics", cluster) == 200
    assert status("GET", "/api/v1/clusters/c-b/metrics", cluster) == 403
    assert status("GET", "/api/v1/metrics/nodes/edge-a", cluster) == 403
    for token in (node, cluster):
        assert status("GET", "/prometheus/api/v1/query", token, params={"query": "up"}) == 403
        assert status("GET", "/api/v1/metrics", token) == 403
        assert status("GET", "/api/v1/nodes", token) == 403
        assert status("POST", "/api/v1/nodes", token, json={"name": "x"}) == 403
        assert status("GET", "/api/v1/alert-rules", token) == 403
        assert status("POST", "/api/v1/write", token, content=b"") == 403
        assert status("POST", "/api/v1/security/tokens/validate", token,
                      json={"token": token}) == 200  # fmt: skip


def test_secrets_stay_out_of_answers_and_the_log(server: HakonProcess) -> None:
    signing_secret = (server.data_dir / "secret.key").read_text().strip()
    hook_secret = "whsec-" + "q" * 40
    with server.client() as api:
        hook = {"url": "http://127.0.0.1:9/h", "events": ["alert.firing"], "secret": hook_secret}
        created = api.post("/api/v1/webhooks", json=hook)
        assert created.status_code == 201
        answers = [created.text, api.get("/api/v1/webhooks").text,
                   api.get(f"/api/v1/webhooks/{created.json()['id']}").text]  # fmt: skip
        forged = server.admin_token()[:-4] + "AAAA"
        refused = httpx.get(server.url + "/api/v1/nodes",
                            headers={"Authorization": f"Bearer {forged}"})  # fmt: skip
        assert refused.status_code == 401
        answers.append(refused.text)
        answers.append(api.get("/api/v1/admin/storage").text)
    for text in answers:
        assert hook_secret not in text and signing_secret not in text
    assert forged not in refused.text
    log = server.log_path.read_text()
    assert signing_secret not in log and hook_secret not in log and forged not in log
