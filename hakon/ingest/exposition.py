"""Prometheus text exposition format 0.0.4 and OpenMetrics 1.0 text.

    # HELP / # TYPE / # UNIT lines and other comments are skipped; `# EOF` ends
    an OpenMetrics body.
    name{label="value",...} value [timestamp] [# exemplar]

Timestamps are integer milliseconds in the Prometheus format and (possibly
fractional) seconds in OpenMetrics. Lines without a timestamp take the
request's default. A line's name and label text is the cache key of its
series, so a body repeated every scrape parses its labels once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable

from hakon.errors import InvalidRequest
from hakon.ingest.limits import IngestLimits
from hakon.ingest.series import SeriesRegistry
from hakon.ingest.textlines import LineSamples, text_lines
from hakon.store.interface import SampleBatch

_NAME = re.compile(r"[ \t]*([a-zA-Z_:][a-zA-Z0-9_:]*)")
_LABEL = re.compile(r'[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"((?:[^"\\\n]|\\.)*)"[ \t]*(,?)')
_LABELS_END = re.compile(r"[ \t]*\}")
_ESCAPE = re.compile(r"\\(.)")
_UNESCAPE = {"\\": "\\", '"': '"', "n": "\n"}
_SPECIAL = {"nan": math.nan, "+inf": math.inf, "inf": math.inf, "-inf": -math.inf}


def _unescape(value: str, line: int) -> str:
    def one(m: re.Match[str]) -> str:
        ch = m.group(1)
        if ch not in _UNESCAPE:
            raise InvalidRequest(
                f"line {line}: invalid escape '\\{ch}' in a label value", field=f"line {line}"
            )
        return _UNESCAPE[ch]

    return _ESCAPE.sub(one, value) if "\\" in value else value


def _float(text: str, line: int, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        special = _SPECIAL.get(text.lower())
        if special is None:
            raise InvalidRequest(
                f"line {line}: {what} {text[:50]!r} is not a number", field=f"line {line}"
            ) from None
        return special


class ExpositionDecoder:
    def __init__(self, limits: IngestLimits) -> None:
        self.limits = limits
        self.registry = SeriesRegistry(limits)

    def decode(self, body: bytes, default_ts_ms: int, openmetrics: bool = False) -> SampleBatch:
        out = LineSamples(self.registry)
        registry = self.registry
        for number, raw in enumerate(text_lines(body), 1):
            line = raw.rstrip("\r")
            stripped = line.lstrip(" \t")
            if not stripped:
                continue
            if stripped[0] == "#":
                if openmetrics and stripped.rstrip() == "# EOF":
                    break
                continue
            key, name, labels, rest = self._split(line, number)
            sid = registry.ids.get(key)
            if sid is None:
                sid = registry.register({**labels, "__name__": name}, f"line {number}", key)
            parts = rest.split("#", 1)[0].split()
            if not parts or len(parts) > 2:
                raise InvalidRequest(
                    f"line {number}: expected a value and an optional timestamp after the "
                    f"series, got {rest.strip()[:80]!r}",
                    field=f"line {number}",
                )
            value = _float(parts[0], number, "value")
            ts_ms = default_ts_ms
            if len(parts) == 2:
                ts = _float(parts[1], number, "timestamp")
                if not math.isfinite(ts):
                    raise InvalidRequest(
                        f"line {number}: timestamp must be finite", field=f"line {number}"
                    )
                ts_ms = round(ts * 1000) if openmetrics else int(ts)
            out.add(sid, ts_ms, value, number)
        return out.batch()

    @staticmethod
    def _split(line: str, number: int) -> tuple[Hashable, str, dict[str, str], str]:
        m = _NAME.match(line)
        if m is None:
            raise InvalidRequest(
                f"line {number}: expected a metric name, got {line.strip()[:80]!r}",
                field=f"line {number}",
            )
        name = m.group(1)
        pos = m.end()
        labels: dict[str, str] = {}
        if pos < len(line) and line[pos] == "{":
            pos += 1
            while True:
                end = _LABELS_END.match(line, pos)
                if end is not None:
                    pos = end.end()
                    break
                lm = _LABEL.match(line, pos)
                if lm is None:
                    raise InvalidRequest(
                        f"line {number}: malformed label set near column {pos + 1}",
                        field=f"line {number}",
                    )
                label = lm.group(1)
                if label in labels:
                    raise InvalidRequest(
                        f"line {number}: duplicate label name {label!r}", field=f"line {number}"
                    )
                labels[label] = _unescape(lm.group(2), number)
                pos = lm.end()
                if not lm.group(3) and _LABELS_END.match(line, pos) is None:
                    raise InvalidRequest(
                        f"line {number}: expected ',' or '}}' near column {pos + 1}",
                        field=f"line {number}",
                    )
        rest = line[pos:]
        if rest[:1] not in (" ", "\t"):
            raise InvalidRequest(
                f"line {number}: expected whitespace and a value after the series",
                field=f"line {number}",
            )
        return line[:pos], name, labels, rest
