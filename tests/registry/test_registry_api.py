"""The generic mechanism through one kind's routes on a real server: pagination,
filters, sorting, optimistic concurrency, uniqueness, cascades and state machines."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from serverproc import HakonProcess, wait_for


def _fleet(api: httpx.Client, name: str, capacity: int = 2, **tags: str) -> dict:  # type: ignore[type-arg]
    response = api.post("/api/v1/fleets", json={"name": name, "capacity": capacity, "tags": tags})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def test_pagination_edges(api: httpx.Client) -> None:
    for i in range(5):
        _fleet(api, f"page-{i}", team="paging")
    query = {"labels": "team=paging", "limit": 2}
    first = api.get("/api/v1/fleets", params=query).json()
    assert [f["name"] for f in first["fleets"]] == ["page-0", "page-1"]
    assert first["pagination"] == {"total": 5, "page": 1, "limit": 2, "pages": 3}
    last = api.get("/api/v1/fleets", params={**query, "page": 3}).json()
    assert [f["name"] for f in last["fleets"]] == ["page-4"]
    past = api.get("/api/v1/fleets", params={**query, "page": 9}).json()
    assert past["fleets"] == [] and past["pagination"]["total"] == 5
    default = api.get("/api/v1/fleets", params={"labels": "team=paging"}).json()
    assert default["pagination"]["limit"] == 20
    for bad in ({"limit": 101}, {"limit": 0}, {"page": 0}, {"page": "x"}):
        response = api.get("/api/v1/fleets", params=bad)
        assert response.status_code == 400, bad
        assert response.json()["error"]["details"]["field"] == f"query.{next(iter(bad))}"


def test_label_selector_status_and_sort(api: httpx.Client) -> None:
    _fleet(api, "sel-b", env="prod", team="api")
    _fleet(api, "sel-a", env="prod", team="db")
    _fleet(api, "sel-c", env="dev")

    def names(**params: str) -> list[str]:
        body = api.get("/api/v1/fleets", params={"sort": "name", **params}).json()
        return [f["name"] for f in body["fleets"] if f["name"].startswith("sel-")]

    assert names(labels="env=prod") == ["sel-a", "sel-b"]
    assert names(labels="env=prod,team=api") == ["sel-b"]
    assert names(labels="env!=prod") == ["sel-c"]
    assert names(labels="team") == ["sel-a", "sel-b"]
    assert names(labels="!team,env") == ["sel-c"]
    assert names(labels="env=prod", sort="-name") == ["sel-b", "sel-a"]
    assert names(labels="env=prod", sort="name:desc") == ["sel-b", "sel-a"]
    assert names(labels="env", status="active") == ["sel-a", "sel-b", "sel-c"]
    assert names(labels="env", status="deleting") == []
    for bad in ({"labels": "=x"}, {"sort": "colour"}, {"sort": "name:sideways"}):
        response = api.get("/api/v1/fleets", params=bad)
        assert response.status_code == 400
        assert response.json()["error"]["details"]["field"] == next(iter(bad))


def test_stale_versions_are_refused(api: httpx.Client) -> None:
    fleet = _fleet(api, "versions")
    url = f"/api/v1/fleets/{fleet['id']}"
    got = api.get(url)
    assert got.headers["ETag"] == '"1"' and got.json()["resource_version"] == 1
    first = api.put(url, json={"capacity": 4}, headers={"If-Match": '"1"'})
    assert first.status_code == 200 and first.headers["ETag"] == '"2"'
    stale = api.put(url, json={"capacity": 6}, headers={"If-Match": '"1"'})
    assert stale.status_code == 409, stale.text
    assert stale.json()["error"]["details"]["current_version"] == 2
    stale_body = api.patch(url, json={"capacity": 6, "resource_version": 1})
    assert stale_body.status_code == 409
    assert api.get(url).json()["capacity"] == 4
    assert api.delete(url, headers={"If-Match": '"1"'}).status_code == 409
    assert api.patch(url, json={"description": "x", "resource_version": 2}).status_code == 200


def test_concurrent_writers_with_one_version_only_one_wins(api: httpx.Client) -> None:
    fleet = _fleet(api, "racers", capacity=1)
    url = f"/api/v1/fleets/{fleet['id']}"

    def write(capacity: int) -> int:
        return api.put(url, json={"capacity": capacity, "resource_version": 1}).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(write, range(2, 10)))
    assert statuses == [200] + [409] * 7
    assert api.get(url).json()["resource_version"] == 2


def test_duplicate_names_conflict_and_unknown_ids_are_404(api: httpx.Client) -> None:
    _fleet(api, "unique")
    again = api.post("/api/v1/fleets", json={"name": "unique", "capacity": 1})
    assert again.status_code == 409 and again.json()["error"]["code"] == "CONFLICT"
    other = _fleet(api, "unique-2")
    renamed = api.patch(f"/api/v1/fleets/{other['id']}", json={"name": "unique"})
    assert renamed.status_code == 409
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        response = api.request(method, "/api/v1/fleets/fleet-nope", json={"capacity": 1})
        assert response.status_code == 404, method
        assert response.json()["error"]["code"] == "NOT_FOUND"


def test_capacity_bounds_instances_and_fleet_delete_cascades_only_when_forced(
    api: httpx.Client,
) -> None:
    fleet = _fleet(api, "cascade", capacity=2)
    ids = [
        api.post("/api/v1/instances", json={"name": f"c-{i}", "fleet_id": fleet["id"]}).json()["id"]
        for i in range(2)
    ]
    full = api.post("/api/v1/instances", json={"name": "c-2", "fleet_id": fleet["id"]})
    assert full.status_code == 409 and full.json()["error"]["details"]["capacity"] == 2
    shrink = api.patch(f"/api/v1/fleets/{fleet['id']}", json={"capacity": 1})
    assert shrink.status_code == 409
    assert api.get(f"/api/v1/fleets/{fleet['id']}").json()["instances"] == 2
    refused = api.delete(f"/api/v1/fleets/{fleet['id']}")
    assert refused.status_code == 409 and set(
        refused.json()["error"]["details"]["instances"]
    ) == set(ids)
    assert api.get(f"/api/v1/instances/{ids[0]}").status_code == 200
    assert api.delete(f"/api/v1/fleets/{fleet['id']}", params={"force": "true"}).status_code == 204
    assert all(api.get(f"/api/v1/instances/{i}").status_code == 404 for i in ids)


def test_instance_transitions(api: httpx.Client) -> None:
    fleet = _fleet(api, "machines")
    inst = api.post("/api/v1/instances", json={"name": "m-1", "fleet_id": fleet["id"]}).json()
    url = f"/api/v1/instances/{inst['id']}"
    assert inst["status"] == "stopped"
    illegal = api.post(url + "/stop")
    assert illegal.status_code == 409 and illegal.json()["error"]["details"]["status"] == "stopped"
    started = api.post(url + "/start").json()
    assert started["status"] == "running" and started["started_at"]
    assert started["resource_version"] == inst["resource_version"]  # state is not spec
    assert api.post(url + "/start").status_code == 409
    assert api.post(url + "/stop").json()["status"] == "stopped"
    assert api.post("/api/v1/instances/inst-nope/start").status_code == 404


def test_deploy_checks_nodes_and_placement_constraints(api: httpx.Client) -> None:
    def node(name: str, **labels: str) -> str:
        body = {"name": name, "address": "10.0.0.1", "labels": labels}
        return api.post("/api/v1/nodes", json=body).json()["id"]  # type: ignore[no-any-return]

    dc1 = node("dc1-a", location="datacenter-1", gpu="yes")
    dc2 = node("dc2-a", location="datacenter-2")
    workload = api.post("/api/v1/workloads", json={
        "name": "gpu-app", "image": "app:1",
        "placement": {"constraints": [
            {"key": "location", "operator": "In", "values": ["datacenter-1"]},
            {"key": "gpu", "operator": "Exists"},
            {"key": "tier", "operator": "NotIn", "values": ["edge-small"]},
        ]},
    }).json()  # fmt: skip
    url = f"/api/v1/workloads/{workload['id']}/deploy"
    wrong = api.post(url, json={"nodes": [dc1, dc2]})
    assert wrong.status_code == 400, wrong.text
    assert wrong.json()["error"]["details"]["field"] == "placement.constraints[0]"
    assert wrong.json()["error"]["details"]["node"] == dc2
    missing = api.post(url, json={"nodes": ["node-nope"]})
    assert missing.status_code == 400 and missing.json()["error"]["details"]["field"] == "nodes[0]"
    assert api.get(f"/api/v1/workloads/{workload['id']}").json()["status"] == "created"
    done = api.post(url, json={"nodes": [dc1], "strategy": "canary"})
    assert done.status_code == 200 and done.json()["target_nodes"] == [dc1]
    shown = api.get(f"/api/v1/workloads/{workload['id']}").json()
    assert shown["deployments"][0]["deployment_id"] == done.json()["deployment_id"]
    clash = api.post("/api/v1/workloads", json={"name": "gpu-app", "image": "other:2"})
    assert clash.status_code == 409  # same namespace and name
    other_ns = api.post("/api/v1/workloads", json={"name": "gpu-app", "namespace": "prod",
                                                   "image": "other:2"})  # fmt: skip
    assert other_ns.status_code == 201


def test_node_status_writes_usage_as_metrics_and_heartbeats_keep_it_online(
    api: httpx.Client,
) -> None:
    node = api.post("/api/v1/nodes", json={"name": "beating", "address": "10.0.0.9"}).json()
    url = f"/api/v1/nodes/{node['id']}"
    report = {"heartbeat": True, "resources": {"cpu_usage": "1500m", "memory_usage": "4Gi"}}
    status = api.put(url + "/status", json=report)
    assert status.status_code == 200 and status.json()["status"] == "active"

    def latest(name: str) -> float:
        query = f'{name}{{node_id="{node["id"]}"}}'
        body = api.get("/prometheus/api/v1/query", params={"query": query}).json()
        return float(body["data"]["result"][0]["value"][1])

    assert latest("hakon_edge_status_memory_usage_bytes") == 4 * 2**30
    assert latest("hakon_edge_status_cpu_usage_cores") == 1.5
    bad = api.put(url + "/status", json={"resources": {"memory_usage": "lots"}})
    assert bad.status_code == 400 and bad.json()["error"]["details"]["field"].endswith(
        "memory_usage"
    )
    # Edge metrics count as heartbeats: reporting every second keeps it active past 2 s.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        body = {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpu_usage": 5}
        assert api.post(f"/api/v1/metrics/nodes/{node['id']}", json=body).status_code == 200
        assert api.get(url).json()["status"] == "active"
        time.sleep(0.5)
    # Silence turns it offline (node_offline_after is 2 s in these tests).
    wait_for(lambda: api.get(url).json()["status"] == "offline", timeout=10)
    named = api.get(f"/api/v1/metrics/nodes/{node['id']}", params={"timeframe": "5m"}).json()
    assert named["node_name"] == "beating"


def test_registry_scopes(server: HakonProcess, api: httpx.Client) -> None:
    reader = server.token("registry:read")
    writer = server.token("registry:write")
    other = server.token("metrics:read")
    body = {"name": "scoped", "capacity": 1}

    def call(token: str, method: str, path: str) -> int:
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.request(method, server.url + path, headers=headers, json=body).status_code

    assert call(reader, "GET", "/api/v1/fleets") == 200
    assert call(reader, "POST", "/api/v1/fleets") == 403
    assert call(other, "GET", "/api/v1/fleets") == 403
    assert call(writer, "POST", "/api/v1/fleets") == 201
    assert httpx.get(server.url + "/api/v1/fleets").status_code == 401


KINDS = ("nodes", "workloads", "clusters", "functions", "fleets", "instances")


@pytest.mark.parametrize("path", [f"/api/v1/{kind}" for kind in KINDS])
def test_every_registry_lists_and_refuses_a_non_object_body(api: httpx.Client, path: str) -> None:
    assert api.get(path).status_code == 200
    response = api.post(path, content=b"[1, 2", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert api.post(path, json=[]).status_code == 400


def test_acknowledged_changes_survive_kill_9(tmp_path: Path) -> None:
    proc = HakonProcess(tmp_path / "data").start()
    token = proc.admin_token()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=proc.url, headers=headers, timeout=10) as api:
        fleet = _fleet(api, "durable", capacity=3, env="prod")
        api.patch(f"/api/v1/fleets/{fleet['id']}", json={"capacity": 4})
        inst = api.post("/api/v1/instances", json={"name": "d-1", "fleet_id": fleet["id"]})
        api.post(f"/api/v1/instances/{inst.json()['id']}/start")
    proc.stop(signal.SIGKILL)
    again = HakonProcess(tmp_path / "data").start()
    try:
        with httpx.Client(base_url=again.url, headers=headers, timeout=10) as api:
            kept = api.get(f"/api/v1/fleets/{fleet['id']}").json()
            assert (kept["capacity"], kept["resource_version"], kept["instances"]) == (4, 2, 1)
            assert api.get(f"/api/v1/instances/{inst.json()['id']}").json()["status"] == "running"
    finally:
        again.stop()
