"""Numbers and results in the Prometheus HTTP API's exact text forms.

Values are strings formatted like Go's `strconv.FormatFloat(f, 'f' or 'e', -1)`
(exponent below 1e-6 and from 1e21), timestamps are seconds with up to three
decimals, as Prometheus writes them. Results are built as JSON text directly:
a matrix of thousands of series is mostly these strings.
"""

from __future__ import annotations

import itertools
import json
import math
import time

import msgspec
import numpy as np

from hakon.query.values import Scalar, String, Vector
from hakon.store.labels import Labels


def format_value(f: float) -> str:
    a = abs(f)
    if a != 0 and (a < 1e-6 or a >= 1e21) and a != math.inf:
        return _go_exponent(repr(f))
    return format_value_plain(f)


def format_value_plain(f: float) -> str:
    """Go's 'f' format with the shortest exact digits (count_values' label values)."""
    if f != f:
        return "NaN"
    if f in (math.inf, -math.inf):
        return "+Inf" if f > 0 else "-Inf"
    text = repr(f)
    if "e" in text or "E" in text:
        return str(np.format_float_positional(f, unique=True, trim="-"))
    return text[:-2] if text.endswith(".0") else text


def _go_exponent(text: str) -> str:
    """Python's shortest repr in exponent form to Go's: '1e-07' stays, '1.5e+22' stays."""
    if "e" not in text:
        mantissa, exp = f"{float(text):e}".split("e")
        return mantissa + "e" + exp  # pragma: no cover - repr uses exponents in range
    mantissa, exp = text.split("e")
    sign = exp[0] if exp[0] in "+-" else "+"
    digits = exp.lstrip("+-").rjust(2, "0")
    return f"{mantissa}e{sign}{digits}"


def format_time(ms: int) -> str:
    sign = "-" if ms < 0 else ""
    ms = abs(ms)
    whole, frac = divmod(ms, 1000)
    return f"{sign}{whole}.{frac:03d}" if frac else f"{sign}{whole}"


def format_times(ms: np.ndarray) -> list[str]:
    """`format_time` of many timestamps (a range query's steps)."""
    ms = np.asarray(ms, dtype=np.int64)
    if len(ms) and ms.min() >= 0 and not (ms % 1000).any():
        return list(map(str, (ms // 1000).tolist()))
    return [format_time(t) for t in ms.tolist()]


def labels_json(labels: Labels) -> str:
    return json.dumps(dict(labels), ensure_ascii=False, separators=(",", ":"))


def instant_vector_json(vector: Vector, time_ms: int) -> str:
    t = format_time(time_ms)
    rows = np.flatnonzero(vector.present[:, 0]).tolist()
    values = vector.values[:, 0]
    parts = []
    for r in rows:
        value = format_value(float(values[r]))
        parts.append(f'{{"metric":{labels_json(vector.labels[r])},"value":[{t},"{value}"]}}')
    return "[" + ",".join(parts) + "]"


def format_values(values: np.ndarray) -> list[str]:
    """`format_value` of every element, with the common cases done in C loops.

    Whole numbers print as integers; other ordinary floats get their shortest
    round-trip digits from msgspec's encoder (the same digits as `repr`, at a
    fraction of the cost); only NaN, infinities and magnitudes where either
    side would use an exponent take the per-value path.
    """
    n = len(values)
    if n == 0:
        return []
    with np.errstate(invalid="ignore"):
        mag = np.abs(values)
        special = ~np.isfinite(values) | ((mag < 1e-4) & (mag != 0)) | (mag >= 1e15)
        whole = ~special & (values == np.floor(values))
    out = np.empty(n, dtype=object)
    if whole.any():
        encoded_ints = msgspec.json.encode(values[whole].astype(np.int64).tolist())
        out[whole] = encoded_ints[1:-1].decode().split(",")
    plain = ~special & ~whole
    if plain.any():
        encoded = msgspec.json.encode(values[plain].tolist())
        out[plain] = encoded[1:-1].decode().split(",")
    if special.any():
        out[special] = [format_value(v) for v in values[special].tolist()]
    zero = whole & (values == 0) & np.signbit(values)
    if zero.any():
        out[zero] = "-0"
    result: list[str] = out.tolist()
    return result


# Points rendered per piece: each piece is a few ms of GIL-holding string work, so the
# event loop (ingest, /health) gets its turn between pieces of a huge result.
RENDER_PIECE_POINTS = 1 << 16


def matrix_json(vector: Vector, steps: np.ndarray) -> str:
    """Prometheus `matrix` result: every present point as `[t,"v"]`, series by series.

    Built from token lists joined once per piece: a value token per point, and
    before it either `"],[t,"` or, at a series' first point, the series' opening.
    """
    rows, cols = np.nonzero(vector.present)
    if not len(rows):
        return "[]"
    times = format_times(steps)
    heads = np.array([f'"],[{t},"' for t in times], dtype=object)
    firsts = np.concatenate([[0], np.flatnonzero(np.diff(rows)) + 1])
    # Cut pieces at series boundaries, about RENDER_PIECE_POINTS points each.
    cuts = np.unique(np.searchsorted(firsts, np.arange(0, len(rows), RENDER_PIECE_POINTS)))
    bounds = [*firsts[cuts[cuts < len(firsts)]].tolist(), len(rows)]
    pieces: list[str] = []
    for a, b in itertools.pairwise(bounds):
        tokens = np.empty(2 * (b - a), dtype=object)
        tokens[0::2] = heads[cols[a:b]]
        tokens[1::2] = format_values(vector.values[rows[a:b], cols[a:b]])
        starts = firsts[(firsts >= a) & (firsts < b)]
        for i, r, c in zip(
            starts.tolist(), rows[starts].tolist(), cols[starts].tolist(), strict=True
        ):
            opening = f'{{"metric":{labels_json(vector.labels[r])},"values":[[{times[c]},"'
            tokens[2 * (i - a)] = opening if i == 0 else '"]]},' + opening
        if pieces:
            time.sleep(0)  # let other threads (the event loop) run between pieces
        pieces.append("".join(tokens.tolist()))
    return "[" + "".join(pieces) + '"]]}]'


def scalar_json(scalar: Scalar, time_ms: int) -> str:
    return f'[{format_time(time_ms)},"{format_value(float(scalar.values[0]))}"]'


def string_json(value: String, time_ms: int) -> str:
    return f"[{format_time(time_ms)},{json.dumps(value.value)}]"


def raw_matrix_json(series: list[tuple[Labels, np.ndarray, np.ndarray]]) -> str:
    """A range-vector result (`foo[5m]` as an instant query): the raw samples."""
    parts = []
    for labels, ts, vals in series:
        points = ",".join(
            f'[{format_time(t)},"{format_value(v)}"]'
            for t, v in zip(ts.tolist(), vals.tolist(), strict=True)
        )
        parts.append(f'{{"metric":{labels_json(labels)},"values":[{points}]}}')
    return "[" + ",".join(parts) + "]"


def ordered_rows(vector: Vector, order: str) -> list[int]:
    """Rows of an instant vector present at its step, in the order the API lists them.

    Prometheus lists `sort`/`sort_desc`/`topk`/`bottomk` results by value (NaN
    last) and leaves other orders unspecified; here they are sorted by labels.
    """
    rows = np.flatnonzero(vector.present[:, 0])
    if order == "labels":
        return sorted(rows.tolist(), key=lambda r: vector.labels[r])
    values = vector.values[rows, 0]
    nan = np.isnan(values)
    key = values if order == "asc" else -values
    return rows[np.lexsort((np.where(nan, 0.0, key), nan))].tolist()
