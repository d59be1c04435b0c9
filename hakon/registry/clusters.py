"""Clusters (seed 002): registered through the API or by the first HakonGo payload that
names them, and described from their metrics (node counts, usage, workloads)."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hakon.errors import HakonError, InvalidRequest, NotFound
from hakon.registry.resources import Kind, Record, Registry, now_ms
from hakon.timefmt import rfc3339

log = logging.getLogger(__name__)

Name: Any = Field(min_length=1, max_length=253)
Query = Callable[[str], list[tuple[dict[str, str], float]]]


class Taint(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=1, max_length=253)
    value: str = Field("", max_length=253)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


class AutoScaling(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    min_size: int = Field(0, ge=0, le=10_000)
    max_size: int = Field(1, ge=0, le=10_000)
    target_cpu: int | None = Field(None, ge=1, le=100, description="Percent.")

    @field_validator("max_size")
    @classmethod
    def _bounds(cls, value: int, info: Any) -> int:
        if value < info.data.get("min_size", 0):
            raise ValueError("max_size must be at least min_size")
        return value


class NodePool(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Name
    size: int = Field(ge=0, le=10_000)
    instance_type: str = Field("", max_length=128)
    disk_size: int | None = Field(None, ge=1, le=1_000_000, description="GB.")
    auto_scaling: bool | AutoScaling = False
    labels: dict[str, str] = Field(default_factory=dict)
    taints: list[Taint] = Field(default_factory=list, max_length=64)


class Networking(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cluster_cidr: str | None = Field(None, max_length=64)
    service_cidr: str | None = Field(None, max_length=64)
    cni: str | None = Field(None, max_length=64)

    @field_validator("cluster_cidr", "service_cidr")
    @classmethod
    def _cidr(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ipaddress.ip_network(value)
            except ValueError:
                raise ValueError(f"{value!r} is not a CIDR such as 10.244.0.0/16") from None
        return value


class Configuration(BaseModel):
    model_config = ConfigDict(extra="forbid")
    node_pools: list[NodePool] = Field(default_factory=list, max_length=256)
    networking: Networking = Field(default_factory=lambda: Networking.model_validate({}))
    addons: list[str] = Field(default_factory=list, max_length=256)


class ClusterPlatform(BaseModel):
    os: str = ""
    architecture: str = ""
    version: str = ""


class ClusterNodeGroup(BaseModel):
    name: str = Name
    labels: dict[str, str] = Field(default_factory=dict)
    platform: ClusterPlatform = Field(default_factory=lambda: ClusterPlatform.model_validate({}))
    metadata: dict[str, str] = Field(default_factory=dict)


class ClusterSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Name
    provider: str = Field("", max_length=64, description="openstack, aws, gcp, azure, ...")
    region: str = Field("", max_length=128)
    zone: str = Field("", max_length=128)
    version: str = Field("", max_length=64, description="Kubernetes version, e.g. v1.28.0.")
    labels: dict[str, str] = Field(default_factory=dict)
    configuration: Configuration = Field(default_factory=lambda: Configuration.model_validate({}))
    node_groups: list[ClusterNodeGroup] = Field(
        default_factory=list, description="As the cluster's HakonGo agent reports them."
    )


CLUSTER = Kind(
    name="cluster",
    plural="clusters",
    model=ClusterSpec,
    id_prefix="cluster-",
    initial_state=lambda spec: {"status": "pending"},
)


class ClusterObserver:
    """Keeps the cluster registry in step with HakonGo payloads' `context`.

    A payload registers an unknown cluster (status active, its id the payload's
    `cluster_id`) and updates a known one whose context changed. Contexts already
    seen are remembered, so the ingest path pays one dict lookup per request.
    """

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._seen: dict[str, dict[str, Any]] = {}

    def seen(self, cluster_id: str, context: dict[str, Any]) -> bool:
        """Whether this exact context was already applied (the common case: no change)."""
        return self._seen.get(cluster_id) == context

    def observe(self, cluster_id: str, context: dict[str, Any]) -> None:
        if self._seen.get(cluster_id) == context:
            return
        provider = context.get("provider") or {}
        reported = {
            "name": context.get("name") or cluster_id,
            "provider": provider.get("name", ""),
            "region": provider.get("region", ""),
            "zone": provider.get("zone", ""),
            "version": context.get("kubernetes_version", ""),
            "labels": context.get("labels") or {},
            "node_groups": context.get("node_groups") or [],
        }
        spec = {k: v for k, v in reported.items() if v}  # what the agent left out stays
        registry = self.registry
        try:
            with registry.lock:
                existing = registry.find("cluster", cluster_id)
                if existing is None:
                    registry.create("cluster", spec, {"status": "active"}, rid=cluster_id)
                else:
                    registry.update("cluster", cluster_id, spec)
                    if existing.state.get("status") != "active":
                        registry.set_state("cluster", cluster_id, {"status": "active"})
        except HakonError as exc:  # e.g. the name is another cluster's: metrics still land
            log.warning("cluster %s from HakonGo not registered: %s", cluster_id, exc.message)
        self._seen[cluster_id] = context

    def forget(self, cluster_id: str) -> None:
        self._seen.pop(cluster_id, None)


# -- views from metrics -----------------------------------------------------------------

MASTER_GROUPS = ("master", "control-plane", "controlplane")


def node_counts(query: Query) -> dict[str, dict[str, int]]:
    """Per cluster id, from the latest `hakon_node_ready`: total, ready, master, worker.
    A node is a master when its node group's name says so (master, control-plane)."""
    counts: dict[str, dict[str, int]] = {}
    for labels, value in query("hakon_node_ready"):
        c = counts.setdefault(labels.get("cluster_id", ""),
                              {"total": 0, "ready": 0, "master": 0, "worker": 0})  # fmt: skip
        c["total"] += 1
        c["ready"] += int(value == 1)
        group = labels.get("node_group", "").lower()
        c["master" if any(m in group for m in MASTER_GROUPS) else "worker"] += 1
    return counts


