"""Hakon's one error tree.

Domain code raises these and never mentions HTTP; `hakon/api/errors.py` holds
the single table from `code` to HTTP status and renders the error body.

    HakonError                     code
    ├── InvalidRequest             INVALID_REQUEST       bad input; `details` names the field
    ├── Unauthorized               UNAUTHORIZED          bad, expired or revoked token
    ├── Forbidden                  FORBIDDEN             token lacks the scope or binding
    ├── NotFound                   NOT_FOUND
    ├── MethodNotAllowed           METHOD_NOT_ALLOWED
    ├── Conflict                   CONFLICT              duplicate name, stale version
    ├── RequestTimeout             REQUEST_TIMEOUT       the body did not arrive in time
    ├── PayloadTooLarge            PAYLOAD_TOO_LARGE
    ├── UnsupportedMediaType       UNSUPPORTED_MEDIA_TYPE  wrong Content-Type or -Encoding
    ├── Unprocessable              UNPROCESSABLE         valid request that cannot be evaluated
    │                                                    (PromQL matching errors, query limits)
    ├── RateLimited                RATE_LIMITED          carries `retry_after` seconds
    ├── Unavailable                SERVICE_UNAVAILABLE   not ready yet, or overloaded: retry
    │   └── QueryTimeout           QUERY_TIMEOUT         a query ran past its timeout
    ├── InsufficientStorage        INSUFFICIENT_STORAGE  the disk is full: retry later
    ├── BadGateway                 BAD_GATEWAY           a function's endpoint could not be reached
    ├── GatewayTimeout             GATEWAY_TIMEOUT       a function did not answer in time
    └── (anything else)            INTERNAL_ERROR
"""

from __future__ import annotations

from typing import Any


class HakonError(Exception):
    code = "INTERNAL_ERROR"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class InvalidRequest(HakonError):
    code = "INVALID_REQUEST"

    def __init__(
        self, message: str, *, field: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        merged = dict(details or {})
        if field is not None:
            merged.setdefault("field", field)
        super().__init__(message, details=merged)


class Unauthorized(HakonError):
    code = "UNAUTHORIZED"


class Forbidden(HakonError):
    code = "FORBIDDEN"


class NotFound(HakonError):
    code = "NOT_FOUND"


class MethodNotAllowed(HakonError):
    code = "METHOD_NOT_ALLOWED"


class Conflict(HakonError):
    code = "CONFLICT"


class RequestTimeout(HakonError):
    code = "REQUEST_TIMEOUT"


class PayloadTooLarge(HakonError):
    code = "PAYLOAD_TOO_LARGE"


class UnsupportedMediaType(HakonError):
    code = "UNSUPPORTED_MEDIA_TYPE"


class Unprocessable(HakonError):
    code = "UNPROCESSABLE"


class RateLimited(HakonError):
    code = "RATE_LIMITED"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message, details={"retry_after_seconds": retry_after})
        self.retry_after = retry_after


class Unavailable(HakonError):
    code = "SERVICE_UNAVAILABLE"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after


class QueryTimeout(Unavailable):
    code = "QUERY_TIMEOUT"


class InsufficientStorage(HakonError):
    code = "INSUFFICIENT_STORAGE"


class BadGateway(HakonError):
    code = "BAD_GATEWAY"


class GatewayTimeout(HakonError):
    code = "GATEWAY_TIMEOUT"
