"""What one ingest request may carry, and the naming rules every format obeys.

Checked on the slow path only: a label set is validated the first time it is
seen, then its series id is cached (`hakon.ingest.series`), so a steady stream
of known series pays nothing here.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from hakon.errors import InvalidRequest, PayloadTooLarge

METRIC_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_INVALID_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_:]")


@dataclass(frozen=True)
class IngestLimits:
    max_body_bytes: int = 32 << 20
    max_decoded_bytes: int = 128 << 20
    max_samples: int = 2_000_000
    max_labels: int = 64
    max_label_name_length: int = 256
    max_label_value_length: int = 4096
    max_future_ms: int = 600_000
    retention_ms: int = 15 * 86_400_000
    series_cache_size: int = 2_000_000
    body_timeout_s: float = 30.0

    def check_sample_count(self, n: int) -> None:
        if n > self.max_samples:
            raise PayloadTooLarge(
                f"request carries {n} samples; at most {self.max_samples} are accepted per request",
                details={"samples": n, "limit": self.max_samples},
            )

    def check_labels(self, labels: dict[str, str], where: str) -> None:
        """Validate one series' label set (metric name under `__name__`)."""
        name = labels.get("__name__", "")
        if not METRIC_NAME_RE.match(name):
            raise InvalidRequest(
                f"{where}: invalid metric name {name[:200]!r} "
                "(must match [a-zA-Z_:][a-zA-Z0-9_:]*)",
                field=where,
            )
        self.check_sizes(labels, 0, where)
        for key, value in labels.items():
            if not value:
                continue  # an empty value means "no such label": it is dropped, not checked
            if key != "__name__" and (not LABEL_NAME_RE.match(key) or key.startswith("__")):
                raise InvalidRequest(
                    f"{where}: invalid label name {key[:200]!r} (must match "
                    "[a-zA-Z_][a-zA-Z0-9_]* and not start with '__')",
                    field=where,
                )
            if len(key) > self.max_label_name_length:
                raise InvalidRequest(
                    f"{where}: label name {key[:40]!r}... is longer than "
                    f"{self.max_label_name_length} characters",
                    field=where,
                )

    def check_sizes(
        self, labels: dict[str, str], extra: int, where: str | Callable[[], str]
    ) -> None:
        """Label count and value lengths only, for labels whose names are known to be valid.

        `where` names the field, or makes its name when one is needed (a cluster's first
        payload checks thousands of resources, and formatting each one's path cost more
        than the check)."""
        if len(labels) + extra > self.max_labels:
            path = where if isinstance(where, str) else where()
            raise InvalidRequest(
                f"{path}: {len(labels) + extra} labels; at most {self.max_labels} are allowed "
                "per series",
                field=path,
            )
        if max(map(len, labels.values()), default=0) <= self.max_label_value_length:
            return  # the usual case, checked in one pass in C
        for key, value in labels.items():
            if len(value) > self.max_label_value_length:
                path = where if isinstance(where, str) else where()
                raise InvalidRequest(
                    f"{path}: value of label {key!r} is {len(value)} characters; at most "
                    f"{self.max_label_value_length} are allowed",
                    field=path,
                )

    def time_window(self, now_ms: int | None = None) -> tuple[int, int]:
        """The oldest and newest timestamps (ms) a sample may carry now."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        return now - self.retention_ms, now + self.max_future_ms

    def check_timestamp(self, ts_ms: int, where: str) -> None:
        oldest, newest = self.time_window()
        if ts_ms > newest:
            raise InvalidRequest(
                f"{where}: timestamp {ts_ms} ms is more than {self.max_future_ms // 1000} s in "
                "the future",
                field=where,
            )
        if ts_ms < oldest:
            raise InvalidRequest(
                f"{where}: timestamp {ts_ms} ms is older than the raw retention "
                f"({self.retention_ms // 86_400_000} d)",
                field=where,
            )


def sanitize_name(name: str) -> str:
    """Map a foreign name (Influx measurement or field) onto Prometheus's metric alphabet."""
    cleaned = _INVALID_NAME_CHARS.sub("_", name)
    if cleaned and cleaned[0].isdigit():
        cleaned = "_" + cleaned
    return cleaned


def sanitize_label_name(name: str) -> str:
    cleaned = _INVALID_NAME_CHARS.sub("_", name).replace(":", "_")
    if cleaned and cleaned[0].isdigit():
        cleaned = "_" + cleaned
    while cleaned.startswith("__"):
        cleaned = cleaned[1:]
    return cleaned