def _percent(value: float | None) -> str | None:
    return None if value is None else f"{round(value, 1):g}%"


def _rate(value: float | None) -> str | None:
    return None if value is None else f"{round(value / 1e6, 1):g} MB/s"


def usage(query: Query, cluster_id: str) -> dict[str, Any]:
    """Seed 002's `metrics` block: usage ratios and network rates over the latest node data."""
    sel = f'{{cluster_id="{_escape(cluster_id)}"}}'

    def scalar(expr: str) -> float | None:
        found = query(expr)
        return found[0][1] if found else None

    def ratio(used: str, total: str) -> float | None:
        return scalar(f"100 * sum(hakon_node_{used}{sel}) / sum(hakon_node_{total}{sel})")

    return {
        "cpu_usage": _percent(ratio("cpu_usage_cores", "cpu_capacity_cores")),
        "memory_usage": _percent(ratio("memory_working_set_bytes", "memory_capacity_bytes")),
        "disk_usage": _percent(
            ratio("ephemeral_storage_used_bytes", "ephemeral_storage_capacity_bytes")
        ),
        "network_io": {
            "ingress": _rate(scalar(f"sum(rate(hakon_node_network_rx_bytes_total{sel}[5m]))")),
            "egress": _rate(scalar(f"sum(rate(hakon_node_network_tx_bytes_total{sel}[5m]))")),
        },
    }


WORKLOAD_TYPES = {
    "deployment": "Deployment",
    "statefulset": "StatefulSet",
    "daemonset": "DaemonSet",
    "replicaset": "ReplicaSet",
    "job": "Job",
    "cronjob": "CronJob",
}


