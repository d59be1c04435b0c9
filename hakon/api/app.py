"""The FastAPI application factory: one app from one `Runtime`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from hakon import __version__
from hakon.api import errors, openapi
from hakon.api.fastpath import IngestFastPath
from hakon.api.jsonguard import JsonGuardMiddleware
from hakon.api.middleware import RequestContextMiddleware
from hakon.api.ratelimit import TokenBucketLimiter
from hakon.api.routes import (
    admin,
    alert_rules,
    alerts,
    health,
    ingest,
    native,
    prometheus,
    registry,
    tokens,
    webhooks,
)
from hakon.runtime import Runtime

log = logging.getLogger(__name__)

DESCRIPTION = """Hakon: metrics and alerting for Kubernetes clusters and edge fleets.

Every route but `/health`, `/ready` and (by default) `/metrics` needs
`Authorization: Bearer <token>`. Errors share one body:
`{"error": {"code", "message", "details", "request_id"}}`.
`/v1/...` is accepted as an alias of `/api/v1/...`.
"""


def create_app(runtime: Runtime) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opening = asyncio.create_task(asyncio.to_thread(runtime.open))
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                await opening
            with contextlib.suppress(Exception):
                await runtime.registries.invoker.close()
            with contextlib.suppress(Exception):
                await runtime.ingest.decoding.detach()
            await asyncio.to_thread(runtime.close)

    app = FastAPI(
        title="Hakon",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    settings = runtime.settings
    app.state.runtime = runtime
    app.state.limiters = {
        "api": TokenBucketLimiter(settings.rate_limit_rps, settings.rate_limit_burst),
        "ingest": TokenBucketLimiter(
            settings.ingest_rate_limit_rps, settings.ingest_rate_limit_burst
        ),
    }
    errors.install(app)
    app.include_router(health.router)
    app.include_router(tokens.router)
    app.include_router(admin.router)
    app.include_router(ingest.router)
    app.include_router(prometheus.router)
    app.include_router(native.router)
    app.include_router(alerts.router)
    app.include_router(alert_rules.router)
    app.include_router(webhooks.router)
    app.include_router(registry.router)
    openapi.install(app)
    app.add_middleware(JsonGuardMiddleware, max_body=settings.api_max_body_bytes)
    app.add_middleware(
        IngestFastPath, fastapi_app=app, router=ingest.router, routes=ingest.FAST_ROUTES
    )
    app.add_middleware(RequestContextMiddleware, telemetry=runtime.telemetry)
    return app
