"""Make `/openapi.json` true to what the app does.

FastAPI documents a 422 body we never send; we answer validation failures
with 400 and the one error shape. Every operation gets the error responses it
can really return, and authenticated operations list the scope they need.
"""

from __future__ import annotations

import functools
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from hakon.api.errors import ErrorResponse
from hakon.api.routes.registry import request_schemas as registry_request_schemas
from hakon.ingest.service import request_schemas

_ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
_PROMETHEUS_ERROR_REF = {"$ref": "#/components/schemas/PrometheusError"}
PROMETHEUS_ERROR_SCHEMA = {
    "type": "object",
    "description": "The Prometheus HTTP API's error envelope.",
    "required": ["status", "errorType", "error"],
    "properties": {
        "status": {"type": "string", "enum": ["error"]},
        "errorType": {
            "type": "string",
            "description": "bad_data, execution, timeout, unavailable, not_found, "
            "unauthorized, forbidden or internal.",
        },
        "error": {"type": "string"},
    },
}
PROMETHEUS_SUCCESS_SCHEMA = {
    "type": "object",
    "description": "The Prometheus HTTP API's success envelope.",
    "required": ["status", "data"],
    "properties": {
        "status": {"type": "string", "enum": ["success"]},
        "data": {},
        "warnings": {"type": "array", "items": {"type": "string"}},
    },
}
# Prometheus routes that evaluate PromQL can fail in evaluation (422, errorType execution).
_EVALUATING = ("prometheus_query_", "prometheus_query_range_")
_DESCRIPTIONS = {
    "400": "Invalid request: the message and `details.field` name the problem.",
    "401": "Missing, malformed, expired, badly signed or revoked token.",
    "403": "The token lacks the required scope or binding.",
    "404": "Not found.",
    "409": "Conflict: a duplicate name, a stale resource_version (If-Match), or a state "
    "the action cannot start from.",
    "408": "The body did not arrive within `ingest_body_timeout`.",
    "413": "Body, decompressed body or sample count over the configured limit.",
    "415": "Unsupported Content-Type or Content-Encoding.",
    "422": "The query is valid but cannot be evaluated: a PromQL matching error or a "
    "query limit (series, samples, points).",
    "429": "Rate limit exceeded; see Retry-After and X-RateLimit-* headers.",
    "500": "Internal error.",
    "503": "Storage is still opening, the service is overloaded, or a query timed out; retry.",
    "502": "The function's endpoint could not be reached.",
    "504": "The function did not answer within its timeout.",
}


def _error(status: str, prometheus: bool = False) -> dict[str, Any]:
    return {
        "description": _DESCRIPTIONS[status],
        "content": {
            "application/json": {"schema": _PROMETHEUS_ERROR_REF if prometheus else _ERROR_REF}
        },
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
    # Registry bodies are pydantic models FastAPI may also have rendered (for responses);
    # the ingest bodies are msgspec types, which must not share a name with any model.
    schema["components"]["schemas"].update(registry_request_schemas())
    for name, sub in request_schemas().items():
        if schema["components"]["schemas"].setdefault(name, sub) != sub:
            raise RuntimeError(f"two schemas are named {name!r} in the OpenAPI document")
    schema["components"]["schemas"]["PrometheusError"] = PROMETHEUS_ERROR_SCHEMA
    schema["components"]["schemas"]["PrometheusSuccess"] = PROMETHEUS_SUCCESS_SCHEMA
    for name in ("HTTPValidationError", "ValidationError"):
        schema["components"]["schemas"].pop(name, None)

    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            had_validation = responses.pop("422", None) is not None
            for status, response in list(responses.items()):  # routes list error statuses bare
                if status in _DESCRIPTIONS and "content" not in response and status != "200":
                    responses[status] = _error(status)
            prometheus = "prometheus" in operation.get("tags", [])
            error = functools.partial(_error, prometheus=prometheus)
            if prometheus:
                responses["200"] = {
                    "description": "Success.",
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/PrometheusSuccess"}
                        }
                    },
                }
                if operation.get("operationId", "").startswith(_EVALUATING):
                    responses["422"] = error("422")
            requirements = operation.get("security") or []
            authenticated = any("bearer" in r for r in requirements)
            scopes = [s for r in requirements for s in r.get("bearer", [])]
            scope = scopes[0] if scopes else None
            if had_validation or operation.get("parameters") or operation.get("requestBody"):
                responses.setdefault("400", error("400"))
            if any(p.get("in") == "path" for p in operation.get("parameters", [])):
                responses.setdefault("404", error("404"))  # the named thing may not exist
            if authenticated:
                for status in ("401", "403", "429", "503"):
                    responses.setdefault(status, error(status))
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
                    responses.setdefault(status, error(status))
            responses.setdefault("500", error("500"))
    return schema


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def scope_table(schema: dict[str, Any]) -> str:
    """docs/security.md's table: every operation and what a token needs to call it."""
    rows = ["| Method | Path | Token needs |", "| --- | --- | --- |"]
    for path, operations in sorted(schema["paths"].items()):
        for method, operation in operations.items():
            scope = operation.get("x-required-scope")
            if {} in operation.get("security", []):  # optional auth (`/metrics`)
                needs = f"nothing by default; `{scope}` with `metrics_require_auth`"
            elif scope:
                needs = f"`{scope}` (or `admin`)" if scope != "admin" else "`admin`"
            elif operation.get("security"):
                needs = "any valid token"
            else:
                needs = "nothing (public)"
            rows.append(f"| {method.upper()} | `{path}` | {needs} |")
    return "\n".join(rows) + "\n"
