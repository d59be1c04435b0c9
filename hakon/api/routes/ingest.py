"""Ingest routes: HTTP framing around `hakon.ingest`.

Each route checks the media type, reads the body with a bound (never more
than the limit into memory), undoes its Content-Encoding, decodes it in a
worker thread (so a large body does not stall the event loop), checks the
token's binding against what the body says, and returns only once the batch
is durable. Nothing is appended unless the whole request decoded cleanly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field

from hakon.api.auth import binding, confine, require, runtime_of
from hakon.auth.tokens import TokenClaims
from hakon.errors import (
    Forbidden,
    InvalidRequest,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
)
from hakon.ingest.collectors import COLLECTORS, Collector
from hakon.ingest.service import Ingest

router = APIRouter(tags=["ingest"])
# Every route here checks the token's binding itself.
write_scope = require("metrics:write", bucket="ingest", bound_ok=True)

JSON_TYPES = ("application/json",)
TEXT_TYPES = ("", "text/plain", "application/octet-stream", "application/x-www-form-urlencoded")
OPENMETRICS = "application/openmetrics-text"


class IngestResult(BaseModel):
    accepted_samples: int = Field(description="Samples written, durable when this is returned.")


class NodeMetricsResult(BaseModel):
    success: bool
    recorded_at: datetime


async def ingest_slot(request: Request) -> AsyncIterator[Ingest]:
    """The ingest service, holding a concurrent-request slot for the request's duration."""
    ingest = runtime_of(request).ingest
    with ingest.request():
        yield ingest


def _media_type(request: Request, allowed: tuple[str, ...]) -> str:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media not in allowed:
        raise UnsupportedMediaType(
            f"Content-Type {media or '(none)'!r} is not accepted here; send "
            + " or ".join(a for a in allowed if a),
            details={"field": "Content-Type", "supported": [a for a in allowed if a]},
        )
    return media


async def _read_body(request: Request, ingest: Ingest) -> bytes:
    limit = ingest.limits.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"body of {declared} bytes exceeds the limit of {limit} bytes",
            details={"limit_bytes": limit},
        )
    ingest.check_capacity()
    chunks: list[bytes] = []
    size = 0
    timeout = ingest.limits.body_timeout_s
    try:
        async with asyncio.timeout(timeout):  # a trickling sender holds a request slot
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(
                        f"body exceeds the limit of {limit} bytes", details={"limit_bytes": limit}
                    )
                chunks.append(chunk)
    except TimeoutError:
        raise RequestTimeout(
            f"the body did not arrive within {timeout:g} s ({size} bytes received)",
            details={"received_bytes": size, "timeout_seconds": timeout},
        ) from None
    return b"".join(chunks)


GZIP = ("gzip", "x-gzip", "deflate")


def _encoding(request: Request) -> str:
    return request.headers.get("content-encoding", "")


def _unbound(claims: TokenClaims, what: str) -> None:
    if claims.node_id or claims.cluster_id:
        bound = binding(claims)
        raise Forbidden(
            f"this token is bound to {bound} and may not write {what}",
            details={"node_id": claims.node_id, "cluster_id": claims.cluster_id},
        )


def _binary_body(media: str, description: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {media: {"schema": {"type": "string", "format": "binary"}}},
        }
    }


def _hakongo_route(collector: Collector) -> Callable[..., Awaitable[IngestResult]]:
    async def ingest_collector(
        request: Request,
        claims: TokenClaims = Depends(write_scope),
        ingest: Ingest = Depends(ingest_slot),
    ) -> IngestResult:
        _media_type(request, JSON_TYPES)
        raw = await _read_body(request, ingest)
        (cluster_id, context), batch = await ingest.decode(
            f"hakongo/{collector.path}", raw, _encoding(request), GZIP
        )
        confine(claims, cluster_id=cluster_id, action="write metrics of")
        await ingest.append(batch)
        registries = runtime_of(request).registries
        if not registries.clusters.seen(cluster_id, context):
            await asyncio.to_thread(registries.clusters.observe, cluster_id, context)
        return IngestResult(accepted_samples=len(batch))

    ingest_collector.__name__ = f"ingest_hakongo_{collector.path}"
    return ingest_collector


for _collector in COLLECTORS:
    _schema = f"{_collector.kind.name}Request"
    router.add_api_route(
        f"/api/v1/hakongo/{_collector.path}",
        _hakongo_route(_collector),
        methods=["POST"],
        response_model=IngestResult,
        summary=f"HakonGo {_collector.path}: {_collector.kind.name.lower()} metrics",
        description=f"{_collector.summary}. Series and labels: docs/ingest.md.",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{_schema}"}}
                },
            }
        },
    )


