"""`/api/v1/alert-rules`: alert rules in seed 002's shape, evaluated beside rule files."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from hakon.api.auth import require, runtime_of
from hakon.timefmt import rfc3339

router = APIRouter(prefix="/api/v1/alert-rules", tags=["alerting"])
read = [Depends(require("alerts:read"))]
write = [Depends(require("alerts:write"))]
NAME_TAKEN: dict[int | str, Any] = {409: {"description": "Another rule has that name."}}


class AlertRuleIn(BaseModel):
    name: str = Field(min_length=1, max_length=200, description="The alert name.")
    description: str = Field("", max_length=4096)
    expression: str = Field(min_length=1, max_length=16384, description="PromQL.")
    duration: str = Field("0s", max_length=32, description="How long before firing (`for`).")
    severity: str = Field("", max_length=64, description="Becomes the `severity` label.")
    labels: dict[str, str] = Field(
        default_factory=dict, description="Label name -> value (templates allowed)."
    )
    annotations: dict[str, str] = Field(default_factory=dict)
    group: str = Field("api", min_length=1, max_length=200)
    interval: str = Field("1m", max_length=32, description="The group's evaluation interval.")


class AlertRulePatch(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=4096)
    expression: str | None = Field(None, min_length=1, max_length=16384)
    duration: str | None = Field(None, max_length=32)
    severity: str | None = Field(None, max_length=64)
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    group: str | None = Field(None, min_length=1, max_length=200)
    interval: str | None = Field(None, max_length=32)


class AlertRuleOut(AlertRuleIn):
    id: str
    state: str = Field(description="inactive, pending or firing.")
    created_at: str
    updated_at: str


class AlertRuleList(BaseModel):
    rules: list[AlertRuleOut]
    total: int
    page: int
    per_page: int


def _out(request: Request, rule: dict[str, Any]) -> dict[str, Any]:
    states = {
        a.state
        for r, a in runtime_of(request).rules.alerts()
        if r.name == rule["name"] and a.state != "inactive"
    }
    state = "firing" if "firing" in states else "pending" if states else "inactive"
    return {
        **{k: v for k, v in rule.items() if k not in ("created_ms", "updated_ms")},
        "state": state,
        "created_at": rfc3339(rule["created_ms"]),
        "updated_at": rfc3339(rule["updated_ms"]),
    }


async def _changed(request: Request) -> None:
    await asyncio.to_thread(runtime_of(request).rules.load)


@router.post("", response_model=AlertRuleOut, status_code=201, dependencies=write,
             responses=NAME_TAKEN,
             summary="Create an alert rule (the expression is checked)")  # fmt: skip
async def create(request: Request, body: AlertRuleIn) -> Any:
    rules = runtime_of(request).rules.api_rules
    assert rules is not None
    rule = await asyncio.to_thread(rules.create, body.model_dump())
    await _changed(request)
    return _out(request, rule)


@router.get("", response_model=AlertRuleList, dependencies=read, summary="List alert rules")
async def list_rules(
    request: Request, page: int = Query(1, ge=1), limit: int = Query(20, ge=1, le=100)
) -> Any:
    rules = runtime_of(request).rules.api_rules
    assert rules is not None
    everything = await asyncio.to_thread(rules.all)
    start = (page - 1) * limit
    shown = [_out(request, r) for r in everything[start : start + limit]]
    return {"rules": shown, "total": len(everything), "page": page, "per_page": limit}


@router.get("/{rule_id}", response_model=AlertRuleOut, dependencies=read, summary="One rule")
async def get(request: Request, rule_id: str) -> Any:
    rules = runtime_of(request).rules.api_rules
    assert rules is not None
    return _out(request, await asyncio.to_thread(rules.get, rule_id))


@router.put("/{rule_id}", response_model=AlertRuleOut, dependencies=write,
            responses=NAME_TAKEN,
            summary="Replace an alert rule")  # fmt: skip
async def replace(request: Request, rule_id: str, body: AlertRuleIn) -> Any:
    rules = runtime_of(request).rules.api_rules
    assert rules is not None
    rule = await asyncio.to_thread(rules.update, rule_id, body.model_dump())
    await _changed(request)
    return _out(request, rule)


@router.patch("/{rule_id}", response_model=AlertRuleOut, dependencies=write,
              responses=NAME_TAKEN,
              summary="Change some fields of an alert rule")  # fmt: skip
async def update(request: Request, rule_id: str, body: AlertRulePatch) -> Any:
    rules = runtime_of(request).rules.api_rules
    assert rules is not None
    rule = await asyncio.to_thread(rules.update, rule_id, body.model_dump(exclude_none=True))
    await _changed(request)
    return _out(request, rule)


@router.delete("/{rule_id}", status_code=204, dependencies=write, summary="Delete a rule")
async def delete(request: Request, rule_id: str) -> Response:
    rules = runtime_of(request).rules.api_rules
    assert rules is not None
    await asyncio.to_thread(rules.delete, rule_id)
    await _changed(request)
    return Response(status_code=204)
