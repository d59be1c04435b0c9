"""Edge node metrics (seed 001): one small JSON document per node and report.

The figures keep the units the seed's agents send (CPU in percent, memory and
disk in GB, container memory in MB); the series names say so. Each report also
writes `hakon_edge_heartbeat_timestamp_seconds`, the node's last heartbeat,
durably and in the same batch as its figures.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any

import msgspec
import numpy as np

from hakon.errors import InvalidRequest
from hakon.ingest.hakongo import validation_error
from hakon.ingest.limits import IngestLimits
from hakon.ingest.series import SeriesRegistry, check_times
from hakon.store.interface import SampleBatch

_NAN = math.nan
Gauge = Annotated[float, msgspec.Meta(ge=0)]


class Network(msgspec.Struct, gc=False, omit_defaults=True):
    rx_bytes: Annotated[float, msgspec.Meta(ge=0, description="Bytes received (counter).")] = _NAN
    tx_bytes: Annotated[float, msgspec.Meta(ge=0, description="Bytes sent (counter).")] = _NAN


class ContainerUsage(msgspec.Struct, gc=False, omit_defaults=True):
    name: Annotated[str, msgspec.Meta(min_length=1, description="Container name.")]
    cpu_usage: Annotated[float, msgspec.Meta(ge=0, description="CPU in percent.")] = _NAN
    memory_usage: Annotated[float, msgspec.Meta(ge=0, description="Memory in MB.")] = _NAN


class NodeMetrics(msgspec.Struct, gc=False, omit_defaults=True):
    timestamp: Annotated[datetime, msgspec.Meta(tz=True, description="When measured (RFC 3339).")]
    cpu_usage: Annotated[float, msgspec.Meta(ge=0, le=100_000, description="CPU in percent.")] = (
        _NAN
    )
    memory_usage: Annotated[float, msgspec.Meta(ge=0, description="Memory in use, GB.")] = _NAN
    memory_total: Annotated[float, msgspec.Meta(ge=0, description="Memory in total, GB.")] = _NAN
    disk_usage: Annotated[float, msgspec.Meta(ge=0, description="Disk in use, GB.")] = _NAN
    disk_total: Annotated[float, msgspec.Meta(ge=0, description="Disk in total, GB.")] = _NAN
    network: Network | None = None
    containers: list[ContainerUsage] = []


# field -> series name, for the node and its containers
NODE_SERIES = {
    "cpu_usage": "hakon_edge_cpu_usage_percent",
    "memory_usage": "hakon_edge_memory_usage_gigabytes",
    "memory_total": "hakon_edge_memory_total_gigabytes",
    "disk_usage": "hakon_edge_disk_usage_gigabytes",
    "disk_total": "hakon_edge_disk_total_gigabytes",
    "network.rx_bytes": "hakon_edge_network_rx_bytes_total",
    "network.tx_bytes": "hakon_edge_network_tx_bytes_total",
}
HEARTBEAT_SERIES = "hakon_edge_heartbeat_timestamp_seconds"
CONTAINER_SERIES = {
    "cpu_usage": "hakon_edge_container_cpu_usage_percent",
    "memory_usage": "hakon_edge_container_memory_usage_megabytes",
}


class EdgeDecoder:
    def __init__(self, limits: IngestLimits) -> None:
        self.limits = limits
        self.registry = SeriesRegistry(limits)
        self._decoder = msgspec.json.Decoder(NodeMetrics)

    def decode(self, node_id: str, body: bytes) -> tuple[datetime, SampleBatch]:
        try:
            report = self._decoder.decode(body)
        except (msgspec.MsgspecError, RecursionError) as exc:
            raise validation_error(exc) from None
        if not node_id:
            raise InvalidRequest("node_id must not be empty", field="node_id")
        ts_ms = int(report.timestamp.timestamp() * 1000)
        check_times(np.array([ts_ms]), self.limits, "timestamp")
        network = report.network or Network()
        figures: list[tuple[Any, str, float]] = [
            (("node", node_id, field), name, value)
            for (field, name), value in zip(
                NODE_SERIES.items(),
                (
                    report.cpu_usage,
                    report.memory_usage,
                    report.memory_total,
                    report.disk_usage,
                    report.disk_total,
                    network.rx_bytes,
                    network.tx_bytes,
                ),
                strict=True,
            )
        ]
        figures.append((("node", node_id, "heartbeat"), HEARTBEAT_SERIES, ts_ms / 1000))
        ids: list[int] = []
        values: list[float] = []
        base = {"node_id": node_id}
        for key, name, value in figures:
            if value == value:  # not NaN: sent
                ids.append(self._id(key, {**base, "__name__": name}, "node_id"))
                values.append(value)
        seen: set[str] = set()
        for i, c in enumerate(report.containers):
            if c.name in seen:
                raise InvalidRequest(
                    f"containers[{i}].name: container {c.name!r} appears twice",
                    field=f"containers[{i}].name",
                )
            seen.add(c.name)
            for field, name in CONTAINER_SERIES.items():
                value = getattr(c, field)
                if value == value:
                    labels = {**base, "container": c.name, "__name__": name}
                    ids.append(self._id(("c", node_id, c.name, field), labels, f"containers[{i}]"))
                    values.append(value)
        self.limits.check_sample_count(len(values))
        batch = self.registry.batch(
            np.array(ids, np.int64), np.full(len(ids), ts_ms, np.int64), np.array(values)
        )
        return report.timestamp, batch

    def _id(self, key: Any, labels: dict[str, str], where: str) -> int:
        sid = self.registry.ids.get(key)
        if sid is None:
            sid = self.registry.register(labels, where, key)
        return sid
