"""What each native metrics endpoint shows, declared as tables of series.

Seed 001's node and fleet views read the edge series (`hakon_edge_*`, label
`node_id`); seed 002's cluster view reads the HakonGo node series
(`hakon_node_*`, label `cluster_id`). Each native metric is a gauge, a counter
shown as a per-second rate, a sum over series, or a ratio of two sums; the
tables below are the single source docs/query.md describes.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from hakon.errors import InvalidRequest
from hakon.query.native import Buckets, label_of, metric_of, read_buckets, require_series
from hakon.query.render import format_value
from hakon.store.interface import Reader
from hakon.store.labels import METRIC_NAME, Matcher
from hakon.timefmt import rfc3339


@dataclass(frozen=True)
class NativeMetric:
    """`numerator` summed over series (per-second rates for counters), over `denominator`."""

    numerator: tuple[str, ...]
    description: str
    denominator: tuple[str, ...] = ()
    scale: float = 1.0
    counter: bool = False


NODE_METRICS = {
    "cpu_usage": NativeMetric(("hakon_edge_cpu_usage_percent",), "CPU in use, percent."),
    "memory_usage": NativeMetric(("hakon_edge_memory_usage_gigabytes",), "Memory in use, GB."),
    "memory_total": NativeMetric(("hakon_edge_memory_total_gigabytes",), "Memory in total, GB."),
    "disk_usage": NativeMetric(("hakon_edge_disk_usage_gigabytes",), "Disk in use, GB."),
    "disk_total": NativeMetric(("hakon_edge_disk_total_gigabytes",), "Disk in total, GB."),
    "network_rx_rate": NativeMetric(
        ("hakon_edge_network_rx_bytes_total",), "Bytes received per second.", counter=True
    ),
    "network_tx_rate": NativeMetric(
        ("hakon_edge_network_tx_bytes_total",), "Bytes sent per second.", counter=True
    ),
}
FLEET_METRICS = ("cpu_usage", "memory_usage")

CLUSTER_METRICS = {
    "cpu_usage": NativeMetric(
        ("hakon_node_cpu_usage_cores",),
        "CPU in use over CPU capacity of the cluster's nodes, percent.",
        ("hakon_node_cpu_capacity_cores",),
        100.0,
    ),
    "memory_usage": NativeMetric(
        ("hakon_node_memory_working_set_bytes",),
        "Working-set memory over memory capacity of the cluster's nodes, percent.",
        ("hakon_node_memory_capacity_bytes",),
        100.0,
    ),
    "network_io": NativeMetric(
        ("hakon_node_network_rx_bytes_total", "hakon_node_network_tx_bytes_total"),
        "Bytes received plus sent per second by the cluster's nodes.",
        counter=True,
    ),
    "cpu_usage_cores": NativeMetric(("hakon_node_cpu_usage_cores",), "CPU in use, cores."),
    "memory_usage_bytes": NativeMetric(
        ("hakon_node_memory_working_set_bytes",), "Working-set memory, bytes."
    ),
    "pods_running": NativeMetric(("hakon_node_pods_running",), "Pods running on the nodes."),
    "nodes_ready": NativeMetric(("hakon_node_ready",), "Nodes whose Ready condition is true."),
}
DEFAULT_CLUSTER_METRICS = ("cpu_usage", "memory_usage", "network_io")


iso = rfc3339  # the native views' bucket times


def iso_many(ms: np.ndarray) -> list[str]:
    """`iso` of many bucket starts at once."""
    stamps = np.asarray(ms, dtype=np.int64).astype("datetime64[ms]")
    text = np.datetime_as_string(stamps, unit="s")
    return [t + "Z" for t in text.tolist()]


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _name_matcher(metrics: list[NativeMetric]) -> Matcher:
    names = sorted({n for m in metrics for n in (*m.numerator, *m.denominator)})
    return Matcher(METRIC_NAME, "=~", "|".join(names))


def _rows_named(buckets: Buckets, names: tuple[str, ...]) -> np.ndarray:
    wanted = set(names)
    return np.array([i for i, ls in enumerate(buckets.labels) if metric_of(ls) in wanted], int)


def _series_values(
    buckets: Buckets, metric: NativeMetric, names: tuple[str, ...], aggregate: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per series of `names`: the bucket values and where they exist."""
    rows = _rows_named(buckets, names)
    if metric.counter:
        values, present = buckets.rate()
    else:
        values, present = buckets.value(aggregate), buckets.present
    return values[rows], present[rows]


