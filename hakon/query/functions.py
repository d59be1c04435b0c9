"""Functions of instant vectors and scalars: math, clamping, dates, labels, histograms."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from hakon.errors import InvalidRequest
from hakon.query.values import Vector, drop_name, merge_same_labels
from hakon.store.labels import METRIC_NAME, Labels
from hakon.store.regex import Regex, RegexError

LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _ignore(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    def wrapped(v: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return fn(v)

    return wrapped


MATH: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    name: _ignore(fn)
    for name, fn in {
        "abs": np.abs,
        "ceil": np.ceil,
        "floor": np.floor,
        "sqrt": np.sqrt,
        "exp": np.exp,
        "ln": np.log,
        "log2": np.log2,
        "log10": np.log10,
        "sgn": np.sign,
        "acos": np.arccos,
        "acosh": np.arccosh,
        "asin": np.arcsin,
        "asinh": np.arcsinh,
        "atan": np.arctan,
        "atanh": np.arctanh,
        "cos": np.cos,
        "cosh": np.cosh,
        "sin": np.sin,
        "sinh": np.sinh,
        "tan": np.tan,
        "tanh": np.tanh,
        "deg": np.degrees,
        "rad": np.radians,
    }.items()
}


def apply_math(name: str, vector: Vector) -> Vector:
    return with_values(vector, MATH[name](vector.values))


def with_values(vector: Vector, values: np.ndarray, present: np.ndarray | None = None) -> Vector:
    """Same series, new values, metric names dropped (as every math function does)."""
    p = vector.present if present is None else present
    return merge_same_labels(Vector([drop_name(ls) for ls in vector.labels], values, p))


def round_to(vector: Vector, to_nearest: np.ndarray) -> Vector:
    inverse = 1.0 / to_nearest[None, :]
    with np.errstate(all="ignore"):
        return with_values(vector, np.floor(vector.values * inverse + 0.5) / inverse)


def clamp(vector: Vector, low: np.ndarray | None, high: np.ndarray | None) -> Vector:
    values = vector.values
    present = vector.present
    with np.errstate(invalid="ignore"):
        if high is not None:
            values = np.minimum(values, high[None, :])
        if low is not None:
            values = np.maximum(values, low[None, :])
        if low is not None and high is not None:
            present = present & ~(high < low)[None, :]  # an empty range yields nothing
    return with_values(vector, values, present)


# -- dates (UTC, from Unix seconds) --------------------------------------------------


def _civil(seconds: np.ndarray) -> tuple[np.ndarray, ...]:
    secs = np.trunc(np.nan_to_num(seconds, nan=0.0, posinf=0.0, neginf=0.0)).astype(np.int64)
    days = np.floor_divide(secs, 86_400)
    d = days.astype("datetime64[D]")
    years = d.astype("datetime64[Y]")
    months = d.astype("datetime64[M]")
    return secs, days, d, years, months


def date_function(name: str, seconds: np.ndarray) -> np.ndarray:
    secs, days, d, years, months = _civil(seconds)
    if name == "year":
        out = years.astype(np.int64) + 1970
    elif name == "month":
        out = months.astype(np.int64) % 12 + 1
    elif name == "day_of_month":
        out = (d - months.astype("datetime64[D]")).astype(np.int64) + 1
    elif name == "day_of_year":
        out = (d - years.astype("datetime64[D]")).astype(np.int64) + 1
    elif name == "day_of_week":
        out = (days + 4) % 7  # 1970-01-01 was a Thursday
    elif name == "days_in_month":
        out = ((months + 1).astype("datetime64[D]") - months.astype("datetime64[D]")).astype(
            np.int64
        )
    elif name == "hour":
        out = np.floor_divide(secs, 3600) % 24
    elif name == "minute":
        out = np.floor_divide(secs, 60) % 60
    else:  # pragma: no cover - the engine dispatches known names only
        raise KeyError(name)
    result = out.astype(np.float64)
    return np.where(np.isfinite(seconds), result, np.nan)


DATE_FUNCTIONS = {
    "year",
    "month",
    "day_of_month",
    "day_of_year",
    "day_of_week",
    "days_in_month",
    "hour",
    "minute",
}


# -- labels ---------------------------------------------------------------------------


def _go_expand(template: str, match: Any) -> str:
    """Go's Regexp.Expand: `$1`, `${1}`, `$name`, `${name}`, `$$`; unknown groups are empty."""
    out = []
    i = 0
    while i < len(template):
        c = template[i]
        if c != "$" or i + 1 == len(template):
            out.append(c)
            i += 1
            continue
        nxt = template[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
            continue
        if nxt == "{":
            close = template.find("}", i + 2)
            name = template[i + 2 : close] if close > 0 else ""
            if close < 0 or not re.fullmatch(r"[A-Za-z0-9_]+", name):
                out.append(c)
                i += 1
                continue
            i = close + 1
        else:
            m = re.match(r"[A-Za-z0-9_]+", template[i + 1 :])
            if not m:
                out.append(c)
                i += 1
                continue
            name = m.group(0)
            i += 1 + len(name)
        out.append(_group(match, name))
    return "".join(out)


def _group(match: Any, name: str) -> str:
    try:
        value = match.group(int(name)) if name.isdigit() else match.group(name)
    except (IndexError, KeyError):  # no such group: Go expands it to nothing
        return ""
    return value or ""


def compile_regex(pattern: str, field: str) -> Regex:
    try:
        return Regex(pattern)
    except RegexError as exc:
        raise InvalidRequest(str(exc), field=field) from None


def label_replace(vector: Vector, dst: str, replacement: str, src: str, pattern: str) -> Vector:
    _check_destination("label_replace", dst)
    regex = compile_regex(pattern, "query")
    labels: list[Labels] = []
    for ls in vector.labels:
        as_dict = dict(ls)
        m = regex.fullmatch(as_dict.get(src, ""))
        if m is None:
            labels.append(ls)
            continue
        labels.append(_with_label(as_dict, dst, _go_expand(replacement, m)))
    return merge_same_labels(Vector(labels, vector.values, vector.present))


def label_join(vector: Vector, dst: str, sep: str, sources: list[str]) -> Vector:
    _check_destination("label_join", dst)
    labels: list[Labels] = []
    for ls in vector.labels:
        as_dict = dict(ls)
        labels.append(_with_label(as_dict, dst, sep.join(as_dict.get(s, "") for s in sources)))
    return merge_same_labels(Vector(labels, vector.values, vector.present))


def _with_label(labels: dict[str, str], name: str, value: str) -> Labels:
    """The label set with `name` set to `value`, or removed when `value` is empty."""
    if value:
        labels[name] = value
    else:
        labels.pop(name, None)
    return tuple(sorted(labels.items()))


def _check_destination(function: str, dst: str) -> None:
    if not LABEL_NAME.match(dst) and dst != METRIC_NAME:
        raise InvalidRequest(
            f"invalid destination label name in {function}(): {dst}", field="query"
        )


# -- histograms -----------------------------------------------------------------------


def histogram_quantile(q: np.ndarray, vector: Vector) -> Vector:
    """Classic-bucket quantiles, as Prometheus's `BucketQuantile` computes them."""
    steps = vector.values.shape[1]
    groups: dict[Labels, list[tuple[float, int]]] = {}
    for i, ls in enumerate(vector.labels):
        le = None
        rest = []
        for k, v in ls:
            if k == "le":
                le = v
            elif k != METRIC_NAME:
                rest.append((k, v))
        if le is None:
            continue
        try:
            bound = float(le.replace("+Inf", "inf"))
        except ValueError:
            continue
        groups.setdefault(tuple(rest), []).append((bound, i))
    out_labels: list[Labels] = []
    out_values: list[np.ndarray] = []
    out_present: list[np.ndarray] = []
    for key, buckets in groups.items():
        buckets.sort(key=lambda b: b[0])
        bounds = np.array([b for b, _ in buckets])
        rows = np.array([i for _, i in buckets])
        counts = np.where(vector.present[rows], vector.values[rows], np.nan)  # [B, T]
        present = vector.present[rows].any(axis=0)
        values = _bucket_quantile(q, bounds, counts, vector.present[rows])
        out_labels.append(key)
        out_values.append(values)
        out_present.append(present)
    if not out_labels:
        return Vector.empty(steps)
    return merge_same_labels(Vector(out_labels, np.array(out_values), np.array(out_present)))


def _bucket_quantile(
    q: np.ndarray, bounds: np.ndarray, counts: np.ndarray, present: np.ndarray
) -> np.ndarray:
    steps = counts.shape[1]
    out = np.full(steps, np.nan)
    for k in range(steps):  # per step; the bucket count per histogram is small
        mask = present[:, k]
        if not mask.any():
            continue
        b = bounds[mask]
        c = counts[mask, k]
        # Coalesce equal bounds (summing their counts).
        uniq, inverse = np.unique(b, return_inverse=True)
        c = np.bincount(inverse, weights=c, minlength=len(uniq))
        out[k] = _one_quantile(float(q[k]), uniq, c)
    return out


def _one_quantile(q: float, bounds: np.ndarray, counts: np.ndarray) -> float:
    if q != q:
        return float("nan")
    if q < 0:
        return float("-inf")
    if q > 1:
        return float("inf")
    if not np.isinf(bounds[-1]) or bounds[-1] < 0:
        return float("nan")
    counts = _monotonic(counts)
    if len(bounds) < 2:
        return float("nan")
    observations = counts[-1]
    if observations == 0 or observations != observations:
        return float("nan")
    rank = q * observations
    b = int(np.searchsorted(counts[:-1], rank, side="left"))
    if b == len(bounds) - 1:
        return float(bounds[-2])
    if b == 0 and bounds[0] <= 0:
        return float(bounds[0])
    start = 0.0
    end = float(bounds[b])
    count = float(counts[b])
    if b > 0:
        start = float(bounds[b - 1])
        count -= float(counts[b - 1])
        rank -= float(counts[b - 1])
    return start + (end - start) * (rank / count)


def _monotonic(counts: np.ndarray) -> np.ndarray:
    """Prometheus's `ensureMonotonicAndIgnoreSmallDeltas` (tolerance 1e-12 relative)."""
    out = counts.astype(np.float64).copy()
    prev = out[0]
    for i in range(1, len(out)):
        cur = out[i]
        if cur == prev:
            continue
        if abs(cur - prev) < 1e-12 * max(abs(cur), abs(prev)):
            out[i] = prev  # a rounding error, not a real bucket
        elif cur < prev:
            out[i] = prev  # counts must not decrease
        prev = out[i]
    return out
