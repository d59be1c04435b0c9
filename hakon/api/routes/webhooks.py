"""`/api/v1/webhooks`: seed 002's webhook registrations, their deliveries, a test send."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from hakon.alerting.notifier import Notifier
from hakon.api.auth import require, runtime_of

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])
read = [Depends(require("alerts:read"))]
write = [Depends(require("alerts:write"))]


class WebhookIn(BaseModel):
    url: str = Field(min_length=1, max_length=2048, description="http or https URL.")
    events: list[str] = Field(
        min_length=1, description="Event types, e.g. alert.firing, alert.resolved."
    )
    secret: str = Field("", max_length=512, description="HMAC key; never returned.")
    active: bool = True
    format: Literal["hakon", "alertmanager"] = Field(
        "hakon", description="hakon: seed 004's envelope; alertmanager: bare AM payloads."
    )


class WebhookPatch(BaseModel):
    url: str | None = Field(None, min_length=1, max_length=2048)
    events: list[str] | None = Field(None, min_length=1)
    secret: str | None = Field(None, max_length=512)
    active: bool | None = None
    format: Literal["hakon", "alertmanager"] | None = None


class WebhookOut(BaseModel):
    id: str
    url: str
    events: list[str]
    active: bool
    format: str
    has_secret: bool
    created_at: str


class WebhookList(BaseModel):
    webhooks: list[WebhookOut]
    total: int
    page: int
    per_page: int


class Delivery(BaseModel):
    id: str
    event: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    response_status: int | None
    error: str | None
    latency_ms: float | None
    created_at: str | None
    finished_at: str | None
    next_attempt_at: str | None


class DeliveryList(BaseModel):
    deliveries: list[Delivery]


class TestResult(BaseModel):
    queued: int


def _notifier(request: Request) -> Notifier:
    return runtime_of(request).notifier


@router.post("", response_model=WebhookOut, status_code=201, dependencies=write,
             summary="Register a webhook")  # fmt: skip
async def create(request: Request, body: WebhookIn) -> Any:
    hook = await asyncio.to_thread(
        _notifier(request).create, body.url, body.events, body.secret, body.active, body.format
    )
    return hook.public()


@router.get("", response_model=WebhookList, dependencies=read, summary="List webhooks")
async def list_hooks(
    request: Request, page: int = Query(1, ge=1), limit: int = Query(20, ge=1, le=100)
) -> Any:
    hooks = await asyncio.to_thread(_notifier(request).all)
    start = (page - 1) * limit
    shown = [h.public() for h in hooks[start : start + limit]]
    return {"webhooks": shown, "total": len(hooks), "page": page, "per_page": limit}


@router.get("/{hook_id}", response_model=WebhookOut, dependencies=read, summary="One webhook")
async def get(request: Request, hook_id: str) -> Any:
    return (await asyncio.to_thread(_notifier(request).get, hook_id)).public()


@router.patch("/{hook_id}", response_model=WebhookOut, dependencies=write,
              summary="Change a webhook")  # fmt: skip
async def update(request: Request, hook_id: str, body: WebhookPatch) -> Any:
    changes = body.model_dump(exclude_none=True)
    return (await asyncio.to_thread(_notifier(request).update, hook_id, changes)).public()


@router.delete("/{hook_id}", status_code=204, dependencies=write, summary="Remove a webhook")
async def delete(request: Request, hook_id: str) -> Response:
    await asyncio.to_thread(_notifier(request).delete, hook_id)
    return Response(status_code=204)


@router.get("/{hook_id}/deliveries", response_model=DeliveryList, dependencies=read,
            summary="Recent delivery attempts, newest first")  # fmt: skip
async def deliveries(request: Request, hook_id: str, limit: int = Query(50, ge=1, le=500)) -> Any:
    return {"deliveries": await asyncio.to_thread(_notifier(request).deliveries, hook_id, limit)}


@router.post("/{hook_id}/test", response_model=TestResult, status_code=202, dependencies=write,
             summary="Send a webhook.test event to this webhook")  # fmt: skip
async def test(request: Request, hook_id: str) -> Any:
    notifier = _notifier(request)
    await asyncio.to_thread(notifier.get, hook_id)
    queued = await asyncio.to_thread(
        notifier.publish, "webhook.test", {"message": "a test from Hakon"}, hook_id
    )
    return {"queued": queued}