def _combine(
    buckets: Buckets, metric: NativeMetric, aggregate: str
) -> tuple[np.ndarray, np.ndarray]:
    """The metric per bucket: sums over series, then the ratio and scale."""
    values, present = _series_values(buckets, metric, metric.numerator, aggregate)
    total = np.where(present, values, 0.0).sum(axis=0)
    has = present.any(axis=0)
    if metric.denominator:
        d_values, d_present = _series_values(buckets, metric, metric.denominator, aggregate)
        denominator = np.where(d_present, d_values, 0.0).sum(axis=0)
        has &= d_present.any(axis=0) & (denominator != 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            total = total / denominator
    return total * metric.scale, np.asarray(has)


def _points(starts: np.ndarray, values: np.ndarray, has: np.ndarray) -> list[dict[str, Any]]:
    keep = np.flatnonzero(has)
    return [
        {"timestamp": t, "value": v if math.isfinite(v) else None}
        for t, v in zip(iso_many(starts[keep]), values[keep].tolist(), strict=True)
    ]


def node_metrics(
    reader: Reader, node_id: str, start: int, end: int, resolution: int, aggregate: str
) -> dict[str, Any]:
    """Seed 001's `GET /metrics/nodes/{node-id}`."""
    matchers = [Matcher("node_id", "=", node_id), _name_matcher(list(NODE_METRICS.values()))]
    buckets = read_buckets(reader, matchers, start, end, resolution, want_p95=aggregate == "p95")
    require_series(buckets, f"node {node_id!r}")
    metrics = {}
    for name, metric in NODE_METRICS.items():
        values, has = _combine(buckets, metric, aggregate)
        if has.any():
            metrics[name] = _points(buckets.starts, values, has)
    return {"node_id": node_id, "node_name": node_id, "metrics": metrics, "source": buckets.source}


def fleet_metrics(
    reader: Reader, start: int, end: int, resolution: int, aggregate: str
) -> dict[str, Any]:
    """Seed 001's `GET /metrics`: per bucket across nodes, and per node over the timeframe."""
    wanted = [NODE_METRICS[m] for m in FLEET_METRICS]
    matchers = [_name_matcher(wanted), Matcher("node_id", "!=", "")]
    buckets = read_buckets(reader, matchers, start, end, resolution, want_p95=aggregate == "p95")
    nodes = sorted({label_of(ls, "node_id") for ls in buckets.labels})
    aggregated: dict[str, list[dict[str, Any]]] = {}
    per_node: dict[str, dict[str, Any]] = {n: {"name": n} for n in nodes}
    for name in FLEET_METRICS:
        metric = NODE_METRICS[name]
        values, present = _series_values(buckets, metric, metric.numerator, aggregate)
        rows = _rows_named(buckets, metric.numerator)
        # Across nodes: min/max/sum/count keep their sense; avg, last and p95 are averaged.
        masked = np.where(present, values, np.nan)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a bucket no node reported
            if aggregate in ("min", "max"):
                across = (np.nanmin if aggregate == "min" else np.nanmax)(masked, axis=0)
            elif aggregate in ("sum", "count"):
                across = np.nansum(masked, axis=0)
            else:
                across = np.nanmean(masked, axis=0)
            has = np.asarray(present.any(axis=0))
            aggregated[f"{name}_{aggregate}"] = _points(buckets.starts, across, has)
            for k, r in enumerate(rows.tolist()):
                node = label_of(buckets.labels[r], "node_id")
                per_node[node][f"{name}_{aggregate}"] = _overall(
                    buckets, r, values[k], present[k], aggregate
                )
    return {"nodes_count": len(nodes), "aggregated": aggregated, "nodes": per_node}


def _overall(
    buckets: Buckets, row: int, values: np.ndarray, present: np.ndarray, aggregate: str
) -> float | None:
    """One node's aggregate over the whole timeframe, from its buckets (exact but for p95)."""
    if not present.any():
        return None
    count = buckets.count[row]
    if aggregate == "avg":
        return _finite(float(buckets.sum[row].sum() / count.sum()))
    if aggregate == "min":
        return _finite(float(np.nanmin(buckets.min[row][present])))
    if aggregate == "max":
        return _finite(float(np.nanmax(buckets.max[row][present])))
    if aggregate == "sum":
        return _finite(float(buckets.sum[row].sum()))
    if aggregate == "count":
        return float(count.sum())
    if aggregate == "last":
        return _finite(float(buckets.last[row][np.flatnonzero(present)[-1]]))
    return _finite(float(np.nanmax(values[present])))  # p95: the worst bucket's p95


def parse_metric_names(
    text: str | None, table: dict[str, NativeMetric], default: tuple[str, ...]
) -> list[str]:
    if not text:
        return list(default)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in table]
    if unknown:
        raise InvalidRequest(
            f"unknown metric {unknown[0]!r}; known: {', '.join(table)}", field="metrics"
        )
    return names


def cluster_metrics(
    reader: Reader,
    cluster_id: str,
    start: int,
    end: int,
    step: int,
    names: list[str],
    aggregate: str,
) -> dict[str, Any]:
    """Seed 002's `GET /clusters/{id}/metrics`, from the cluster's HakonGo node series."""
    wanted = [CLUSTER_METRICS[n] for n in names]
    matchers = [Matcher("cluster_id", "=", cluster_id), _name_matcher(wanted)]
    buckets = read_buckets(reader, matchers, start, end, step, want_p95=aggregate == "p95")
    require_series(buckets, f"cluster {cluster_id!r}")
    out: dict[str, Any] = {}
    for name in names:
        values, has = _combine(buckets, CLUSTER_METRICS[name], aggregate)
        out[name] = {
            "metric": name,
            "values": [
                [t, format_value(v)]
                for t, v in zip(iso_many(buckets.starts[has]), values[has].tolist(), strict=True)
            ],
        }
    return {"metrics": out, "source": buckets.source}


def markdown_table(table: dict[str, NativeMetric], summed: bool) -> str:
    """The metric table docs/query.md shows (a test keeps the two in step).

    `summed`: the view adds its series up (a cluster's nodes), rather than
    showing one series (a node's own).
    """
    lines = ["| metric | computed from | meaning |", "|---|---|---|"]
    for name, m in table.items():
        source = " + ".join(f"`{n}`" for n in m.numerator)
        if m.counter:
            source = f"per-second rate of {source}"
        if m.denominator:
            source = f"{m.scale:g} * Σ {source} / Σ " + " + ".join(f"`{n}`" for n in m.denominator)
        elif summed:
            source = f"Σ {source}"
        lines.append(f"| `{name}` | {source} | {m.description} |")
    return "\n".join(lines) + "\n"
