"""Clusters from HakonGo payloads: registered by their agent, counted and described from
their latest node, workload, service and pod metrics; scale requests recorded."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx

CONTEXT = {
    "name": "agent-prod",
    "kubernetes_version": "v1.30.2",
    "provider": {"name": "aws", "region": "eu-west-1", "zone": "eu-west-1a"},
    "labels": {"env": "prod"},
    "node_groups": [{"name": "control-plane", "platform": {"os": "linux"}}],
}


def _post(api: httpx.Client, collector: str, resources: list[dict[str, Any]],
          cluster_id: str = "c-agent", context: dict[str, Any] = CONTEXT) -> None:  # fmt: skip
    body = {
        "cluster_id": cluster_id,
        "context": context,
        "collected_at": datetime.now(UTC).isoformat(),
        "resources": resources,
    }
    response = api.post(f"/api/v1/hakongo/{collector}", json=body)
    assert response.status_code == 200, response.text


def test_a_hakongo_payload_registers_and_describes_its_cluster(api: httpx.Client) -> None:
    node = {"cpu_capacity_cores": 4, "cpu_usage_cores": 1, "memory_capacity_bytes": 1000,
            "memory_working_set_bytes": 500, "network_rx_bytes_total": 1e6}  # fmt: skip
    _post(api, "nodes", [
        {"name": "cp-1", "node_group": "control-plane", "ready": True, **node},
        {"name": "w-1", "node_group": "workers", "ready": True, **node},
        {"name": "w-2", "node_group": "workers", "ready": False, **node},
    ])  # fmt: skip
    cluster = api.get("/api/v1/clusters/c-agent").json()
    assert cluster["name"] == "agent-prod" and cluster["status"] == "active"
    assert (cluster["provider"], cluster["region"], cluster["zone"]) == ("aws", "eu-west-1",
                                                                         "eu-west-1a")  # fmt: skip
    assert cluster["version"] == "v1.30.2" and cluster["labels"] == {"env": "prod"}
    assert cluster["node_groups"][0]["name"] == "control-plane"
    assert cluster["nodes"] == {"total": 3, "ready": 2, "master": 1, "worker": 2}
    assert cluster["metrics"]["cpu_usage"] == "25%"
    assert cluster["metrics"]["memory_usage"] == "50%"
    listed = api.get("/api/v1/clusters", params={"labels": "env=prod"}).json()
    assert [c["id"] for c in listed["clusters"]] == ["c-agent"]
    assert listed["clusters"][0]["nodes"]["total"] == 3
    version = cluster["resource_version"]
    _post(api, "nodes", [{"name": "cp-1", "ready": True}])  # the same context: no change
    assert api.get("/api/v1/clusters/c-agent").json()["resource_version"] == version
    _post(api, "nodes", [{"name": "cp-1", "ready": True}],
          context={**CONTEXT, "kubernetes_version": "v1.31.0"})  # fmt: skip
    upgraded = api.get("/api/v1/clusters/c-agent").json()
    assert upgraded["version"] == "v1.31.0" and upgraded["resource_version"] == version + 1


def test_workloads_services_and_pods_of_a_cluster_and_scale(api: httpx.Client) -> None:
    ctx = {**CONTEXT, "name": "agent-apps"}
    _post(api, "workloads", [
        {"namespace": "production", "name": "frontend", "kind": "Deployment",
         "replicas_desired": 3, "replicas_ready": 3, "replicas_available": 3},
        {"namespace": "production", "name": "db", "kind": "StatefulSet",
         "replicas_desired": 2, "replicas_ready": 1},
    ], cluster_id="c-apps", context=ctx)  # fmt: skip
    _post(api, "services", [{"namespace": "production", "name": "frontend-service",
                             "type": "ClusterIP", "endpoints_ready": 3}],
          cluster_id="c-apps", context=ctx)  # fmt: skip
    _post(api, "pods", [{"namespace": "production", "name": "frontend-abc", "node": "w-1",
                         "phase": "Running", "ready": True}],
          cluster_id="c-apps", context=ctx)  # fmt: skip
    found = api.get("/api/v1/clusters/c-apps/workloads").json()["workloads"]
    assert found["deployments"] == [{
        "name": "frontend", "namespace": "production", "kind": "Deployment",
        "replicas": {"desired": 3, "ready": 3, "available": 3}, "status": "ready",
    }]  # fmt: skip
    assert found["statefulsets"][0]["status"] == "progressing"
    assert found["services"] == [{"name": "frontend-service", "namespace": "production",
                                  "type": "ClusterIP", "endpoints_ready": 3}]  # fmt: skip
    assert found["pods"] == [{"name": "frontend-abc", "namespace": "production",
                              "status": "Running", "ready": True, "node": "w-1"}]  # fmt: skip
    url = "/api/v1/clusters/c-apps/workloads/deployments/production/frontend/scale"
    scaled = api.patch(url, json={"replicas": 5})
    assert scaled.status_code == 200, scaled.text
    assert scaled.json()["replicas"] == 5 and scaled.json()["type"] == "deployment"
    again = api.get("/api/v1/clusters/c-apps/workloads").json()["workloads"]
    assert again["deployments"][0]["requested_replicas"] == 5
    assert api.patch(url.replace("frontend", "nope"), json={"replicas": 1}).status_code == 404
    bad_type = api.patch(url.replace("deployments", "gizmos"), json={"replicas": 1})
    assert bad_type.status_code == 400
    assert api.patch(url, json={"replicas": -1}).status_code == 400
    assert api.get("/api/v1/clusters/c-none/workloads").status_code == 404


def test_a_deleted_cluster_comes_back_with_its_agent(api: httpx.Client) -> None:
    ctx = {**CONTEXT, "name": "agent-returns"}
    _post(api, "namespaces", [{"name": "default"}], cluster_id="c-back", context=ctx)
    assert api.delete("/api/v1/clusters/c-back").status_code == 204
    assert api.get("/api/v1/clusters/c-back").status_code == 404
    time.sleep(0.01)
    _post(api, "namespaces", [{"name": "default"}], cluster_id="c-back", context=ctx)
    assert api.get("/api/v1/clusters/c-back").status_code == 200


def test_an_agent_naming_another_clusters_name_still_lands_its_metrics(
    api: httpx.Client,
) -> None:
    api.post("/api/v1/clusters", json={"name": "taken-name"})
    _post(api, "nodes", [{"name": "n-1", "ready": True}], cluster_id="c-clash",
          context={**CONTEXT, "name": "taken-name"})  # fmt: skip
    assert api.get("/api/v1/clusters/c-clash").status_code == 404
    series = api.get("/prometheus/api/v1/series", params={"match[]": '{cluster_id="c-clash"}'})
    assert series.json()["data"]
