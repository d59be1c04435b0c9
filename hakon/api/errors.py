"""The one table from error code to HTTP status, and the one error body.

Native API body: {"error": {"code", "message", "details", "request_id"}}.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from hakon.errors import HakonError

log = logging.getLogger(__name__)

STATUS_BY_CODE = {
    "INVALID_REQUEST": 400,
    "UNAUTHORIZED": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "REQUEST_TIMEOUT": 408,
    "CONFLICT": 409,
    "PAYLOAD_TOO_LARGE": 413,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "UNPROCESSABLE": 422,
    "RATE_LIMITED": 429,
    "INTERNAL_ERROR": 500,
    "BAD_GATEWAY": 502,
    "SERVICE_UNAVAILABLE": 503,
    "QUERY_TIMEOUT": 503,
    "GATEWAY_TIMEOUT": 504,
    "INSUFFICIENT_STORAGE": 507,
}
# The first code listed for a status is the one a bare HTTP error of that status gets.
CODE_BY_STATUS = {status: code for code, status in reversed(STATUS_BY_CODE.items())}


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, machine-readable error code.")
    message: str = Field(description="What went wrong, naming the field where there is one.")
    details: dict[str, Any] = Field(default_factory=dict)
    request_id: str = Field(description="The X-Request-ID of the request.")


class ErrorResponse(BaseModel):
    error: ErrorDetail


def request_id_of(request: Request) -> str:
    return getattr(request.state, "request_id", "") or ""


def error_body(code: str, message: str, details: dict[str, Any], request_id: str) -> dict[str, Any]:
    return {
        "error": {"code": code, "message": message, "details": details, "request_id": request_id}
    }


def error_response(
    code: str,
    message: str,
    request_id: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(code, message, details or {}, request_id),
        status_code=STATUS_BY_CODE.get(code, 500),
        headers=headers,
    )


def _retry_headers(exc: HakonError) -> dict[str, str] | None:
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is None:
        return None
    return {"Retry-After": str(max(1, int(retry_after + 0.999)))}


async def handle_hakon_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HakonError)
    if exc.code == "INTERNAL_ERROR":
        log.error("internal error: %s", exc.message)
    return error_response(
        exc.code, exc.message, request_id_of(request), exc.details, _retry_headers(exc)
    )


def _field_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


async def handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        problems.append({"field": _field_path(loc) or "body", "message": err.get("msg", "")})
    first = problems[0] if problems else {"field": "body", "message": "invalid request"}
    message = f"{first['field']}: {first['message']}"
    details: dict[str, Any] = {"field": first["field"], "errors": problems}
    return error_response("INVALID_REQUEST", message, request_id_of(request), details)


async def handle_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = CODE_BY_STATUS.get(exc.status_code, "INVALID_REQUEST")
    if exc.status_code == 404:
        message = f"no route for {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    headers = dict(exc.headers) if exc.headers else None
    return error_response(code, message, request_id_of(request), headers=headers)


# The Prometheus HTTP API's `errorType` for each of our codes (its status stays ours).
PROMETHEUS_ERROR_TYPES = {
    "INVALID_REQUEST": "bad_data",
    "PAYLOAD_TOO_LARGE": "bad_data",
    "UNPROCESSABLE": "execution",
    "QUERY_TIMEOUT": "timeout",
    "SERVICE_UNAVAILABLE": "unavailable",
    "NOT_FOUND": "not_found",
    "UNAUTHORIZED": "unauthorized",
    "FORBIDDEN": "forbidden",
    "RATE_LIMITED": "unavailable",
}


def prometheus_error_response(exc: HakonError) -> JSONResponse:
    """`{"status": "error", "errorType", "error"}`, as Prometheus answers."""
    if exc.code == "INTERNAL_ERROR":
        log.error("internal error: %s", exc.message)
    body = {
        "status": "error",
        "errorType": PROMETHEUS_ERROR_TYPES.get(exc.code, "internal"),
        "error": exc.message,
    }
    status = STATUS_BY_CODE.get(exc.code, 500)
    return JSONResponse(body, status_code=status, headers=_retry_headers(exc))


def install(app: Any) -> None:
    app.add_exception_handler(HakonError, handle_hakon_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_exception)
