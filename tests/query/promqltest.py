"""A reader of test files in the spirit of Prometheus's `promqltest` format.

    load 1m
        http_requests{job="api"} 0+10x10 _ 200 stale

    eval instant at 5m rate(http_requests[5m])
        {job="api"} 0.16666666666666666

    eval range from 0 to 10m step 1m sum(http_requests)
        {} 0+10x10

    eval_fail instant at 5m foo / on() bar
        error: multiple matches

    eval_ordered instant at 5m sort_desc(x)
        ...

`load` series values: `a+bxn` (n+1 values), `a-bxn`, `axn` (a, n+1 times),
`_` (no sample), `_xn` (n missing), `stale` (a staleness marker), numbers,
NaN, Inf. Expected range values use the same notation, `_` for no point.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import promql_parser as pp

from hakon.query.values import STALE_NAN_BITS
from hakon.store.labels import METRIC_NAME

STALE = np.array([STALE_NAN_BITS], dtype=np.uint64).view(np.float64)[0]
MISSING = object()


def parse_duration(text: str) -> int:
    if text == "0":
        return 0
    units = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
    total = 0
    pos = 0
    for m in re.finditer(r"(\d+)(ms|s|m|h|d|w)", text):
        if m.start() != pos:
            raise ValueError(f"bad duration {text!r}")
        total += int(m.group(1)) * units[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"bad duration {text!r}")
    return total


def parse_labels(text: str) -> dict[str, str]:
    """`name{a="b"}` or `{a="b"}` via the PromQL parser (so escapes match PromQL's)."""
    text = text.strip()
    if text == "{}":
        return {}
    expr = pp.parse(text)
    out = {m.name: m.value for m in expr.matchers.matchers}
    if expr.name:
        out[METRIC_NAME] = expr.name
    return out


def _number(token: str) -> float:
    lowered = token.lower()
    if lowered in ("inf", "+inf"):
        return float("inf")
    if lowered == "-inf":
        return float("-inf")
    if lowered == "nan":
        return float("nan")
    return float(token)


def expand_values(tokens: list[str]) -> list[object]:
    out: list[object] = []
    for token in tokens:
        if token == "stale":
            out.append(STALE)
            continue
        if token == "_":
            out.append(MISSING)
            continue
        m = re.fullmatch(r"_x(\d+)", token)
        if m:
            out.extend([MISSING] * int(m.group(1)))
            continue
        m = re.fullmatch(r"(-?[\d.]+(?:[eE][+-]?\d+)?|-?Inf|NaN)([+-][\d.]+)?x(\d+)", token)
        if m:
            start = _number(m.group(1))
            delta = float(m.group(2)) if m.group(2) else 0.0
            for i in range(int(m.group(3)) + 1):
                out.append(start + delta * i)
            continue
        out.append(_number(token))
    return out


def split_series_line(line: str) -> tuple[str, list[str]]:
    """Split `name{a="b c"} 1 2 3` into the label part and the value tokens."""
    line = line.strip()
    if "}" in line:
        end = line.rindex("}") + 1
        return line[:end], line[end:].split()
    head, *rest = line.split()
    return head, rest


@dataclass
class Load:
    interval_ms: int
    series: list[tuple[dict[str, str], list[object]]]


@dataclass
class Eval:
    line_no: int
    expr: str
    instant: bool
    at_ms: int = 0
    start_ms: int = 0
    end_ms: int = 0
    step_ms: int = 0
    fail: bool = False
    ordered: bool = False
    error: str | None = None
    expected: list[tuple[dict[str, str], list[object]]] = field(default_factory=list)
    scalar: float | None = None


Command = Load | Eval | str  # "clear"


def parse_file(text: str) -> list[Command]:
    commands: list[Command] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        raw = lines[i]
        line = raw.strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        body: list[str] = []
        while i < len(lines) and lines[i].startswith((" ", "\t")) and lines[i].strip():
            if not lines[i].strip().startswith("#"):
                body.append(lines[i].strip())
            i += 1
        if line == "clear":
            commands.append("clear")
        elif line.startswith("load "):
            interval = parse_duration(line.split()[1])
            series = []
            for b in body:
                labels, tokens = split_series_line(b)
                series.append((parse_labels(labels), expand_values(tokens)))
            commands.append(Load(interval, series))
        elif line.startswith("eval"):
            commands.append(_parse_eval(line, body, i))
        else:
            raise ValueError(f"line {i}: unknown command {line!r}")
    return commands


def _parse_eval(line: str, body: list[str], line_no: int) -> Eval:
    m = re.match(r"^(eval|eval_fail|eval_ordered) instant at (\S+) (.+)$", line)
    if m:
        ev = Eval(line_no, m.group(3), True, at_ms=parse_duration(m.group(2)))
    else:
        m = re.match(r"^(eval|eval_fail) range from (\S+) to (\S+) step (\S+) (.+)$", line)
        if not m:
            raise ValueError(f"line {line_no}: cannot parse {line!r}")
        ev = Eval(
            line_no,
            m.group(5),
            False,
            start_ms=parse_duration(m.group(2)),
            end_ms=parse_duration(m.group(3)),
            step_ms=parse_duration(m.group(4)),
        )
    ev.fail = m.group(1) == "eval_fail"
    ev.ordered = m.group(1) == "eval_ordered"
    for b in body:
        if b.startswith("error:"):
            ev.error = b[len("error:") :].strip()
            continue
        try:
            ev.scalar = _number(b)
            continue
        except ValueError:
            pass
        labels, tokens = split_series_line(b)
        ev.expected.append((parse_labels(labels), expand_values(tokens)))
    return ev
