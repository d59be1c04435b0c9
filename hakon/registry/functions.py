"""Functions (seed 003): declared by name, invoked by forwarding seed 003's event object to
the function's HTTP endpoint, and measured.

Each invocation writes one sample of `hakon_function_invocation_duration_seconds`
(labels `function`, `cold_start`, `outcome`) at the invocation's time, so the
counts, durations, errors and cold starts of any window are exact sums over
samples. Two invocations of a function in the same millisecond are written one
millisecond apart, so neither replaces the other.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from hakon.errors import Conflict
from hakon.registry.resources import Kind, Record, now_ms
from hakon.store.interface import SampleBatch
from hakon.timefmt import rfc3339

RUNTIMES = ("nodejs18", "python39", "go119")
_HANDLERS = {
    "nodejs18": (re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./-]*\.[A-Za-z_$][A-Za-z0-9_$]*$"),
                 "filename.exportname, e.g. index.handler"),
    "python39": (re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./-]*\.[A-Za-z_][A-Za-z0-9_]*$"),
                 "filename.functionname, e.g. handler.handler"),
    "go119": (re.compile(r"^[A-Z][A-Za-z0-9_]*$"), "an exported Go function name, e.g. Handler"),
}  # fmt: skip
SERIES = "hakon_function_invocation_duration_seconds"


class HttpConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(pattern=r"^/[A-Za-z0-9._~!$&'()*+,;=:@/%-]*$", max_length=1024)


class CronConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schedule: str = Field(min_length=1, max_length=128, description="Five-field cron.")

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        try:
            CronTrigger.from_crontab(value, timezone="UTC")
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a five-field cron schedule: {exc}") from None
        return value


class QueueConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    queue: str = Field(min_length=1, max_length=255)
    exchange: str = Field("", max_length=255)


class HttpTrigger(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["http"]
    config: HttpConfig


class CronTrigger_(BaseModel):
    model_config = ConfigDict(extra="forbid", title="CronTrigger")
    type: Literal["cron"]
    config: CronConfig


class QueueTrigger(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["queue"]
    config: QueueConfig


Trigger = HttpTrigger | CronTrigger_ | QueueTrigger


class FunctionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    runtime: Literal["nodejs18", "python39", "go119"]
    handler: str = Field(min_length=1, max_length=256, description="Format per runtime.")
    code: str = Field("", max_length=1 << 20)
    environment: dict[str, str] = Field(default_factory=dict)
    minReplicas: int = Field(0, ge=0, le=1000)
    maxReplicas: int = Field(10, ge=1, le=1000)
    triggers: list[Trigger] = Field(default_factory=list, max_length=64)  # type: ignore[valid-type]
    endpoint: str | None = Field(
        None, max_length=2048, description="http(s) URL invoke forwards to; default: the "
        "function_url_template setting.",
    )  # fmt: skip
    timeout: float | None = Field(None, gt=0, le=900, description="Invoke timeout, seconds.")
    memory_mb: int = Field(128, ge=1, le=65_536, description="For the cost estimate.")
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("handler")
    @classmethod
    def _handler(cls, value: str, info: ValidationInfo) -> str:
        runtime = info.data.get("runtime")
        if runtime in _HANDLERS and not _HANDLERS[runtime][0].match(value):
            raise ValueError(f"a {runtime} handler is {_HANDLERS[runtime][1]}")
        return value

    @field_validator("maxReplicas")
    @classmethod
    def _max(cls, value: int, info: ValidationInfo) -> int:
        if value < info.data.get("minReplicas", 0):
            raise ValueError("maxReplicas must be at least minReplicas")
        return value

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("endpoint must be an http or https URL")
        return value


@dataclass(frozen=True)
class FunctionSettings:
    url_template: str
    timeout_s: float
    keep_warm_s: float
    cost_per_million_requests: float
    cost_per_gb_second: float


def function_kind(settings: FunctionSettings) -> Kind:
    """Functions are keyed by name; their status follows from where invoke would go."""
    return Kind(
        name="function",
        plural="functions",
        model=FunctionSpec,
        id_prefix="",  # a function's id is its name
        initial_state=lambda spec: {},
        status_of=lambda r: "running" if endpoint_of(r, settings) else "pending",
    )


def endpoint_of(record: Record, settings: FunctionSettings) -> str | None:
    if record.spec.get("endpoint"):
        return str(record.spec["endpoint"])
    if settings.url_template:
        return settings.url_template.replace("{name}", record.id)
    return None


def status_of(record: Record, settings: FunctionSettings, warm: bool) -> dict[str, Any]:
    """Seed 003's `status`: running when invoke has somewhere to go."""
    endpoint = endpoint_of(record, settings)
    replicas = max(record.spec.get("minReplicas", 0), 1 if warm else 0)
    status: dict[str, Any] = {"state": "running" if endpoint else "pending", "replicas": replicas}
    if endpoint:
        status["endpoint"] = endpoint
    status["lastDeployment"] = rfc3339(record.updated_ms)
    return status


