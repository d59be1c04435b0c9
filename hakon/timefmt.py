"""RFC 3339 UTC text for millisecond timestamps: the forms every API here prints."""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(ms: int) -> str:
    """`2026-11-27T10:00:00Z` (whole seconds)."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_ms(ms: int) -> str:
    """`2026-11-27T10:00:00.123Z` (milliseconds, as Prometheus and Alertmanager print)."""
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S") + (
        f".{ms % 1000:03d}Z"
    )