def workload_type(text: str) -> str:
    """`deployments`, `Deployment` or `deployment` -> `deployment`."""
    key = text.lower().removesuffix("s")
    if key not in WORKLOAD_TYPES:
        raise InvalidRequest(
            f"workload type must be one of {', '.join(WORKLOAD_TYPES)}, not {text[:40]!r}",
            field="workload_type",
        )
    return key


def _scale_key(kind: str, namespace: str, name: str) -> str:
    return f"{kind}/{namespace}/{name}"


def workloads(query: Query, cluster: Record) -> dict[str, list[dict[str, Any]]]:
    """Seed 002's workload status, from the cluster's latest HakonGo payloads."""
    sel = f'{{cluster_id="{_escape(cluster.id)}"}}'
    scale = cluster.state.get("scale_requests", {})
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    for field in ("desired", "ready", "available"):
        for labels, value in query(f"hakon_workload_replicas_{field}{sel}"):
            kind = labels.get("kind", "")
            key = (kind, labels.get("namespace", ""), labels.get("workload", ""))
            item = found.setdefault(key, {"name": key[2], "namespace": key[1], "kind": kind,
                                          "replicas": {}})  # fmt: skip
            item["replicas"][field] = int(value)
    out: dict[str, list[dict[str, Any]]] = {"deployments": []}
    for (kind, namespace, name), item in sorted(found.items()):
        replicas = item["replicas"]
        ready, desired = replicas.get("ready"), replicas.get("desired")
        item["status"] = "ready" if ready is not None and ready >= (desired or 0) else "progressing"
        requested = scale.get(_scale_key(kind.lower(), namespace, name))
        if requested is not None:
            item["requested_replicas"] = requested["replicas"]
        out.setdefault(kind.lower() + "s", []).append(item)
    services: dict[tuple[str, str], dict[str, Any]] = {}
    for labels, value in query(f"hakon_service_endpoints_ready{sel}"):
        svc = (labels.get("namespace", ""), labels.get("service", ""))
        services[svc] = {"name": svc[1], "namespace": svc[0], "type": labels.get("type", ""),
                         "endpoints_ready": int(value)}  # fmt: skip
    out["services"] = [services[k] for k in sorted(services)]
    ready_pods = {
        (labels.get("namespace", ""), labels.get("pod", "")): value == 1
        for labels, value in query(f"hakon_pod_ready{sel}")
    }
    pods = []
    for labels, _ in query(f"hakon_pod_phase{sel} == 1"):
        pod = (labels.get("namespace", ""), labels.get("pod", ""))
        pods.append({
            "name": pod[1], "namespace": pod[0], "status": labels.get("phase", ""),
            "ready": ready_pods.get(pod, False), "node": labels.get("node", ""),
        })  # fmt: skip
    out["pods"] = sorted(pods, key=lambda p: (p["namespace"], p["name"]))
    return out


def scale(
    registry: Registry, query: Query, cluster_id: str, kind: str, namespace: str, name: str,
    replicas: int,
) -> dict[str, Any]:  # fmt: skip
    """Record a desired replica count for a workload the cluster reports."""
    kind = workload_type(kind)
    with registry.lock:
        cluster = registry.get("cluster", cluster_id)
        seen = workloads(query, cluster).get(kind + "s", [])
        if not any(w["namespace"] == namespace and w["name"] == name for w in seen):
            raise NotFound(
                f"cluster {cluster_id!r} reports no {kind} {namespace}/{name}",
                details={"cluster_id": cluster_id, "namespace": namespace, "name": name},
            )
        request = {"replicas": replicas, "requested_at": rfc3339(now_ms())}
        requests = {**cluster.state.get("scale_requests", {}),
                    _scale_key(kind, namespace, name): request}  # fmt: skip
        registry.set_state("cluster", cluster_id, {"scale_requests": requests})
    body = {"cluster_id": cluster_id, "type": kind, "namespace": namespace, "name": name,
            **request}  # fmt: skip
    registry.publish("workload.updated", body)
    return body


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
