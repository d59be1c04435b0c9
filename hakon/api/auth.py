"""The auth dependency: who is calling, may they, and are they within their rate.

Routes declare `Depends(require("scope"))`. The bearer scheme is declared
with that scope (`Security(bearer, scopes=[...])`), so the OpenAPI document
lists it in each operation's security requirement without further wiring.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hakon.auth.tokens import ADMIN, SCOPES, TokenClaims
from hakon.errors import Forbidden, RateLimited, Unauthorized, Unavailable
from hakon.runtime import Runtime

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="A Hakon JWT: `Authorization: Bearer <token>`.",
)
NO_AUTH_CLAIMS = TokenClaims(
    subject="anonymous",
    scopes=frozenset([ADMIN]),
    issued_at=0,
    expires_at=2**62,
    token_id="no-auth",
)


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


class RequireScope:
    """Authenticate, rate-limit in `bucket`, then check `scope` (None: any valid token).

    A token bound to a node or cluster is an agent's: it is accepted only where
    `bound_ok` says the route itself confines the caller to its binding (the ingest
    routes, and the routes about the token itself); everywhere else it is a 403,
    whatever its scopes, so an agent's token never reads or changes the rest.
    """

    def __init__(self, scope: str | None, bucket: str = "api", bound_ok: bool = False) -> None:
        if scope is not None and scope not in SCOPES:
            raise ValueError(f"unknown scope {scope}")
        self.scope = scope
        self.bucket = bucket
        self.bound_ok = bound_ok

    async def check(
        self, request: Request, credentials: HTTPAuthorizationCredentials | None
    ) -> TokenClaims:
        runtime = runtime_of(request)
        if not runtime.ready:
            raise Unavailable("storage is still opening; retry shortly")
        if runtime.settings.no_auth:
            claims = NO_AUTH_CLAIMS
        elif credentials is None:
            raise Unauthorized(
                "missing bearer token: send 'Authorization: Bearer <token>'",
                details={"header": "Authorization"},
            )
        else:
            claims = runtime.authority.verify(credentials.credentials)
        limiter = request.app.state.limiters[self.bucket]
        if limiter.enabled:
            decision = limiter.take(claims.subject)
            request.state.rate_limit = decision
            if not decision.allowed:
                runtime.telemetry.rate_limited.labels(self.bucket).inc()
                raise RateLimited(
                    f"rate limit of {limiter.burst} requests exceeded for {claims.subject!r}",
                    retry_after=decision.retry_after,
                )
        if not self.bound_ok and (claims.node_id or claims.cluster_id):
            raise Forbidden(
                f"this token is bound to {binding(claims)}: it may only send that "
                "node's or cluster's metrics and read its own views",
                details={"node_id": claims.node_id, "cluster_id": claims.cluster_id},
            )
        if self.scope is not None and not claims.allows(self.scope):
            raise Forbidden(
                f"token lacks the {self.scope!r} scope",
                details={"required_scope": self.scope, "scopes": sorted(claims.scopes)},
            )
        request.state.claims = claims
        return claims


def require(
    scope: str | None, bucket: str = "api", bound_ok: bool = False
) -> Callable[..., Awaitable[TokenClaims]]:
    checker = RequireScope(scope, bucket, bound_ok)

    async def authenticated(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Security(
            bearer, scopes=[scope] if scope else []
        ),
    ) -> TokenClaims:
        return await checker.check(request, credentials)

    authenticated.checker = checker  # type: ignore[attr-defined]  # for hakon.api.fastpath
    return authenticated


def confine(
    claims: TokenClaims, node_id: str | None = None, cluster_id: str | None = None,
    action: str = "read",
) -> None:  # fmt: skip
    """For a route taken with `bound_ok`: a bound token may only `action` its own node
    (`node_id`) or cluster (`cluster_id`); an unbound token passes."""
    if not (claims.node_id or claims.cluster_id):
        return
    if (claims.node_id and claims.node_id == node_id) or (
        claims.cluster_id and claims.cluster_id == cluster_id
    ):
        return
    field, asked = ("node_id", node_id) if node_id is not None else ("cluster_id", cluster_id)
    raise Forbidden(
        f"this token is bound to {binding(claims)} and may not {action} "
        f"{field.removesuffix('_id')} {asked!r}",
        details={"field": field, field: asked},
    )


def binding(claims: TokenClaims) -> str:
    return f"node {claims.node_id!r}" if claims.node_id else f"cluster {claims.cluster_id!r}"
