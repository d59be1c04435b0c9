"""Liveness, readiness and self-metrics: the routes an orchestrator polls."""

from __future__ import annotations

import time
from typing import Literal

from fastapi import APIRouter, Depends, Request, Response, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel

from hakon import __version__
from hakon.api.auth import RequireScope, bearer, runtime_of
from hakon.api.models import UtcTimestamp, utc_from_unix

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["healthy"]
    version: str
    timestamp: UtcTimestamp


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]


@router.get("/health", response_model=Health, summary="Liveness")
@router.get("/api/v1/health", response_model=Health, summary="Liveness")
async def health() -> Health:
    return Health(status="healthy", version=__version__, timestamp=utc_from_unix(time.time()))


@router.get(
    "/ready",
    response_model=Readiness,
    summary="Readiness: 200 once storage is open, 503 before",
    responses={503: {"model": Readiness, "description": "Storage is not open yet."}},
)
@router.get(
    "/api/v1/ready",
    response_model=Readiness,
    summary="Readiness: 200 once storage is open, 503 before",
    responses={503: {"model": Readiness, "description": "Storage is not open yet."}},
)
async def ready(request: Request) -> Response:
    if runtime_of(request).ready:
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "not_ready"}, status_code=503)


_metrics_scope = RequireScope("metrics:read")


async def metrics_auth(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Security(bearer, scopes=["metrics:read"]),
) -> None:
    """`/metrics` needs a `metrics:read` token only when `metrics_require_auth` is set."""
    if runtime_of(request).settings.metrics_require_auth:
        await _metrics_scope.check(request, credentials)


@router.get(
    "/metrics",
    summary="Hakon's own metrics in the Prometheus text format",
    description="Open unless `metrics_require_auth` is set.",
    response_class=Response,
    openapi_extra={"security": [{}, {"bearer": ["metrics:read"]}]},
    dependencies=[Depends(metrics_auth)],
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus exposition"}},
)
async def metrics(request: Request) -> Response:
    telemetry = runtime_of(request).telemetry
    return Response(telemetry.exposition(), media_type=telemetry.content_type)
