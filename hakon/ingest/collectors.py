"""The HakonGo collectors, declared: what each resource carries and the series it becomes.

One table drives everything: the msgspec request types (`hakon.ingest.hakongo`),
the flattening, the OpenAPI schemas and `docs/ingest.md`. A resource has
identity fields (which become labels), numbers (one series each, named
`<prefix>_<field>`), states (a bool becomes one 0/1 series; an enum becomes one
series per allowed value with the value as a label, 1 for the current one, as
kube-state-metrics does) and may nest child resources (a pod's containers).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Identity:
    field: str
    label: str
    required: bool = True
    description: str = ""


@dataclass(frozen=True)
class Number:
    field: str
    description: str
    counter: bool = False


@dataclass(frozen=True)
class State:
    field: str
    description: str
    values: tuple[str, ...] = ()  # empty: a bool

    @property
    def is_bool(self) -> bool:
        return not self.values


@dataclass(frozen=True)
class Kind:
    name: str  # the struct name in schemas, e.g. "Pod"
    prefix: str  # series name prefix, e.g. "hakon_pod"
    identity: tuple[Identity, ...]
    numbers: tuple[Number, ...]
    states: tuple[State, ...] = ()
    child: Kind | None = None
    child_field: str = ""
    extra_metrics: bool = True

    def series_names(self) -> list[tuple[str, tuple[str, str] | None]]:
        """(metric name, extra state label or None) per series of one resource, in order."""
        out: list[tuple[str, tuple[str, str] | None]] = [
            (f"{self.prefix}_{n.field}", None) for n in self.numbers
        ]
        for s in self.states:
            if s.is_bool:
                out.append((f"{self.prefix}_{s.field}", None))
            else:
                out.extend((f"{self.prefix}_{s.field}", (s.field, v)) for v in s.values)
        return out


@dataclass(frozen=True)
class Collector:
    path: str  # the route segment: /api/v1/hakongo/{path}
    kind: Kind
    summary: str


_CPU = "CPU in use, in cores (1.5 = one and a half cores)."
_MEM_WS = "Working-set memory in bytes (what the OOM killer looks at)."

CONTAINER = Kind(
    name="Container",
    prefix="hakon_container",
    identity=(Identity("name", "container", description="Container name within the pod."),),
    numbers=(
        Number("cpu_usage_cores", _CPU),
        Number("cpu_requests_cores", "CPU requested, in cores."),
        Number("cpu_limits_cores", "CPU limit, in cores."),
        Number("memory_working_set_bytes", _MEM_WS),
        Number("memory_requests_bytes", "Memory requested, in bytes."),
        Number("memory_limits_bytes", "Memory limit, in bytes."),
        Number("restarts_total", "Restarts of this container since the pod started.", True),
    ),
    states=(State("ready", "Whether the container passes its readiness probe."),),
    extra_metrics=False,
)

POD = Kind(
    name="Pod",
    prefix="hakon_pod",
    identity=(
        Identity("namespace", "namespace", description="Namespace of the pod."),
        Identity("name", "pod", description="Pod name."),
        Identity("node", "node", False, "Node the pod is scheduled on."),
        Identity("workload", "workload", False, "Owning workload (Deployment, ...) name."),
    ),
    numbers=(
        Number("cpu_usage_cores", _CPU),
        Number("cpu_requests_cores", "Sum of the containers' CPU requests, in cores."),
        Number("cpu_limits_cores", "Sum of the containers' CPU limits, in cores."),
        Number("memory_working_set_bytes", _MEM_WS),
        Number("memory_requests_bytes", "Sum of the containers' memory requests, in bytes."),
        Number("memory_limits_bytes", "Sum of the containers' memory limits, in bytes."),
        Number("network_rx_bytes_total", "Bytes received by the pod.", True),
        Number("network_tx_bytes_total", "Bytes sent by the pod.", True),
        Number("restarts_total", "Container restarts of the pod.", True),
    ),
    states=(
        State("phase", "Pod phase.", ("Pending", "Running", "Succeeded", "Failed", "Unknown")),
        State("ready", "Whether the pod is Ready."),
    ),
    child=CONTAINER,
    child_field="containers",
)

NODE = Kind(
    name="Node",
    prefix="hakon_node",
    identity=(
        Identity("name", "node", description="Node name."),
        Identity("node_group", "node_group", False, "Node group / pool the node belongs to."),
        Identity("instance_type", "instance_type", False, "Cloud instance type."),
        Identity("zone", "zone", False, "Availability zone of the node."),
    ),
    numbers=(
        Number("cpu_capacity_cores", "CPU capacity, in cores."),
        Number("cpu_allocatable_cores", "CPU allocatable to pods, in cores."),
        Number("cpu_usage_cores", _CPU),
        Number("memory_capacity_bytes", "Memory capacity, in bytes."),
        Number("memory_allocatable_bytes", "Memory allocatable to pods, in bytes."),
        Number("memory_working_set_bytes", _MEM_WS),
        Number("ephemeral_storage_capacity_bytes", "Ephemeral storage capacity, in bytes."),
        Number("ephemeral_storage_used_bytes", "Ephemeral storage in use, in bytes."),
        Number("pods_capacity", "Pods the node can run."),
        Number("pods_running", "Pods running on the node."),
        Number("network_rx_bytes_total", "Bytes received by the node.", True),
        Number("network_tx_bytes_total", "Bytes sent by the node.", True),
    ),
    states=(
        State("ready", "The node's Ready condition."),
        State("unschedulable", "Whether the node is cordoned."),
        State("memory_pressure", "The node's MemoryPressure condition."),
        State("disk_pressure", "The node's DiskPressure condition."),
    ),
)

PV = Kind(
    name="PersistentVolume",
    prefix="hakon_pv",
    identity=(
        Identity("name", "persistentvolume", description="PersistentVolume name."),
        Identity("storage_class", "storage_class", False, "StorageClass of the volume."),
        Identity("claim_namespace", "claim_namespace", False, "Namespace of the bound claim."),
        Identity("claim_name", "claim_name", False, "Name of the bound claim."),
    ),
    numbers=(
        Number("capacity_bytes", "Provisioned capacity, in bytes."),
        Number("used_bytes", "Bytes in use (from the kubelet's volume stats)."),
        Number("available_bytes", "Bytes still free."),
        Number("inodes_used", "Inodes in use."),
        Number("inodes_total", "Inodes in total."),
    ),
    states=(
        State("phase", "Volume phase.", ("Pending", "Available", "Bound", "Released", "Failed")),
    ),
)

SERVICE = Kind(
    name="Service",
    prefix="hakon_service",
    identity=(
        Identity("namespace", "namespace", description="Namespace of the service."),
        Identity("name", "service", description="Service name."),
        Identity("type", "type", False, "ClusterIP, NodePort, LoadBalancer or ExternalName."),
    ),
    numbers=(
        Number("endpoints_ready", "Ready endpoints behind the service."),
        Number("endpoints_not_ready", "Endpoints that are not ready."),
        Number("ports", "Ports the service exposes."),
        Number("requests_total", "Requests served, where a mesh or proxy reports it.", True),
        Number("request_errors_total", "Requests that failed (5xx).", True),
    ),
)

NAMESPACE = Kind(
    name="Namespace",
    prefix="hakon_namespace",
    identity=(Identity("name", "namespace", description="Namespace name."),),
    numbers=(
        Number("pods", "Pods in the namespace."),
        Number("pods_running", "Pods in phase Running."),
        Number("cpu_usage_cores", _CPU),
        Number("cpu_requests_cores", "CPU requested by the namespace's pods, in cores."),
        Number("memory_working_set_bytes", _MEM_WS),
        Number("memory_requests_bytes", "Memory requested by the namespace's pods, in bytes."),
        Number("quota_cpu_hard_cores", "ResourceQuota hard limit on CPU, in cores."),
        Number("quota_memory_hard_bytes", "ResourceQuota hard limit on memory, in bytes."),
    ),
    states=(State("phase", "Namespace phase.", ("Active", "Terminating")),),
)

WORKLOAD = Kind(
    name="Workload",
    prefix="hakon_workload",
    identity=(
        Identity("namespace", "namespace", description="Namespace of the workload."),
        Identity("name", "workload", description="Workload name."),
        Identity(
            "kind", "kind", description="Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, ..."
        ),
    ),
    numbers=(
        Number("replicas_desired", "Replicas asked for in the spec."),
        Number("replicas_ready", "Replicas that are Ready."),
        Number("replicas_available", "Replicas available for at least minReadySeconds."),
        Number("replicas_updated", "Replicas running the current template."),
        Number("replicas_unavailable", "Replicas not available."),
        Number("cpu_usage_cores", _CPU),
        Number("memory_working_set_bytes", _MEM_WS),
        Number("restarts_total", "Container restarts across the workload's pods.", True),
    ),
)

INGRESS = Kind(
    name="Ingress",
    prefix="hakon_ingress",
    identity=(
        Identity("namespace", "namespace", description="Namespace of the ingress."),
        Identity("name", "ingress", description="Ingress name."),
        Identity("ingress_class", "ingress_class", False, "IngressClass handling it."),
        Identity("host", "host", False, "Host the figures are for (empty: all hosts)."),
    ),
    numbers=(
        Number("requests_total", "Requests received.", True),
        Number("requests_4xx_total", "Requests answered 4xx.", True),
        Number("requests_5xx_total", "Requests answered 5xx.", True),
        Number("request_duration_p50_seconds", "Median request latency, in seconds."),
        Number("request_duration_p95_seconds", "95th percentile request latency, in seconds."),
        Number("request_duration_p99_seconds", "99th percentile request latency, in seconds."),
        Number("received_bytes_total", "Request bytes received.", True),
        Number("sent_bytes_total", "Response bytes sent.", True),
        Number("backends_ready", "Ready backend endpoints."),
    ),
)

COLLECTORS: tuple[Collector, ...] = (
    Collector("pods", POD, "Pod and container usage, requests, limits, restarts and phase"),
    Collector("nodes", NODE, "Node capacity, allocatable, usage and conditions"),
    Collector("pvs", PV, "PersistentVolume capacity, usage and phase"),
    Collector("services", SERVICE, "Service endpoints and request counts"),
    Collector("namespaces", NAMESPACE, "Namespace totals and quotas"),
    Collector("workloads", WORKLOAD, "Workload replicas and usage"),
    Collector("ingresses", INGRESS, "Ingress request counts, errors and latencies"),
)

# Labels every HakonGo series carries, from the envelope.
ENVELOPE_LABELS = ("cluster_id", "cluster", "provider", "region")


def collectors_markdown() -> str:
    """The per-collector reference tables of `docs/ingest.md` (a test keeps them in sync)."""
    out = []
    for collector in COLLECTORS:
        kind = collector.kind
        out.append(f"### `POST /api/v1/hakongo/{collector.path}`: {collector.summary}\n")
        out.append(_kind_table(kind))
        if kind.child is not None:
            out.append(
                f"Each entry of `{kind.child_field}` (a {kind.child.name.lower()}) carries the "
                f"{kind.name.lower()}'s labels plus its own:\n"
            )
            out.append(_kind_table(kind.child))
    return "\n".join(out)


def _kind_table(kind: Kind) -> str:
    labels = ", ".join(
        f"`{i.field}` → `{i.label}`" + ("" if i.required else " (optional)") for i in kind.identity
    )
    rows = [
        f"Identity fields and their labels: {labels}.\n",
        "| field | series | type | meaning |",
        "| --- | --- | --- | --- |",
    ]
    for n in kind.numbers:
        rows.append(
            f"| `{n.field}` | `{kind.prefix}_{n.field}` | {'counter' if n.counter else 'gauge'} "
            f"| {n.description} |"
        )
    for s in kind.states:
        if s.is_bool:
            rows.append(
                f"| `{s.field}` | `{kind.prefix}_{s.field}` | state 0/1 | {s.description} |"
            )
        else:
            values = ", ".join(f"`{v}`" for v in s.values)
            rows.append(
                f"| `{s.field}` | `{kind.prefix}_{s.field}{{{s.field}=...}}` | state, one series "
                f"per value ({values}); 1 for the current | {s.description} |"
            )
    if kind.extra_metrics:
        rows.append(
            f"| `metrics` | `{kind.prefix}_<key>` per key | gauge | Free-form extra values; keys "
            "must match `[a-zA-Z_:][a-zA-Z0-9_:]*` and not repeat a field above. |"
        )
    return "\n".join(rows) + "\n"
