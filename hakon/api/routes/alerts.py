"""`GET /api/v1/alerts`: active alerts in seed 002's shape, filtered and paginated."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from hakon.alerting.manager import fingerprint, iso_time
from hakon.api.auth import require, runtime_of

router = APIRouter(tags=["alerting"], dependencies=[Depends(require("alerts:read"))])


class AlertView(BaseModel):
    id: str = Field(description="Stable fingerprint of the alert's label set.")
    name: str
    state: Literal["pending", "firing"]
    severity: str
    description: str
    cluster: str
    namespace: str
    started_at: str = Field(description="When the alert became active (RFC 3339).")
    labels: dict[str, str]
    annotations: dict[str, str]


class AlertList(BaseModel):
    alerts: list[AlertView]
    total: int
    page: int
    per_page: int


@router.get("/api/v1/alerts", response_model=AlertList, summary="Active alerts")
async def list_alerts(
    request: Request,
    state: Literal["pending", "firing"] | None = Query(None),
    severity: str | None = Query(None, max_length=256),
    cluster: str | None = Query(None, max_length=256, description="`cluster` or `cluster_id`."),
    page: int = Query(1, ge=1),
    limit: int = Query(20, ge=1, le=100),
) -> AlertList:
    views = []
    for _, alert in runtime_of(request).rules.alerts():
        if alert.state == "inactive" or (state and alert.state != state):
            continue
        labels = dict(alert.labels)
        alert_cluster = labels.get("cluster") or labels.get("cluster_id", "")
        if severity and labels.get("severity") != severity:
            continue
        if cluster and alert_cluster != cluster:
            continue
        views.append(
            AlertView(
                id=fingerprint(alert.labels),
                name=labels.get("alertname", ""),
                state=alert.state,  # type: ignore[arg-type]
                severity=labels.get("severity", ""),
                description=alert.annotations.get("description")
                or alert.annotations.get("summary", ""),
                cluster=alert_cluster,
                namespace=labels.get("namespace", ""),
                started_at=iso_time(alert.active_at_ms),
                labels=labels,
                annotations=alert.annotations,
            )
        )
    views.sort(key=lambda v: (v.started_at, v.id))
    start = (page - 1) * limit
    return AlertList(
        alerts=views[start : start + limit], total=len(views), page=page, per_page=limit
    )
