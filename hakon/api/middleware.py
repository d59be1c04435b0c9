"""The outermost layer of every request (plain ASGI, no per-request task overhead):

- a request id (the client's `X-Request-ID` if sane, else a new one) on every response;
- the `/v1/...` alias of `/api/v1/...`;
- rate-limit headers decided by the auth dependency;
- request count and latency by route template;
- the last-resort 500 body for anything unexpected, in the one error shape.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hakon.api.errors import error_body
from hakon.telemetry import Telemetry

log = logging.getLogger(__name__)
_SANE_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path == "/v1" or path.startswith("/v1/"):
            scope = dict(scope)
            scope["path"] = "/api" + path
            scope["raw_path"] = b"/api" + scope.get("raw_path", path.encode())
        request_id = _incoming_request_id(scope) or _new_request_id()
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                decision = state.get("rate_limit")
                if decision is not None:
                    headers.extend(decision.headers())
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            log.exception("unhandled error in %s %s", scope["method"], scope["path"])
            if not response_started:
                body = json.dumps(
                    error_body("INTERNAL_ERROR", "internal server error", {}, request_id)
                ).encode()
                await send_with_headers(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.telemetry.observe_request(
                template, scope["method"], status, time.perf_counter() - started
            )


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            if _SANE_REQUEST_ID.match(value):
                return value.decode()
            return None
    return None


_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count()


def _new_request_id() -> str:
    """Unique per process start and request; uuid4 cost a getrandom call per request."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"  # 32 hex digits, like a uuid