@router.post(
    "/api/v1/metrics/nodes/{node_id}",
    response_model=NodeMetricsResult,
    summary="Record an edge node's metrics (and its heartbeat)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/NodeMetrics"}}
            },
        }
    },
)
async def ingest_node_metrics(
    request: Request,
    node_id: str = Path(min_length=1, max_length=253),
    claims: TokenClaims = Depends(write_scope),
    ingest: Ingest = Depends(ingest_slot),
) -> NodeMetricsResult:
    confine(claims, node_id=node_id, action="write metrics of")
    _media_type(request, JSON_TYPES)
    raw = await _read_body(request, ingest)
    recorded_at, batch = await ingest.decode("edge", raw, _encoding(request), GZIP, node_id)
    await ingest.append(batch)
    runtime_of(request).registries.heartbeats.beat(node_id)  # when it reported, not measured
    return NodeMetricsResult(success=True, recorded_at=recorded_at)


@router.post(
    "/api/v1/write",
    status_code=204,
    response_class=Response,
    summary="Prometheus remote_write 1.0 (snappy-compressed protobuf WriteRequest)",
    openapi_extra=_binary_body("application/x-protobuf", "A snappy block-compressed WriteRequest."),
)
async def remote_write(
    request: Request,
    claims: TokenClaims = Depends(write_scope),
    ingest: Ingest = Depends(ingest_slot),
) -> Response:
    _unbound(claims, "remote_write series")
    _media_type(request, ("", "application/x-protobuf", "application/octet-stream"))
    encoding = request.headers.get("content-encoding", "snappy").strip().lower()
    if encoding != "snappy":
        raise UnsupportedMediaType(
            f"remote_write bodies must be snappy-compressed, not {encoding!r}",
            details={"field": "Content-Encoding", "supported": ["snappy"]},
        )
    raw = await _read_body(request, ingest)
    _, batch = await ingest.decode("remote_write", raw, "snappy", ("snappy",))
    await ingest.append(batch)
    return Response(status_code=204)


@router.post(
    "/api/v1/import/prometheus",
    status_code=204,
    response_class=Response,
    summary="Import the Prometheus text exposition format or OpenMetrics",
    openapi_extra=_binary_body("text/plain", "Prometheus text format 0.0.4 or OpenMetrics 1.0."),
)
async def import_prometheus(
    request: Request,
    timestamp: str | None = Query(
        None,
        description="Timestamp for lines without one: unix seconds (fractions allowed) "
        "or RFC 3339. Default: now.",
    ),
    claims: TokenClaims = Depends(write_scope),
    ingest: Ingest = Depends(ingest_slot),
) -> Response:
    _unbound(claims, "imported series")
    media = _media_type(request, (*TEXT_TYPES, OPENMETRICS))
    default_ts = _parse_timestamp(timestamp) if timestamp else int(time.time() * 1000)
    raw = await _read_body(request, ingest)
    _, batch = await ingest.decode(
        "exposition", raw, _encoding(request), GZIP, default_ts, media == OPENMETRICS
    )
    await ingest.append(batch)
    return Response(status_code=204)


def _parse_timestamp(text: str) -> int:
    try:
        return round(float(text) * 1000)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(
            f"timestamp {text[:40]!r} is neither unix seconds nor RFC 3339", field="timestamp"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return round(parsed.timestamp() * 1000)


async def _influx(
    request: Request, claims: TokenClaims, ingest: Ingest, precision: str, db: str
) -> Response:
    _unbound(claims, "Influx series")
    _media_type(request, TEXT_TYPES)
    raw = await _read_body(request, ingest)
    now_ms = int(time.time() * 1000)
    _, batch = await ingest.decode("influx", raw, _encoding(request), GZIP, precision, db, now_ms)
    await ingest.append(batch)
    return Response(status_code=204)


_INFLUX_BODY = _binary_body("text/plain", "InfluxDB line protocol, one point per line.")


@router.post(
    "/write",
    status_code=204,
    response_class=Response,
    summary="InfluxDB 1.x line protocol write",
    openapi_extra=_INFLUX_BODY,
)
async def influx_v1_write(
    request: Request,
    precision: str = Query("ns", description="n/ns, u/us, ms, s, m or h."),
    db: str = Query("", max_length=256, description="Added as label `db`."),
    claims: TokenClaims = Depends(write_scope),
    ingest: Ingest = Depends(ingest_slot),
) -> Response:
    return await _influx(request, claims, ingest, precision, db)


@router.post(
    "/api/v2/write",
    status_code=204,
    response_class=Response,
    summary="InfluxDB 2.x line protocol write",
    openapi_extra=_INFLUX_BODY,
)
async def influx_v2_write(
    request: Request,
    precision: str = Query("ns", description="ns, us, ms or s."),
    bucket: str = Query("", max_length=256, description="Added as label `db`."),
    org: str = Query("", max_length=256, description="Accepted and ignored."),
    claims: TokenClaims = Depends(write_scope),
    ingest: Ingest = Depends(ingest_slot),
) -> Response:
    return await _influx(request, claims, ingest, precision, bucket)


# POSTs answered by `hakon.api.fastpath` without FastAPI's per-request machinery: the
# busiest routes, whose endpoints take only (request, claims, ingest).
FAST_ROUTES = {
    "/api/v1/write": write_scope.checker,  # type: ignore[attr-defined]
    **{f"/api/v1/hakongo/{c.path}": write_scope.checker for c in COLLECTORS},  # type: ignore[attr-defined]
}