class Warmth:
    """When each function last ran: an invocation is cold unless one ran within the
    keep-warm window or the function keeps `minReplicas` replicas always up."""

    def __init__(self, keep_warm_s: float) -> None:
        self.keep_warm_s = keep_warm_s
        self._last: dict[str, float] = {}
        self._last_ms: dict[str, int] = {}
        self._lock = threading.Lock()

    def is_warm(self, name: str, now: float | None = None) -> bool:
        last = self._last.get(name)
        return last is not None and (now or time.monotonic()) - last < self.keep_warm_s

    def begin(self, record: Record) -> bool:
        """True when this invocation is a cold start."""
        now = time.monotonic()
        with self._lock:
            cold = record.spec.get("minReplicas", 0) == 0 and not self.is_warm(record.id, now)
            self._last[record.id] = now
        return cold

    def sample_time(self, name: str) -> int:
        """A millisecond no earlier invocation of `name` has used."""
        with self._lock:
            t = max(now_ms(), self._last_ms.get(name, 0) + 1)
            self._last_ms[name] = t
            return t

    def forget(self, name: str) -> None:
        with self._lock:
            self._last.pop(name, None)


def invocation_sample(name: str, t_ms: int, seconds: float, cold: bool, ok: bool) -> SampleBatch:
    labels = {"__name__": SERIES, "function": name, "cold_start": str(cold).lower(),
              "outcome": "success" if ok else "error"}  # fmt: skip
    return SampleBatch.from_series([labels], [0], [t_ms], [seconds])


def metrics(
    query: Callable[[str], list[tuple[dict[str, str], float]]],
    record: Record,
    timeframe: str,
    settings: FunctionSettings,
) -> dict[str, Any]:
    """Seed 003's function metrics over the last `timeframe` (a PromQL duration)."""
    sel = f'{SERIES}{{function="{record.id}"}}[{timeframe}]'
    invocations = cold = errors = 0
    for labels, value in query(f"sum by (cold_start, outcome) (count_over_time({sel}))"):
        invocations += int(value)
        cold += int(value) if labels.get("cold_start") == "true" else 0
        errors += int(value) if labels.get("outcome") == "error" else 0
    total = query(f"sum(sum_over_time({sel}))")
    seconds = total[0][1] if total else 0.0
    gb_seconds = seconds * record.spec.get("memory_mb", 128) / 1024
    cost = (invocations / 1e6 * settings.cost_per_million_requests
            + gb_seconds * settings.cost_per_gb_second)  # fmt: skip
    return {
        "function": record.id,
        "timeframe": timeframe,
        "invocations": invocations,
        "coldStarts": cold,
        "errors": errors,
        "avgDuration": round(seconds / invocations, 6) if invocations else 0.0,
        "errorRate": round(errors / invocations, 6) if invocations else 0.0,
        "costEstimate": round(cost, 6),
    }


def require_endpoint(record: Record, settings: FunctionSettings) -> str:
    endpoint = endpoint_of(record, settings)
    if endpoint is None:
        raise Conflict(
            f"function {record.id!r} has no endpoint: set its `endpoint` or the "
            "function_url_template setting",
            details={"field": "endpoint"},
        )
    return endpoint
