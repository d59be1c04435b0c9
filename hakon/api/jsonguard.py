"""JSON bodies of the API routes, checked before any route sees them.

Python's `json` accepts what a strict reader must not: duplicate keys (the last
silently wins), `NaN` and `Infinity`, and nesting deep enough to exhaust the
stack. This layer reads a JSON body once (bounded by `api_max_body_size`),
refuses those with a 400 (413 when too big), and hands the same bytes on. The
ingest routes are not here: they decode with msgspec under their own limits.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hakon.api.errors import error_response

# The ingest routes (their own decoders, limits and media-type checks), as the path
# arrives (the /v1 alias included).
INGEST_PREFIXES = (
    *(
        p + r
        for p in ("/api/v1/", "/v1/")
        for r in ("hakongo/", "metrics/nodes/", "import/", "write")
    ),
    "/write",
    "/api/v2/write",
)


class BadJson(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise BadJson(f"the key {key!r} appears twice in one object")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise BadJson(f"{name} is not JSON")


def check_json(body: bytes) -> None:
    """Raise BadJson (message for the client) unless `body` is strict JSON."""
    try:
        json.loads(body, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except RecursionError:
        raise BadJson("JSON nested too deeply") from None
    except UnicodeDecodeError:
        raise BadJson("the body is not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise BadJson(f"the body is not valid JSON: {exc.msg} at byte {exc.pos}") from None


class JsonGuardMiddleware:
    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._applies(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, receive, send)  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await self._refuse(scope, receive, send, "PAYLOAD_TOO_LARGE",
                                   f"the body is over {self.max_body} bytes")  # fmt: skip
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if body:
            try:
                check_json(body)
            except BadJson as exc:
                await self._refuse(scope, receive, send, "INVALID_REQUEST", f"body: {exc}")
                return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _applies(self, scope: Scope) -> bool:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return False
        if scope["path"].startswith(INGEST_PREFIXES):
            return False
        for name, value in scope.get("headers", []):
            if name == b"content-type":
                media = value.split(b";", 1)[0].strip().lower()
                return media == b"application/json" or media.endswith(b"+json")
        return False

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, code: str, message: str
    ) -> None:
        request_id = scope.get("state", {}).get("request_id", "")
        response = error_response(code, message, request_id, {"field": "body"})
        await response(scope, receive, send)
