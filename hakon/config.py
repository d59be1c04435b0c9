"""The one settings object.

Every setting is declared once, as a field of `Settings` with its help text and
parser in the field metadata. That single table drives the `hakon serve` flags,
the `HAKON_*` environment variables, `--help`, and the settings table in the
README (a test keeps the README in step with it).

Precedence: command-line flag > environment variable > default. The
environment is passed in as a mapping so tests never touch `os.environ`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

ENV_PREFIX = "HAKON_"

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w|y)?\s*$")
_DURATION_UNITS = {
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 7 * 86400,
    "y": 365 * 86400,
}


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names it and its sources."""


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``90s``, ``5m``, ``24h``, ``15d``; a bare number is seconds."""
    if isinstance(text, int | float):
        return float(text)
    m = _DURATION_RE.match(str(text))
    if not m:
        raise ValueError("expected a duration such as 30s, 5m, 24h or 15d")
    return float(m.group(1)) * _DURATION_UNITS[m.group(2) or "s"]


def format_duration(seconds: float) -> str:
    for unit in ("y", "w", "d", "h", "m", "s"):
        size = _DURATION_UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _parse_bool(text: str) -> bool:
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


def _int_between(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(str(text).strip())
        except ValueError:
            raise ValueError(f"expected an integer between {lo} and {hi}") from None
        if not lo <= value <= hi:
            raise ValueError(f"expected an integer between {lo} and {hi}")
        return value

    return parse


def _non_negative_float(text: str) -> float:
    try:
        value = float(str(text).strip())
    except ValueError:
        raise ValueError("expected a non-negative number") from None
    if not value >= 0 or value == float("inf"):
        raise ValueError("expected a non-negative number")
    return value


def _positive_duration(text: str) -> float:
    value = parse_duration(text)
    if value <= 0:
        raise ValueError("expected a positive duration")
    return value


def _non_negative_float_duration(text: str) -> float:
    value = parse_duration(text)
    if value < 0:
        raise ValueError("expected a duration of zero or more")
    return value


def _path_list(text: Any) -> tuple[str, ...]:
    """Paths or globs: a repeated flag's values, or one comma-separated string."""
    items = text if isinstance(text, list | tuple) else [text]
    return tuple(p.strip() for item in items for p in str(item).split(",") if p.strip())


