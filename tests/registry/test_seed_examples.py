"""A client written against the seeds' examples, unchanged, against a real server.

Each step is one request as the seed shows it (paths under /api/v1 or /v1) and
the response fields the seed promises. `{fleet}`-style placeholders are filled
from earlier responses.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

NODE = {
    "name": "seed-edge-node-1",
    "address": "192.168.1.100",
    "capabilities": ["compute", "storage", "gpu"],
    "resources": {"cpu": "4", "memory": "8Gi", "storage": "100Gi"},
    "labels": {"location": "datacenter-1", "environment": "production"},
}
WORKLOAD = {
    "name": "web-app",
    "namespace": "default",
    "type": "deployment",
    "image": "nginx:latest",
    "replicas": 3,
    "resources": {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "200m", "memory": "256Mi"},
    },
    "placement": {
        "strategy": "edge-first",
        "constraints": [{"key": "location", "operator": "In", "values": ["datacenter-1"]}],
    },
}
CLUSTER = {
    "name": "seed-new-cluster",
    "provider": "openstack",
    "region": "us-east-1",
    "version": "v1.28.0",
    "configuration": {
        "node_pools": [
            {
                "name": "master-pool",
                "size": 3,
                "instance_type": "m5.xlarge",
                "disk_size": 100,
                "auto_scaling": False,
            },
            {
                "name": "worker-pool",
                "size": 5,
                "instance_type": "m5.large",
                "disk_size": 50,
                "auto_scaling": {"enabled": True, "min_size": 3, "max_size": 10, "target_cpu": 70},
            },
        ],
        "networking": {
            "cluster_cidr": "10.244.0.0/16",
            "service_cidr": "10.96.0.0/12",
            "cni": "cilium",
        },
        "addons": ["ingress-nginx", "cert-manager"],
    },
}
FUNCTION = {
    "name": "seed-function",
    "runtime": "nodejs18",
    "handler": "index.handler",
    "code": "module.exports.handler = async (event) => "
    "{ return { statusCode: 200, body: 'Hello!' }; };",
    "environment": {"VAR1": "value1"},
    "minReplicas": 0,
    "maxReplicas": 10,
    "triggers": [{"type": "http", "config": {"path": "/my-function"}}],
}
FLEET = {
    "name": "seed-web-fleet",
    "description": "Web application fleet",
    "capacity": 3,
    "instance_type": "t3.medium",
    "tags": {"environment": "production"},
}

# (method, path, body, status, fields the response must carry, name to remember it by)
STEPS: list[tuple[str, str, Any, int, dict[str, Any], str | None]] = [
    # seed 001: nodes
    ("POST", "/api/v1/nodes", NODE, 201,
     {"name": "seed-edge-node-1", "address": "192.168.1.100", "status": "registered",
      "registered_at": str}, "node"),
    ("GET", "/api/v1/nodes", None, 200, {"nodes": list, "pagination": dict}, None),
    ("GET", "/api/v1/nodes/{node}", None, 200,
     {"capabilities": ["compute", "storage", "gpu"], "resources": NODE["resources"],
      "labels": NODE["labels"], "last_heartbeat": None}, None),
    ("PUT", "/api/v1/nodes/{node}/status",
     {"status": "active", "heartbeat": True,
      "resources": {"cpu_usage": "2.5", "memory_usage": "4Gi", "storage_usage": "50Gi"}},
     200, {"name": "seed-edge-node-1", "status": "active", "last_heartbeat": str}, None),
    # seed 001: workloads
    ("POST", "/api/v1/workloads", WORKLOAD, 201,
     {"name": "web-app", "namespace": "default", "status": "created", "created_at": str},
     "workload"),
    ("GET", "/api/v1/workloads", None, 200, {"workloads": list, "pagination": dict}, None),
    ("PUT", "/api/v1/workloads/{workload}",
     {"replicas": 5, "resources": {"requests": {"cpu": "200m", "memory": "256Mi"},
                                   "limits": {"cpu": "400m", "memory": "512Mi"}}},
     200, {"name": "web-app", "replicas": 5, "updated_at": str}, None),
    ("POST", "/api/v1/workloads/{workload}/deploy", {"nodes": ["{node}"], "strategy": "rolling"},
     200, {"name": "web-app", "status": "deploying", "deployment_id": str,
           "target_nodes": ["{node}"], "started_at": str}, None),
    ("GET", "/api/v1/workloads/{workload}", None, 200,
     {"image": "nginx:latest", "placement": WORKLOAD["placement"], "nodes": ["{node}"],
      "status": "deploying"}, None),
    ("DELETE", "/api/v1/workloads/{workload}", None, 200,
     {"success": True, "message": "Workload successfully removed"}, None),
    ("DELETE", "/api/v1/nodes/{node}", None, 200,
     {"success": True, "message": "Node successfully removed"}, None),
    # seed 002: clusters, through the /v1 alias
    ("POST", "/v1/clusters", CLUSTER, 201,
     {"id": str, "name": "seed-new-cluster", "status": str, "created_at": str}, "cluster"),
    ("GET", "/v1/clusters", None, 200,
     {"clusters": list, "total": int, "page": 1, "per_page": 20}, None),
    ("GET", "/v1/clusters/{cluster}", None, 200,
     {"provider": "openstack", "region": "us-east-1", "version": "v1.28.0",
      "configuration": dict, "metrics": dict,
      "nodes": {"total": 0, "ready": 0, "master": 0, "worker": 0}}, None),
    ("GET", "/v1/clusters/{cluster}/workloads", None, 200,
     {"workloads": {"deployments": [], "services": [], "pods": []}}, None),
    ("DELETE", "/v1/clusters/{cluster}", None, 204, {}, None),
    # seed 003: functions
    ("POST", "/api/v1/functions", FUNCTION, 201,
     {"name": "seed-function", "runtime": "nodejs18", "handler": "index.handler",
      "status": dict}, None),
    ("GET", "/api/v1/functions/seed-function", None, 200,
     {"code": FUNCTION["code"], "minReplicas": 0, "maxReplicas": 10}, None),
    ("PUT", "/api/v1/functions/seed-function", {**FUNCTION, "maxReplicas": 4}, 200,
     {"maxReplicas": 4}, None),
    ("GET", "/api/v1/functions/seed-function/metrics", None, 200,
     {"invocations": 0, "coldStarts": 0, "avgDuration": 0.0, "errorRate": 0.0,
      "costEstimate": 0.0}, None),
    ("DELETE", "/api/v1/functions/seed-function", None, 204, {}, None),
    ("GET", "/api/v1/functions/seed-function", None, 404, {"error": dict}, None),
    # seed 004: fleets and instances
    ("POST", "/v1/fleets", FLEET, 201,
     {"id": str, "name": "seed-web-fleet", "description": "Web application fleet",
      "capacity": 3, "instance_type": "t3.medium", "status": "active", "created_at": str,
      "tags": {"environment": "production"}}, "fleet"),
    ("POST", "/v1/fleets", {**FLEET, "name": "bad", "capacity": 0}, 400,
     {"error": {"code": "INVALID_REQUEST",
                "details": {"field": "capacity", "reason": "Input should be greater than 0"}}},
     None),
    ("GET", "/v1/fleets/{fleet}", None, 200, {"capacity": 3}, None),
    ("PUT", "/v1/fleets/{fleet}", {"capacity": 5}, 200, {"capacity": 5}, None),
    ("POST", "/v1/instances", {"name": "seed-i-1", "fleet_id": "{fleet}"}, 201,
     {"fleet_id": "{fleet}", "status": "stopped", "instance_type": "t3.medium"}, "instance"),
    ("POST", "/v1/instances/{instance}/start", None, 200, {"status": "running"}, None),
    ("POST", "/v1/instances/{instance}/stop", None, 200, {"status": "stopped"}, None),
    ("DELETE", "/v1/instances/{instance}", None, 204, {}, None),
    ("DELETE", "/v1/fleets/{fleet}", None, 204, {}, None),
]  # fmt: skip


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        for name, rid in ids.items():
            value = value.replace("{" + name + "}", rid)
        return value
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


def _check(got: Any, want: Any, where: str) -> None:
    if isinstance(want, type):
        assert isinstance(got, want), f"{where}: {got!r} is not a {want.__name__}"
    elif isinstance(want, dict) and want and isinstance(got, dict):
        for key, value in want.items():
            assert key in got, f"{where}: no {key!r} in {got}"
            _check(got[key], value, f"{where}.{key}")
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


def test_the_seed_examples_work_unchanged(api: httpx.Client) -> None:
    ids: dict[str, str] = {}
    for method, path, body, status, fields, remember in STEPS:
        url = _fill(path, ids)
        response = api.request(method, url, json=_fill(body, ids))
        assert response.status_code == status, f"{method} {url}: {response.text}"
        if fields:
            _check(response.json(), _fill(fields, ids), f"{method} {url}")
        if remember:
            ids[remember] = response.json()["id"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/nodes", {**NODE, "resources": {"cpu": "four"}}, "resources.cpu"),
        ("/api/v1/nodes", {**NODE, "address": ""}, "address"),
        ("/api/v1/nodes", {**NODE, "colour": "red"}, "colour"),
        ("/api/v1/workloads", {**WORKLOAD, "replicas": -1}, "replicas"),
        ("/api/v1/workloads", {**WORKLOAD, "placement": {"constraints": [
            {"key": "location", "operator": "Near", "values": ["x"]}]}},
         "placement.constraints[0].operator"),
        ("/api/v1/workloads", {**WORKLOAD, "name": "in-values", "placement": {"constraints": [
            {"key": "location", "operator": "In"}]}}, "placement.constraints[0].values"),
        ("/api/v1/clusters", {**CLUSTER, "configuration": {"networking": {
            "cluster_cidr": "10.244.0.0/33"}}}, "configuration.networking.cluster_cidr"),
        ("/api/v1/clusters", {**CLUSTER, "configuration": {"node_pools": [
            {"name": "p", "size": 1, "taints": [{"key": "k", "effect": "Sometimes"}]}]}},
         "configuration.node_pools[0].taints[0].effect"),
        ("/api/v1/functions", {**FUNCTION, "runtime": "ruby32"}, "runtime"),
        ("/api/v1/functions", {**FUNCTION, "runtime": "go119"}, "handler"),
        ("/api/v1/functions", {**FUNCTION, "handler": "index"}, "handler"),
        ("/api/v1/functions", {**FUNCTION, "minReplicas": 5, "maxReplicas": 2},
         "maxReplicas"),
        ("/api/v1/functions", {**FUNCTION, "triggers": [
            {"type": "cron", "config": {"schedule": "every five minutes"}}]},
         "triggers[0]"),
        ("/api/v1/functions", {**FUNCTION, "triggers": [{"type": "queue", "config": {}}]},
         "triggers[0]"),
        ("/api/v1/functions", {**FUNCTION, "name": "Upper_Case"}, "name"),
        ("/api/v1/fleets", {**FLEET, "capacity": -3}, "capacity"),
        ("/api/v1/instances", {"name": "orphan", "fleet_id": "fleet-nope"}, "fleet_id"),
    ],
)  # fmt: skip
def test_a_bad_resource_is_a_400_naming_the_field(
    api: httpx.Client, path: str, body: dict[str, Any], field: str
) -> None:
    before = api.get(path).json()
    response = api.post(path, json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "INVALID_REQUEST"
    assert error["details"]["field"].startswith(field), error
    assert api.get(path).json() == before  # nothing changed
