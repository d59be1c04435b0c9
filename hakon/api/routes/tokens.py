"""`/api/v1/security/tokens`: mint, validate and revoke tokens (seed 001 shapes)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, field_validator

from hakon.api.auth import require, runtime_of
from hakon.api.models import StrictModel, UtcTimestamp, utc_from_unix
from hakon.auth.tokens import SCOPES, InvalidToken, TokenClaims
from hakon.config import format_duration, parse_duration
from hakon.errors import InvalidRequest

router = APIRouter(prefix="/api/v1/security/tokens", tags=["security"])

Scope = Literal[SCOPES]  # type: ignore[valid-type]
Identifier = Field(
    default=None, min_length=1, max_length=253, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
)
DEFAULT_SCOPES = ["metrics:write", "metrics:read"]


class TokenCreate(StrictModel):
    node_id: str | None = Identifier
    cluster_id: str | None = Identifier
    subject: str | None = Field(
        default=None, min_length=1, max_length=253, description="Defaults to the bound id."
    )
    scopes: list[Scope] | None = Field(  # type: ignore[valid-type]
        default=None,
        min_length=1,
        max_length=len(SCOPES),
        description="Defaults to metrics:write and metrics:read.",
    )
    expiration: str | None = Field(
        default=None, max_length=32, description="Lifetime such as 30m, 24h or 7d."
    )

    @field_validator("expiration")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None and parse_duration(value) <= 0:
            raise ValueError("expected a positive duration")
        return value


class TokenCreated(BaseModel):
    token: str
    expires_at: UtcTimestamp
    token_id: str
    subject: str
    scopes: list[str]
    node_id: str | None = None
    cluster_id: str | None = None


class TokenBody(StrictModel):
    token: str = Field(min_length=1, max_length=8192)


class TokenValidation(BaseModel):
    valid: bool
    reason: str | None = Field(
        default=None, description="Why not: malformed, expired, bad_signature or revoked."
    )
    subject: str | None = None
    scopes: list[str] | None = None
    node_id: str | None = None
    cluster_id: str | None = None
    expires_at: UtcTimestamp | None = None


class Revoked(BaseModel):
    success: bool
    message: str


@router.post("", response_model=TokenCreated, status_code=201, summary="Mint a token")
async def create_token(
    body: TokenCreate, request: Request, caller: TokenClaims = Depends(require("admin"))
) -> TokenCreated:
    settings = runtime_of(request).settings
    ttl = parse_duration(body.expiration) if body.expiration else settings.token_default_ttl
    if ttl > settings.token_max_ttl:
        raise InvalidRequest(
            f"expiration exceeds the maximum of {format_duration(settings.token_max_ttl)}",
            field="expiration",
        )
    subject = body.subject or _default_subject(body)
    token, claims = runtime_of(request).authority.mint(
        subject=subject,
        scopes=body.scopes or DEFAULT_SCOPES,
        ttl_seconds=ttl,
        node_id=body.node_id,
        cluster_id=body.cluster_id,
    )
    return TokenCreated(token=token, token_id=claims.token_id, **_describe(claims))


def _describe(claims: TokenClaims) -> dict[str, Any]:
    """The fields both the mint and the validate answers report about a token."""
    return {
        "subject": claims.subject,
        "scopes": sorted(claims.scopes),
        "node_id": claims.node_id,
        "cluster_id": claims.cluster_id,
        "expires_at": utc_from_unix(claims.expires_at),
    }


def _default_subject(body: TokenCreate) -> str | None:
    if body.node_id:
        return f"node:{body.node_id}"
    if body.cluster_id:
        return f"cluster:{body.cluster_id}"
    return None


@router.post(
    "/validate",
    response_model=TokenValidation,
    summary="Check a token; 200 with valid=false and a reason when it is not good",
)
async def validate_token(
    body: TokenBody, request: Request, _: TokenClaims = Depends(require(None, bound_ok=True))
) -> TokenValidation:
    try:
        claims = runtime_of(request).authority.verify(body.token)
    except InvalidToken as exc:
        return TokenValidation(valid=False, reason=exc.reason)
    return TokenValidation(valid=True, **_describe(claims))


@router.post(
    "/revoke",
    response_model=Revoked,
    summary="Revoke a token at once and for good (admin, or the token itself)",
)
async def revoke_token(
    body: TokenBody, request: Request, caller: TokenClaims = Depends(require(None, bound_ok=True))
) -> Revoked:
    runtime_of(request).authority.revoke(body.token, by=caller)
    return Revoked(success=True, message="Token successfully revoked")
