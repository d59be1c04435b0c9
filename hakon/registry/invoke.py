"""Invoking a function: forward seed 003's event object to its endpoint, time it, record it.

Every invocation is recorded, the failed ones too (an unreachable endpoint or a
timeout is an `error` outcome), and the sample is durable before the caller
gets the function's answer.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from hakon.errors import BadGateway, GatewayTimeout
from hakon.registry.functions import (
    FunctionSettings,
    Warmth,
    invocation_sample,
    require_endpoint,
)
from hakon.registry.resources import Registry
from hakon.store.interface import SampleBatch

# Request headers a function never sees: credentials and hop-by-hop headers.
WITHHELD = frozenset(
    ("authorization", "cookie", "proxy-authorization", "host", "content-length", "connection",
     "transfer-encoding", "keep-alive", "upgrade", "te", "trailer", "accept-encoding")
)  # fmt: skip


@dataclass(frozen=True)
class Invocation:
    status: int
    body: bytes
    content_type: str
    seconds: float
    cold_start: bool


def event_object(body: Any, headers: dict[str, str], query: dict[str, str]) -> dict[str, Any]:
    """Seed 003's event object, as the function receives it."""
    kept = {k: v for k, v in headers.items() if k.lower() not in WITHHELD}
    return {"body": body, "headers": kept, "method": "POST", "path": "/invoke", "query": query}


def failed(status: int, body: bytes) -> bool:
    """A 5xx, or a 2xx whose body is seed 003's response format with a 5xx statusCode."""
    if status >= 500:
        return True
    if body.startswith(b"{") and b'"statusCode"' in body:
        try:
            code = json.loads(body).get("statusCode")
        except (ValueError, AttributeError):
            return False
        return isinstance(code, int) and code >= 500
    return False


class Invoker:
    def __init__(
        self,
        registry: Registry,
        settings: FunctionSettings,
        append: Callable[[SampleBatch], None],
    ) -> None:
        self.registry = registry
        self.settings = settings
        self.append = append
        self.warmth = Warmth(settings.keep_warm_s)
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def invoke(self, name: str, event: dict[str, Any]) -> Invocation:
        record = self.registry.get("function", name)
        endpoint = require_endpoint(record, self.settings)
        timeout = record.spec.get("timeout") or self.settings.timeout_s
        cold = self.warmth.begin(record)
        started = time.perf_counter()
        error: Exception | None = None
        response: httpx.Response | None = None
        try:
            response = await self._http().post(endpoint, json=event, timeout=timeout)
        except httpx.TimeoutException:
            error = GatewayTimeout(
                f"function {name!r} did not answer within {timeout:g}s",
                details={"function": name, "timeout_seconds": timeout},
            )
        except httpx.HTTPError as exc:
            error = BadGateway(
                f"function {name!r} could not be reached at its endpoint: {type(exc).__name__}",
                details={"function": name},
            )
        seconds = time.perf_counter() - started
        ok = response is not None and not failed(response.status_code, response.content)
        t_ms = self.warmth.sample_time(name)
        await asyncio.to_thread(self.append, invocation_sample(name, t_ms, seconds, cold, ok))
        if error is not None:
            raise error
        assert response is not None
        return Invocation(
            response.status_code,
            response.content,
            response.headers.get("content-type", "application/json"),
            seconds,
            cold,
        )
