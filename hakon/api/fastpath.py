"""The busiest ingest routes, served without FastAPI's per-request machinery.

Agents post hundreds of small bodies a second, and FastAPI's routing (a
match against every route), dependency solving and response validation took
about 30 % of the server thread's time for each remote_write request (py-spy,
GIL held): more than the route's own work. This layer answers a POST to a
fixed ingest path by calling that route's endpoint directly, with the same
dependencies solved by hand: the token check (`RequireScope`) and the
request slot. Everything else stays where it is: the route's OpenAPI
entry and its code (the very function is called), the error bodies
(`hakon.api.errors`), and the outer middleware (request id, the `/v1` alias,
rate-limit headers, request metrics). Paths with parameters in them, and every
other method, go through FastAPI as before.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from hakon.api.auth import RequireScope, bearer, runtime_of
from hakon.api.errors import handle_hakon_error
from hakon.errors import HakonError

Endpoint = Callable[..., Awaitable[Any]]
# The parameters an endpoint may have to be served here: nothing from the query or
# the path, only what this layer supplies.
SUPPLIED = ("request", "claims", "ingest")


class FastIngestRoute:
    """One route's endpoint and its token check."""

    def __init__(self, route: APIRoute, checker: RequireScope) -> None:
        self.route = route
        self.endpoint: Endpoint = route.endpoint
        self.checker = checker
        self.status = route.status_code or 200


class IngestFastPath:
    """ASGI middleware: POSTs to the registered paths go straight to their endpoints."""

    def __init__(
        self,
        app: ASGIApp,
        fastapi_app: FastAPI,
        router: APIRouter,
        routes: dict[str, RequireScope],
    ) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self.routes: dict[str, FastIngestRoute] = {}
        for path, checker in routes.items():
            self.register(router, path, checker)

    def register(self, router: APIRouter, path: str, checker: RequireScope) -> None:
        """Serve POST `path` (a route of `router`, included without a prefix) here; its
        endpoint takes exactly `SUPPLIED`."""
        for route in router.routes:
            if (
                isinstance(route, APIRoute)
                and route.path == path
                and "POST" in (route.methods or ())
            ):
                params = tuple(inspect.signature(route.endpoint).parameters)
                if params != SUPPLIED:
                    raise ValueError(f"{path}: endpoint takes {params}, not {SUPPLIED}")
                self.routes[path] = FastIngestRoute(route, checker)
                return
        raise LookupError(f"no POST route {path}")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = (
            self.routes.get(scope["path"])
            if scope["type"] == "http" and scope["method"] == "POST"
            else None
        )
        if fast is None:
            await self.app(scope, receive, send)
            return
        scope["app"] = self.fastapi_app
        scope["route"] = fast.route  # request metrics are labelled by the route's path
        request = Request(scope, receive)
        try:
            response = await self._answer(fast, request)
        except HakonError as exc:
            response = await handle_hakon_error(request, exc)
        await response(scope, receive, send)

    async def _answer(self, fast: FastIngestRoute, request: Request) -> Response:
        claims = await fast.checker.check(request, await bearer(request))
        ingest = runtime_of(request).ingest
        with ingest.request():
            result = await fast.endpoint(request=request, claims=claims, ingest=ingest)
        if isinstance(result, Response):
            return result
        if isinstance(result, BaseModel):
            return JSONResponse(result.model_dump(mode="json"), status_code=fast.status)
        raise TypeError(f"{fast.route.path} returned {type(result).__name__}")
