"""Edge nodes and workloads (seed 001): registration, status and heartbeats, and
workloads deployed onto nodes that satisfy their placement constraints."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hakon.errors import InvalidRequest
from hakon.ingest.edge import HEARTBEAT_SERIES
from hakon.registry.quantity import PATTERN as QUANTITY
from hakon.registry.quantity import parse_quantity
from hakon.registry.resources import Kind, Record, Registry, now_ms
from hakon.store.interface import SampleBatch
from hakon.timefmt import rfc3339

Name: Any = Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
Quantity: Any = Field(None, max_length=32, pattern=QUANTITY)
NODE_STATUSES = ("registered", "active", "inactive", "maintenance", "offline")


class NodeResources(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cpu: str | None = Field(None, max_length=32, pattern=QUANTITY, description="Cores: 4, 500m.")
    memory: str | None = Field(None, max_length=32, pattern=QUANTITY, description="8Gi.")
    storage: str | None = Field(None, max_length=32, pattern=QUANTITY, description="100Gi.")


class NodeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Name
    address: str = Field(min_length=1, max_length=253, description="IP address or host name.")
    capabilities: list[str] = Field(default_factory=list, max_length=64)
    resources: NodeResources = Field(default_factory=lambda: NodeResources.model_validate({}))
    labels: dict[str, str] = Field(default_factory=dict)


class NodeUsage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cpu_usage: str | None = Field(None, max_length=32, pattern=QUANTITY, description="Cores.")
    memory_usage: str | None = Quantity
    storage_usage: str | None = Quantity


class NodeStatusUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["active", "inactive", "maintenance"] | None = None
    heartbeat: bool = Field(False, description="Record a heartbeat now.")
    resources: NodeUsage | None = Field(None, description="Usage; also written as metrics.")


USAGE_SERIES = {
    "cpu_usage": "hakon_edge_status_cpu_usage_cores",
    "memory_usage": "hakon_edge_status_memory_usage_bytes",
    "storage_usage": "hakon_edge_status_storage_usage_bytes",
}

NODE = Kind(
    name="node",
    plural="nodes",
    model=NodeSpec,
    id_prefix="node-",
    initial_state=lambda spec: {"status": "registered", "last_heartbeat": None},
    events={"created": "node.registered"},
)


def update_status(
    registry: Registry,
    node_id: str,
    update: NodeStatusUpdate,
    append: Callable[[SampleBatch], None],
    beat: Callable[[str, int], None],
) -> Record:
    """Seed 001's `PUT /nodes/{id}/status`. The usage and heartbeat are written as
    series first, so an acknowledged report is in the store; the heartbeat itself
    goes through `beat` (persisted with the next sweep), a status change at once."""
    registry.get("node", node_id)
    now = now_ms()
    labels: list[dict[str, str]] = []
    values: list[float] = []
    for field, name in USAGE_SERIES.items():
        text = getattr(update.resources, field, None) if update.resources else None
        if text is not None:
            labels.append({"__name__": name, "node_id": node_id})
            values.append(parse_quantity(text, f"resources.{field}"))
    if update.heartbeat:
        labels.append({"__name__": HEARTBEAT_SERIES, "node_id": node_id})
        values.append(now / 1000)
    if labels:
        append(SampleBatch.from_series(labels, range(len(labels)), [now] * len(labels), values))
    if update.heartbeat:
        beat(node_id, now)
    if update.status is not None:
        return registry.set_state("node", node_id, {"status": update.status})
    return registry.get("node", node_id)


# -- workloads --------------------------------------------------------------------------


class ResourceList(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cpu: str | None = Quantity
    memory: str | None = Quantity


class WorkloadResources(BaseModel):
    model_config = ConfigDict(extra="forbid")
    requests: ResourceList = Field(default_factory=lambda: ResourceList.model_validate({}))
    limits: ResourceList = Field(default_factory=lambda: ResourceList.model_validate({}))


class Constraint(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=1, max_length=253)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] = Field(default_factory=list, max_length=256)


class Placement(BaseModel):
    model_config = ConfigDict(extra="forbid")
    strategy: str = Field("edge-first", max_length=64)
    constraints: list[Constraint] = Field(default_factory=list, max_length=64)


class WorkloadSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Name
    namespace: str = Field("default", min_length=1, max_length=63,
                           pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # fmt: skip
    type: Literal["deployment", "statefulset", "daemonset", "job", "cronjob"] = "deployment"
    image: str = Field(min_length=1, max_length=1024)
    replicas: int = Field(1, ge=0, le=10_000)
    resources: WorkloadResources = Field(
        default_factory=lambda: WorkloadResources.model_validate({})
    )
    placement: Placement = Field(default_factory=lambda: Placement.model_validate({}))
    labels: dict[str, str] = Field(default_factory=dict)


class DeployRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    nodes: list[str] = Field(min_length=1, max_length=1000, description="Target node ids.")
    strategy: Literal["rolling", "recreate", "blue-green", "canary"] = "rolling"


def _check_constraints(spec: dict[str, Any], _old: Record | None) -> None:
    for i, c in enumerate(spec.get("placement", {}).get("constraints", [])):
        needs_values = c["operator"] in ("In", "NotIn")
        if needs_values != bool(c.get("values")):
            raise InvalidRequest(
                f"placement.constraints[{i}]: operator {c['operator']} "
                + ("needs values" if needs_values else "takes no values"),
                field=f"placement.constraints[{i}].values",
            )


WORKLOAD = Kind(
    name="workload",
    plural="workloads",
    model=WorkloadSpec,
    id_prefix="wl-",
    unique=lambda spec: f"{spec['namespace']}/{spec['name']}",
    unique_field="namespace/name",
    initial_state=lambda spec: {"status": "created", "nodes": []},
    check=lambda registry, spec, old: _check_constraints(spec, old),
)


def satisfies(constraint: dict[str, Any], labels: dict[str, str]) -> bool:
    op, key = constraint["operator"], constraint["key"]
    if op == "In":
        return labels.get(key) in constraint["values"]
    if op == "NotIn":
        return labels.get(key) not in constraint["values"]
    if op == "Exists":
        return key in labels
    return key not in labels


def deploy(registry: Registry, workload_id: str, request: DeployRequest) -> dict[str, Any]:
    """Record a deployment of the workload onto nodes that exist and satisfy every
    placement constraint; 400 names the node and the constraint it fails."""
    with registry.lock:
        workload = registry.get("workload", workload_id)
        constraints = workload.spec.get("placement", {}).get("constraints", [])
        for i, node_id in enumerate(dict.fromkeys(request.nodes)):
            node = registry.find("node", node_id)
            if node is None:
                raise InvalidRequest(f"nodes[{i}]: no node {node_id!r}", field=f"nodes[{i}]")
            labels = node.spec.get("labels", {})
            for j, c in enumerate(constraints):
                if not satisfies(c, labels):
                    shown = f"{c['key']} {c['operator']} {c.get('values', [])}"
                    raise InvalidRequest(
                        f"node {node_id!r} does not satisfy placement constraint {j} ({shown})",
                        field=f"placement.constraints[{j}]",
                        details={"node": node_id, "constraint": c},
                    )
        now = rfc3339(now_ms())
        deployment = {
            "deployment_id": "deploy-" + uuid.uuid4().hex[:12],
            "target_nodes": list(dict.fromkeys(request.nodes)),
            "strategy": request.strategy,
            "status": "deploying",
            "started_at": now,
        }
        history = [deployment, *workload.state.get("deployments", [])][:20]
        record = registry.set_state(
            "workload",
            workload_id,
            {"status": "deploying", "nodes": deployment["target_nodes"], "deployments": history},
            event="deployed",
        )
    return {"id": record.id, "name": record.spec["name"], **deployment}
