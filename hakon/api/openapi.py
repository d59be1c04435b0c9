"""Make `/openapi.json` true to what the app does.

FastAPI documents a 422 body we never send; we answer validation failures
with 400 and the one error shape. Every operation gets the error responses it
can really return, and authenticated operations list the scope they need.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from hakon.api.errors import ErrorResponse
from hakon.ingest.service import request_schemas

_ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
_DESCRIPTIONS = {
    "400": "Invalid request: the message and `details.field` name the problem.",
    "401": "Missing, malformed, expired, badly signed or revoked token.",
    "403": "The token lacks the required scope or binding.",
    "404": "Not found.",
    "408": "The body did not arrive within `ingest_body_timeout`.",
    "413": "Body, decompressed body or sample count over the configured limit.",
    "415": "Unsupported Content-Type or Content-Encoding.",
    "429": "Rate limit exceeded; see Retry-After and X-RateLimit-* headers.",
    "500": "Internal error.",
    "503": "Storage is still opening or the service is overloaded; retry.",
}


def _error(status: str) -> dict[str, Any]:
    return {
        "description": _DESCRIPTIONS[status],
        "content": {"application/json": {"schema": _ERROR_REF}},
    }


def build_openapi(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    schema.setdefault("components", {}).setdefault("schemas", {})
    schema["components"]["schemas"]["ErrorResponse"] = ErrorResponse.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    for name, sub in (
        ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
        .get("$defs", {})
        .items()
    ):
        schema["components"]["schemas"][name] = sub
    schema["components"]["schemas"]["ErrorResponse"].pop("$defs", None)
    schema["components"]["schemas"].update(request_schemas())
    for name in ("HTTPValidationError", "ValidationError"):
        schema["components"]["schemas"].pop(name, None)

    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            had_validation = responses.pop("422", None) is not None
            requirements = operation.get("security") or []
            authenticated = any("bearer" in r for r in requirements)
            scopes = [s for r in requirements for s in r.get("bearer", [])]
            scope = scopes[0] if scopes else None
            if had_validation or operation.get("parameters") or operation.get("requestBody"):
                responses.setdefault("400", _error("400"))
            if authenticated:
                for status in ("401", "403", "429", "503"):
                    responses.setdefault(status, _error(status))
                if scope:
                    operation["x-required-scope"] = scope
                    note = f"Requires a token with the `{scope}` scope (or `admin`)."
                else:
                    note = "Requires any valid token."
                operation["description"] = (
                    operation.get("description", "") + "\n\n" + note
                ).strip()
            if "ingest" in operation.get("tags", []):
                for status in ("408", "413", "415"):
                    responses.setdefault(status, _error(status))
            responses.setdefault("500", _error("500"))
    return schema


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
