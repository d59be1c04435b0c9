"""Times and durations as the Prometheus HTTP API accepts them."""

from __future__ import annotations

import math
import re
from datetime import datetime

from hakon.errors import InvalidRequest

_UNITS_MS = {
    "ms": 1,
    "s": 1000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 604_800_000,
    "y": 31_536_000_000,
}
_DURATION = re.compile(r"^((\d+)(ms|y|w|d|h|m|s))+$")
_PART = re.compile(r"(\d+)(ms|y|w|d|h|m|s)")
# Far enough from the edges of int64 milliseconds to compute with (Prometheus uses the same idea).
MIN_TIME_MS = -9_223_309_901_257_974
MAX_TIME_MS = 9_223_309_901_257_974


def parse_duration_ms(text: str, field: str) -> int:
    """`5m`, `1h30m`, `250ms`, or a number of seconds (`15`, `0.5`)."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        if not text or not _DURATION.match(text):
            raise InvalidRequest(
                f'invalid parameter "{field}": cannot parse "{text}" to a valid duration',
                field=field,
            ) from None
        return sum(int(n) * _UNITS_MS[u] for n, u in _PART.findall(text))
    if not math.isfinite(seconds):
        raise InvalidRequest(
            f'invalid parameter "{field}": cannot parse "{text}" to a valid duration', field=field
        )
    ms = round(seconds * 1000)
    if abs(ms) > MAX_TIME_MS:
        raise InvalidRequest(f'invalid parameter "{field}": duration out of range', field=field)
    return ms


def parse_time_ms(text: str, field: str) -> int:
    """Unix seconds (`1700000000.123`) or RFC 3339 (`2026-11-27T10:00:00Z`)."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if math.isnan(seconds):
            raise InvalidRequest(
                f'invalid parameter "{field}": cannot parse "{text}" to a valid timestamp',
                field=field,
            )
        if math.isinf(seconds):
            return MAX_TIME_MS if seconds > 0 else MIN_TIME_MS
        ms = round(seconds * 1000)
        return max(MIN_TIME_MS, min(MAX_TIME_MS, ms))
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidRequest(
            f'invalid parameter "{field}": cannot parse "{text}" to a valid timestamp', field=field
        ) from None
    if dt.tzinfo is None:
        raise InvalidRequest(
            f'invalid parameter "{field}": cannot parse "{text}" to a valid timestamp '
            "(an RFC 3339 time needs a zone, such as Z)",
            field=field,
        )
    return round(dt.timestamp() * 1000)
