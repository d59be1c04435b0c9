"""InfluxDB line protocol, as VictoriaMetrics maps it onto Prometheus series.

    measurement[,tag=value...] field=value[,field=value...] [timestamp]

Each numeric field becomes series `<measurement>_<field>` with the tags as
labels (and `db` from the `db`/`bucket` parameter). Integers (`1i`, `1u`),
floats and booleans (1/0) are stored; string fields are skipped, as
VictoriaMetrics does. Names are mapped onto Prometheus's alphabet (other
characters become `_`). Timestamps are in `precision` units (default ns).
"""

from __future__ import annotations

import math
from collections.abc import Hashable

from hakon.errors import InvalidRequest
from hakon.ingest.limits import IngestLimits, sanitize_label_name, sanitize_name
from hakon.ingest.series import SeriesRegistry
from hakon.ingest.textlines import LineSamples, text_lines
from hakon.store.interface import SampleBatch

# precision -> divisor to milliseconds (None: multiply)
_PRECISION = {
    "ns": 1_000_000,
    "n": 1_000_000,
    "us": 1_000,
    "u": 1_000,
    "µ": 1_000,
    "ms": 1,
    "s": -1_000,
    "m": -60_000,
    "h": -3_600_000,
}
_BOOLS = {"t": 1.0, "true": 1.0, "f": 0.0, "false": 0.0}


def precision_factor(precision: str) -> int:
    factor = _PRECISION.get(precision.strip() or "ns")
    if factor is None:
        raise InvalidRequest(
            f"precision {precision!r} is not one of ns, us, ms, s, m, h", field="precision"
        )
    return factor


def _split_unescaped(text: str, sep: str) -> list[str]:
    """Split on `sep` not preceded by a backslash and not inside double quotes."""
    if "\\" not in text and '"' not in text:
        return text.split(sep)
    parts, start, i, quoted = [], 0, 0, False
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif ch == sep and not quoted:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in ' ,="\\':
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


class InfluxDecoder:
    def __init__(self, limits: IngestLimits) -> None:
        self.limits = limits
        self.registry = SeriesRegistry(limits)

    def decode(self, body: bytes, precision: str, db: str, now_ms: int) -> SampleBatch:
        factor = precision_factor(precision)
        out = LineSamples(self.registry)
        for number, raw in enumerate(text_lines(body), 1):
            line = raw.strip()
            if not line or line[0] == "#":
                continue
            where = f"line {number}"
            sections = [s for s in _split_unescaped(line, " ") if s]
            if len(sections) not in (2, 3):
                raise InvalidRequest(
                    f"{where}: expected 'measurement[,tags] fields [timestamp]'", field=where
                )
            ts_ms = self._timestamp(sections[2], factor, where) if len(sections) == 3 else now_ms
            head = _split_unescaped(sections[0], ",")
            measurement = _unescape(head[0])
            if not measurement:
                raise InvalidRequest(f"{where}: empty measurement name", field=where)
            tags: dict[str, str] = {"db": db} if db else {}
            for tag in head[1:]:
                kv = _split_unescaped(tag, "=")
                if len(kv) != 2 or not kv[0]:
                    raise InvalidRequest(f"{where}: malformed tag {tag[:80]!r}", field=where)
                tags[sanitize_label_name(_unescape(kv[0]))] = _unescape(kv[1])
            fields = _split_unescaped(sections[1], ",")
            for field in fields:
                kv = _split_unescaped(field, "=")
                if len(kv) != 2 or not kv[0] or not kv[1]:
                    raise InvalidRequest(f"{where}: malformed field {field[:80]!r}", field=where)
                value = self._value(kv[1], where)
                if value is None:
                    continue  # a string field
                fname = _unescape(kv[0])
                key: Hashable = (sections[0], fname, db)
                sid = self.registry.ids.get(key)
                if sid is None:
                    labels = {**tags, "__name__": sanitize_name(f"{measurement}_{fname}")}
                    sid = self.registry.register(labels, where, key)
                out.add(sid, ts_ms, value, number)
        return out.batch()

    @staticmethod
    def _timestamp(text: str, factor: int, where: str) -> int:
        try:
            raw = int(text)
        except ValueError:
            raise InvalidRequest(
                f"{where}: timestamp {text[:40]!r} is not an integer", field=where
            ) from None
        if abs(raw) > 1 << 62:
            raise InvalidRequest(f"{where}: timestamp {text[:40]} is out of range", field=where)
        return raw // factor if factor > 0 else raw * -factor

    @staticmethod
    def _value(text: str, where: str) -> float | None:
        if text[0] == '"':
            if len(text) < 2 or text[-1] != '"':
                raise InvalidRequest(f"{where}: unterminated string field", field=where)
            return None
        last = text[-1]
        try:
            if last in "iu":
                number = int(text[:-1])
                if last == "u" and number < 0:
                    raise ValueError
                return float(number)
            lowered = text.lower()
            if lowered in _BOOLS:
                return _BOOLS[lowered]
            value = float(text)
        except ValueError:
            raise InvalidRequest(
                f"{where}: field value {text[:40]!r} is not a number, boolean or string",
                field=where,
            ) from None
        if not math.isfinite(value):
            raise InvalidRequest(f"{where}: field value {text!r} is not finite", field=where)
        return value