def _choice(*options: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = str(text).strip().lower()
        if value not in options:
            raise ValueError("expected one of " + ", ".join(options))
        return value

    return parse


def _secret(text: str) -> str:
    value = str(text)
    if value and len(value) < 32:
        raise ValueError("expected at least 32 characters (or empty to use the data dir's secret)")
    return value


def _url_template(text: str) -> str:
    value = text.strip()
    if value and not value.startswith(("http://", "https://")):
        raise ValueError("must be an http or https URL")
    return value


def _setting(default: Any, parse: Callable[[str], Any], help: str, **extra: Any) -> Any:
    return field(default=default, metadata={"parse": parse, "help": help, **extra})


@dataclass(frozen=True)
class Settings:
    """Everything `hakon serve` can be told. Frozen: built once, validated once."""

    host: str = _setting("127.0.0.1", str, "Address to listen on.")
    port: int = _setting(9420, _int_between(1, 65535), "TCP port to listen on.")
    data_dir: Path = _setting(
        Path("hakon-data"),
        lambda s: Path(str(s)).expanduser(),
        "Directory holding the signing secret, the catalog, the WAL and blocks.",
    )
    log_level: str = _setting("info", _choice("debug", "info", "warning", "error"), "Log level.")
    auth_secret: str = _setting(
        "",
        _secret,
        "HS256 signing secret for tokens (32+ chars). Empty: use (and on first "
        "start create) `secret.key` in the data dir.",
        secret=True,
    )
    no_auth: bool = _setting(
        False,
        _parse_bool,
        "Serve without authentication, for local trials only; refused unless the "
        "host is a loopback address.",
    )
    metrics_require_auth: bool = _setting(
        False, _parse_bool, "Require a token with `metrics:read` for `/metrics`."
    )
    token_default_ttl: float = _setting(
        parse_duration("24h"), _positive_duration, "Lifetime of a token when none is asked for."
    )
    token_max_ttl: float = _setting(
        parse_duration("365d"), _positive_duration, "Longest lifetime a token may be given."
    )
    bootstrap_token_ttl: float = _setting(
        parse_duration("30d"),
        _positive_duration,
        "Lifetime of the admin token printed on first start.",
    )
    rate_limit_rps: float = _setting(
        100.0,
        _non_negative_float,
        "Requests per second refilled per token subject (0 disables rate limiting).",
    )
    rate_limit_burst: int = _setting(
        200, _int_between(1, 10**9), "Bucket size: requests a subject may send at once."
    )
    ingest_rate_limit_rps: float = _setting(
        1000.0,
        _non_negative_float,
        "Ingest requests per second per token subject, a bucket of its own (0 disables).",
    )
    ingest_rate_limit_burst: int = _setting(
        2000, _int_between(1, 10**9), "Ingest bucket size per token subject."
    )
    shutdown_timeout: float = _setting(
        parse_duration("5s"),
        _positive_duration,
        "How long SIGINT/SIGTERM waits for in-flight requests before closing.",
    )

    block_duration: float = _setting(
        parse_duration("2h"),
        _positive_duration,
        "Time span of one block partition; a whole number of hours.",
    )
    head_max_samples: int = _setting(
        20_000_000,
        _int_between(1000, 10**10),
        "Flush the in-memory head to blocks once it holds this many samples.",
    )
    head_max_age: float = _setting(
        parse_duration("30m"),
        _positive_duration,
        "Flush the head to blocks at the latest this long after its first sample.",
    )
    wal_segment_bytes: int = _setting(
        128 << 20, _int_between(1 << 20, 1 << 40), "Size at which a WAL segment file is closed."
    )
    retention_raw: float = _setting(
        parse_duration("15d"), _positive_duration, "How long raw samples are kept."
    )
    retention_5m: float = _setting(
        parse_duration("90d"), _positive_duration, "How long 5-minute rollups are kept."
    )
    retention_1h: float = _setting(
        parse_duration("400d"), _positive_duration, "How long 1-hour rollups are kept."
    )
    max_future: float = _setting(
        parse_duration("10m"),
        _positive_duration,
        "Samples more than this far ahead of the server clock are refused.",
    )
    block_row_group_rows: int = _setting(
        8192,
        _int_between(1024, 1 << 20),
        "Rows per Parquet row group: the unit a selective read decodes.",
    )
    compaction_min_blocks: int = _setting(
        4,
        _int_between(2, 1000),
        "Merge this many blocks of alike size in an open partition into one (a closed "
        "partition is merged whole).",
    )
    compaction_max_rows: int = _setting(
        64_000_000,
        _int_between(1_000_000, 1 << 40),
        "Most samples one merge rewrites: a merge holds them in memory (24 bytes each, "
        "about twice that at its peak); blocks past it stay apart and reads merge them.",
    )
    block_writer_min_rows: int = _setting(
        100_000,
        _int_between(0, 1 << 40),
        "Flushes and merges of at least this many samples run in a child process, so "
        "their CPU and memory stay off the server's (0: always; a child costs ~0.3 s to start).",
    )

    api_max_body_bytes: int = _setting(
        4 << 20,
        _int_between(1024, 1 << 30),
        "Largest JSON body of an API (non-ingest) route; larger bodies get 413.",
    )
    ingest_max_body_bytes: int = _setting(
        32 << 20,
        _int_between(1024, 1 << 34),
        "Largest ingest request body on the wire; larger bodies get 413.",
    )
    ingest_max_decoded_bytes: int = _setting(
        128 << 20,
        _int_between(1024, 1 << 36),
        "Largest ingest body after gzip/snappy decompression; larger ones get 413.",
    )
    ingest_max_samples: int = _setting(
        2_000_000, _int_between(1, 10**9), "Most samples one ingest request may carry."
    )
    ingest_max_labels: int = _setting(
        64, _int_between(2, 10_000), "Most labels (the metric name included) per series."
    )
    ingest_max_label_name_length: int = _setting(
        256, _int_between(8, 1 << 20), "Longest label name, in characters."
    )
    ingest_max_label_value_length: int = _setting(
        4096, _int_between(8, 1 << 24), "Longest label value, in characters."
    )
    ingest_max_pending_samples: int = _setting(
        16_000_000,
        _int_between(1000, 10**10),
        "Samples accepted but not yet durable, across all requests; past it ingest "
        "answers 503 with Retry-After so senders back off.",
    )
    ingest_body_timeout: float = _setting(
        parse_duration("30s"),
        _positive_duration,
        "Longest an ingest request may take to send its body (a slow sender holds a "
        "request slot); past it the request gets 408.",
    )
    ingest_max_concurrent_requests: int = _setting(
        32,
        _int_between(1, 100_000),
        "Ingest requests served at once; past it ingest answers 503 with Retry-After "
        "before reading the body, so overload costs neither memory nor latency.",
    )
    ingest_decode_processes: int = _setting(
        -1,
        _int_between(-1, 64),
        "Worker processes that decode large ingest bodies beside the server process "
        "(-1: one per core but one; 0: decode in the server process).",
    )
    ingest_series_cache_size: int = _setting(
        2_000_000,
        _int_between(1000, 10**9),
        "Label sets whose series ids the ingest path remembers (per format).",
    )
    malloc_keep_bytes: int = _setting(
        512 << 20,
        _int_between(0, 1 << 40),
        "Arrays up to this size are taken from and freed back to the heap instead of "
        "fresh mappings: big queries skip page faults, at the price of heap that can "
        "fragment (glibc only; 0 keeps glibc's own thresholds).",
    )
    malloc_arenas: int = _setting(
        2,
        _int_between(0, 1024),
        "glibc malloc arenas the server's threads share; each keeps its own freed heap, "
        "so fewer arenas keep less memory resident (glibc only; 0: glibc's default, "
        "8 per core).",
    )
    block_cache_size: int = _setting(
        256 << 20,
        _int_between(0, 1 << 40),
        "Bytes of decoded block row groups kept in memory: rollups for long-range "
        "reads (native endpoints over days or months) and raw row groups of small "
        "reads (one dashboard series); 0 disables the cache.",
    )
    block_cache_idle: float = _setting(
        parse_duration("5m"),
        _non_negative_float_duration,
        "Row groups not read for this long leave the block cache, so it holds what "
        "dashboards read now rather than filling up to its size (0: only the size "
        "bounds it).",
    )
    rules: tuple[str, ...] = _setting(
        (),
        _path_list,
        "Prometheus rule files (globs) to load and evaluate; repeat the flag or separate "
        "with commas. Reloaded on SIGHUP and POST /api/v1/admin/reload.",
        repeatable=True,
    )
    alertmanager_url: tuple[str, ...] = _setting(
        (),
        _path_list,
        "Alertmanagers to push alerts to (their base URL, e.g. http://am:9093); repeat "
        "the flag or separate with commas. Firing alerts are resent every minute.",
        repeatable=True,
    )
    alert_group_by: tuple[str, ...] = _setting(
        ("alertname",),
        _path_list,
        "Labels that group alerts into one webhook notification (comma-separated).",
    )
    alert_repeat_interval: float = _setting(
        parse_duration("4h"),
        _positive_duration,
        "How often a still-firing alert is announced to webhooks again.",
    )
    webhook_allow_private: bool = _setting(
        True,
        _parse_bool,
        "Whether webhook URLs may point at private or loopback addresses (receivers "
        "often run beside Hakon; turn off when untrusted users register webhooks).",
    )
    webhook_give_up: float = _setting(
        parse_duration("1h"),
        _positive_duration,
        "How long a webhook delivery is retried (network errors, 5xx, 429; exponential "
        "backoff with jitter) before it is recorded as failed.",
    )
    node_offline_after: float = _setting(
        parse_duration("3m"),
        _positive_duration,
        "A registered node whose last heartbeat (status report or edge metrics) is older "
        "than this becomes offline and emits node.offline.",
    )
    function_url_template: str = _setting(
        "",
        _url_template,
        "Where invoke sends a function without an `endpoint` of its own: a URL in which "
        "{name} is replaced by the function's name (e.g. http://{name}.fn.svc:8080/).",
    )
    function_timeout: float = _setting(
        parse_duration("30s"),
        _positive_duration,
        "How long invoke waits for a function that sets no `timeout` of its own.",
    )
    function_keep_warm: float = _setting(
        parse_duration("5m"),
        _positive_duration,
        "An invocation is a cold start unless the function ran within this window (or "
        "keeps minReplicas >= 1).",
    )
    function_cost_per_million_requests: float = _setting(
        0.20, _non_negative_float, "Cost model: price of one million invocations."
    )
    function_cost_per_gb_second: float = _setting(
        0.0000166667,
        _non_negative_float,
        "Cost model: price of one GB-second (duration x the function's memory_mb / 1024).",
    )
    query_lookback_delta: float = _setting(
        parse_duration("5m"),
        _positive_duration,
        "How far back an instant vector selector looks for a series' latest sample; "
        "a series silent for longer drops out of results (Prometheus's lookback delta).",
    )
    query_timeout: float = _setting(
        parse_duration("2m"),
        _positive_duration,
        "Longest a query may run; past it the query fails with 503 (errorType timeout). "
        "A request's own `timeout` parameter can only shorten it.",
    )
    query_max_series: int = _setting(
        1_000_000,
        _int_between(1, 10**9),
        "Series one selector of a query may select; more is a 422 naming the limit.",
    )
    query_max_samples: int = _setting(
        100_000_000,
        _int_between(1, 10**10),
        "Raw samples one selector of a query may read; more is a 422 naming the limit.",
    )
    query_max_points: int = _setting(
        100_000_000,
        _int_between(1, 10**10),
        "Series x steps any intermediate result of a query may hold (bounds its memory).",
    )
    query_rollup_min_span: float = _setting(
        parse_duration("7d"),
        _non_negative_float_duration,
        "PromQL queries spanning at least this long answer avg/min/max/sum/count/last/"
        "present_over_time from 5 m or 1 h rollups when range, step and times align "
        "(docs/query.md: exact but for samples on bucket boundaries); 0 never does.",
    )
    query_max_concurrency: int = _setting(
        -1,
        _int_between(-1, 1024),
        "Queries evaluated at once; further queries wait for a slot until their timeout. "
        "-1: one per core but one (at least one), so queries never take every core "
        "from ingest.",
    )

    @classmethod
    def load(
        cls, flags: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
    ) -> Settings:
        """Build settings from flags (already parsed, None = not given) and environment."""
        flags = flags or {}
        env = env or {}
        values: dict[str, Any] = {}
        for f in fields(cls):
            parse = f.metadata["parse"]
            env_name = ENV_PREFIX + f.name.upper()
            if flags.get(f.name) is not None:
                raw, source = flags[f.name], "--" + f.name.replace("_", "-")
            elif env_name in env:
                raw, source = env[env_name], env_name
            else:
                continue
            try:
                values[f.name] = parse(raw)
            except ValueError as exc:
                shown = "***" if f.metadata.get("secret") else repr(str(raw))
                raise SettingsError(
                    f"invalid value {shown} for {f.name} ({source}): {exc}"
                ) from None
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Rules that span more than one setting."""
        if self.no_auth and not is_loopback(self.host):
            raise SettingsError(
                f"no_auth is refused with host {self.host!r}: serving without "
                "authentication is allowed on a loopback address only"
            )
        if self.token_default_ttl > self.token_max_ttl:
            raise SettingsError("token_default_ttl must not exceed token_max_ttl")
        if self.block_duration % 3600:
            raise SettingsError("block_duration must be a whole number of hours")
        if self.bootstrap_token_ttl > self.token_max_ttl:
            raise SettingsError("bootstrap_token_ttl must not exceed token_max_ttl")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def setting_fields() -> list[Any]:
    return list(fields(Settings))


def _default_text(f: Any) -> str:
    default: Any = f.default if f.default is not MISSING else None
    if f.metadata.get("secret"):
        return "(empty)" if not default else "***"
    if f.metadata["parse"] in (_positive_duration,):
        return format_duration(float(default))
    if isinstance(default, bool):
        return "true" if default else "false"
    if default == "" or default == ():
        return "(empty)"
    return str(default)


def markdown_table() -> str:
    """The settings table for the README and docs/configuration.md."""
    lines = [
        "| setting | flag | environment | default | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for f in fields(Settings):
        flag = "--" + f.name.replace("_", "-")
        lines.append(
            f"| `{f.name}` | `{flag}` | `{ENV_PREFIX}{f.name.upper()}` | "
            f"`{_default_text(f)}` | {f.metadata['help']} |"
        )
    return "\n".join(lines) + "\n"


def flag_help(f: Any) -> str:
    return f"{f.metadata['help']} [env {ENV_PREFIX}{f.name.upper()}; default {_default_text(f)}]"
