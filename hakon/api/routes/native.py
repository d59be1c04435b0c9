"""The seeds' native metrics reads: node (seed 001), fleet (seed 001), cluster (seed 002).

Buckets aligned to the resolution, empty buckets omitted, an `aggregate`
parameter (avg by default); `hakon.query.views` says what each metric is.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from hakon.api.auth import confine, require, runtime_of
from hakon.auth.tokens import TokenClaims
from hakon.errors import InvalidRequest
from hakon.query import views
from hakon.query.native import AGGREGATES, parse_aggregate
from hakon.query.timeparse import parse_duration_ms, parse_time_ms

router = APIRouter(tags=["metrics"])
reader = require("metrics:read")
# A node's or cluster's own agent token may read that node's or cluster's view.
own_reader = require("metrics:read", bound_ok=True)

TIMEFRAME = Query("1h", description="How far back from now: 1h, 24h, 7d, 30d, ...")
RESOLUTION = Query("5m", description="Bucket width, aligned to it since the epoch: 1m, 5m, 1h, ...")
METRICS_HELP = (
    f"Comma-separated: {', '.join(views.CLUSTER_METRICS)}. "
    f"Default: {', '.join(views.DEFAULT_CLUSTER_METRICS)}."
)
AGGREGATE = Query("avg", description="Per bucket: " + ", ".join(AGGREGATES) + ".")


class Point(BaseModel):
    timestamp: str = Field(description="Bucket start, RFC 3339.")
    value: float | None


class NodeMetricsView(BaseModel):
    node_id: str
    node_name: str
    timeframe: str
    resolution: str
    aggregate: str
    metrics: dict[str, list[Point]] = Field(description="Empty buckets are omitted.")


class NodeSummary(BaseModel):
    name: str
    model_config = {"extra": "allow"}


class FleetMetricsView(BaseModel):
    timeframe: str
    resolution: str
    aggregate: str
    nodes_count: int
    aggregated: dict[str, list[Point]]
    nodes: dict[str, NodeSummary]


class ClusterMetric(BaseModel):
    metric: str
    values: list[tuple[str, str]] = Field(description="[RFC 3339 bucket start, value] pairs.")


class ClusterMetricsView(BaseModel):
    cluster_id: str
    start: str
    end: str
    step: str
    aggregate: str
    metrics: dict[str, ClusterMetric]


def _window(timeframe: str, resolution: str) -> tuple[int, int, int]:
    span = parse_duration_ms(timeframe, "timeframe")
    step = parse_duration_ms(resolution, "resolution")
    if span <= 0:
        raise InvalidRequest("timeframe must be positive", field="timeframe")
    end = int(time.time() * 1000)
    return end - span, end, step


async def _timeframe_view(
    request: Request, view: Any, timeframe: str, resolution: str, aggregate: str, *key: str
) -> JSONResponse:
    """Seed 001's views: the last `timeframe`, in `resolution` buckets."""
    agg = parse_aggregate(aggregate)
    start, end, step = _window(timeframe, resolution)
    runtime = runtime_of(request)
    body = await _run(view, runtime.store, *key, start, end, step, agg)
    # Nodes are named as registered; an unregistered node's name is its id.
    if "node_id" in body:
        body["node_name"] = runtime.registries.node_name(body["node_id"])
    for node_id, summary in body.get("nodes", {}).items():
        summary["name"] = runtime.registries.node_name(node_id)
    header = {"timeframe": timeframe, "resolution": resolution, "aggregate": agg}
    return JSONResponse(header | body)


async def _run(fn: Any, *args: Any) -> dict[str, Any]:
    result: dict[str, Any] = await asyncio.to_thread(fn, *args)
    result.pop("source", None)
    return result


@router.get(
    "/api/v1/metrics/nodes/{node_id}",
    response_model=NodeMetricsView,
    summary="One node's metrics over a timeframe, bucketed",
)
async def node_metrics(
    request: Request,
    node_id: str = Path(min_length=1, max_length=256),
    timeframe: str = TIMEFRAME,
    resolution: str = RESOLUTION,
    aggregate: str = AGGREGATE,
    claims: TokenClaims = Depends(own_reader),
) -> JSONResponse:
    confine(claims, node_id=node_id)
    return await _timeframe_view(request, views.node_metrics, timeframe, resolution, aggregate,
                                 node_id)  # fmt: skip


@router.get(
    "/api/v1/metrics",
    dependencies=[Depends(reader)],
    response_model=FleetMetricsView,
    summary="Metrics of all edge nodes: aggregated per bucket and per node",
)
async def fleet_metrics(
    request: Request,
    timeframe: str = TIMEFRAME,
    resolution: str = RESOLUTION,
    aggregate: str = AGGREGATE,
) -> JSONResponse:
    return await _timeframe_view(request, views.fleet_metrics, timeframe, resolution, aggregate)


@router.get(
    "/api/v1/clusters/{cluster_id}/metrics",
    response_model=ClusterMetricsView,
    summary="A cluster's metrics from its HakonGo node payloads, bucketed",
)
async def cluster_metrics(
    request: Request,
    cluster_id: str = Path(min_length=1, max_length=256),
    start: str | None = Query(None, description="RFC 3339 or Unix seconds; default end - 1h."),
    end: str | None = Query(None, description="RFC 3339 or Unix seconds; default now."),
    step: str = Query("5m", description="Bucket width: 1m, 5m, 1h, ..."),
    metrics: str | None = Query(None, description=METRICS_HELP),
    aggregate: str = AGGREGATE,
    claims: TokenClaims = Depends(own_reader),
) -> JSONResponse:
    confine(claims, cluster_id=cluster_id)
    agg = parse_aggregate(aggregate)
    end_ms = parse_time_ms(end, "end") if end else int(time.time() * 1000)
    start_ms = parse_time_ms(start, "start") if start else end_ms - 3_600_000
    step_ms = parse_duration_ms(step, "step")
    names = views.parse_metric_names(metrics, views.CLUSTER_METRICS, views.DEFAULT_CLUSTER_METRICS)
    store = runtime_of(request).store
    body = await _run(
        views.cluster_metrics, store, cluster_id, start_ms, end_ms, step_ms, names, agg
    )
    header = {
        "cluster_id": cluster_id,
        "start": views.iso(start_ms),
        "end": views.iso(end_ms),
        "step": step,
        "aggregate": agg,
    }
    return JSONResponse(header | body)
