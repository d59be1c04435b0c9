"""The PromQL evaluator: `promql-parser`'s AST, evaluated over all steps at once.

An instant query is a range query with one step. Every node evaluates to a
`Vector` (series x steps), a `Scalar` (one value per step) or a `String`;
selectors read the store once for the whole range. Anything the evaluator
does not implement is refused with a 400 naming it, never approximated.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import promql_parser as pp

from hakon.errors import InvalidRequest, QueryTimeout, Unprocessable
from hakon.query import aggregate, binary, functions, rangefuncs
from hakon.query.binary import Matching
from hakon.query.values import (
    RangeSamples,
    Scalar,
    String,
    Value,
    Vector,
    drop_name,
    is_stale,
    merge_same_labels,
)
from hakon.query.windows import counts_at_or_before, fetch, select_series, window_bounds
from hakon.store.interface import ROLLUP_RESOLUTIONS_MS, Reader
from hakon.store.labels import METRIC_NAME, Matcher

MAX_STEPS = 11_000  # Prometheus's limit of points per series in a range query

_MATCH_OPS = {
    str(pp.MatchOp.Equal): "=",
    str(pp.MatchOp.NotEqual): "!=",
    str(pp.MatchOp.Re): "=~",
    str(pp.MatchOp.NotRe): "!~",
}
_CARD = {
    str(pp.VectorMatchCardinality.OneToOne): "one-to-one",
    str(pp.VectorMatchCardinality.ManyToOne): "many-to-one",
    str(pp.VectorMatchCardinality.OneToMany): "one-to-many",
    str(pp.VectorMatchCardinality.ManyToMany): "many-to-many",
}


@dataclass(frozen=True)
class QueryOptions:
    lookback_ms: int = 300_000
    timeout_s: float = 120.0
    max_series: int = 1_000_000  # series one selector may select
    max_samples: int = 100_000_000  # samples one selector may read
    max_points: int = 100_000_000  # series x steps of any intermediate result
    # Queries spanning at least this long may answer *_over_time from rollups (0: never).
    rollup_min_span_ms: int = 7 * 86_400_000
    subquery_step_ms: int = 60_000  # a subquery's step when it names none (`[1h:]`)


@dataclass
class Result:
    """What a query evaluated to. `kind`: vector, matrix, scalar or string."""

    kind: str
    value: Value | RangeSamples
    steps: np.ndarray
    order: str = "labels"  # how an instant vector is listed: labels, asc or desc


def parse(query: str) -> Any:
    if not query.strip():
        raise InvalidRequest("the query is empty", field="query")
    try:
        return pp.parse(query)
    except ValueError as exc:
        raise InvalidRequest(f"cannot parse the query: {exc}", field="query") from None


def selector_matchers(vs: Any) -> list[Matcher]:
    """A parsed vector selector's matchers, the metric name included."""
    if vs.matchers.or_matchers:
        raise InvalidRequest("'or' inside a label matcher set is not supported", field="query")
    out = []
    if vs.name:
        out.append(Matcher(METRIC_NAME, "=", vs.name))
    for m in vs.matchers.matchers:
        try:
            out.append(Matcher(m.name, _MATCH_OPS[str(m.op)], m.value))
        except ValueError as exc:
            raise InvalidRequest(str(exc), field="query") from None
    if all(m.matches_empty for m in out):
        raise InvalidRequest(
            "vector selector must contain at least one non-empty matcher", field="query"
        )
    return out


def ms_of(delta: Any) -> int:
    return 0 if delta is None else round(delta.total_seconds() * 1000)


class Engine:
    def __init__(self, reader: Reader, options: QueryOptions | None = None) -> None:
        self.reader = reader
        self.options = options or QueryOptions()

    def estimated_points(self, query: str, steps: int) -> int | None:
        """An upper bound of the series the query's selectors select, times its steps,
        from posting sizes alone (never a selection: this runs on the event loop);
        None when unknown. Lets small queries skip the thread hop."""
        try:
            selectors = selectors_of(parse(query))
            if selectors is None:
                return None
            total = 0
            for vs in selectors:
                bound = self.reader.series_upper_bound(selector_matchers(vs))
                if bound is None:
                    return None
                total += bound
            return total * steps
        except InvalidRequest:
            return 0  # the evaluation reports it, at once

    def instant(self, query: str, time_ms: int, timeout_s: float | None = None) -> Result:
        expr = parse(query)
        ev = _Evaluation(self, np.array([time_ms], dtype=np.int64), timeout_s)
        if isinstance(expr, pp.MatrixSelector | pp.SubqueryExpr):
            return Result("matrix", ev.raw_range(expr), ev.steps)
        value = ev.eval(expr)
        if isinstance(value, Vector):
            return Result("vector", value, ev.steps, _order_of(expr))
        if isinstance(value, Scalar):
            return Result("scalar", value, ev.steps)
        return Result("string", value, ev.steps)

    def instant_rows(self, query: str, time_ms: int) -> list[tuple[dict[str, str], float]]:
        """An instant query's answer as (labels, value) rows, for callers inside Hakon
        (rules, registries); a scalar is one row without labels."""
        value = self.instant(query, time_ms).value
        if isinstance(value, Scalar):
            return [({}, float(value.values[0]))]
        if not isinstance(value, Vector):
            raise InvalidRequest(f"{query[:80]!r} must give a vector or a scalar", field="expr")
        rows = np.flatnonzero(value.present[:, 0]).tolist()
        return [(dict(value.labels[r]), float(value.values[r, 0])) for r in rows]

    def range(
        self, query: str, start_ms: int, end_ms: int, step_ms: int, timeout_s: float | None = None
    ) -> Result:
        if step_ms <= 0:
            raise InvalidRequest(
                "zero or negative query resolution step widths are not accepted. "
                "Try a positive integer",
                field="step",
            )
        if end_ms < start_ms:
            raise InvalidRequest("end timestamp must not be before start time", field="end")
        if (end_ms - start_ms) // step_ms >= MAX_STEPS:
            raise InvalidRequest(
                "exceeded maximum resolution of 11,000 points per timeseries. "
                "Try decreasing the query resolution (?step=XX)",
                field="step",
            )
        expr = parse(query)
        steps = np.arange(start_ms, end_ms + 1, step_ms, dtype=np.int64)
        ev = _Evaluation(self, steps, timeout_s)
        if isinstance(expr, pp.MatrixSelector | pp.SubqueryExpr):
            raise InvalidRequest(
                'invalid expression type "range vector" for range query, '
                "must be Scalar or instant Vector",
                field="query",
            )
        value = ev.eval(expr)
        if isinstance(value, String):
            raise InvalidRequest(
                'invalid expression type "string" for range query, '
                "must be Scalar or instant Vector",
                field="query",
            )
        if isinstance(value, Scalar):
            value = Vector([()], value.values[None, :], np.ones((1, len(steps)), dtype=bool))
        return Result("matrix", value, steps)


# Range functions answerable from rollup buckets: (rollup column, how windows combine it).
ROLLUP_FIELDS: dict[str, list[tuple[str, Any]]] = {
    "sum_over_time": [("sum", rangefuncs.sum_over_time)],
    "count_over_time": [("count", rangefuncs.sum_over_time)],
    "min_over_time": [("min", rangefuncs.min_over_time)],
    "max_over_time": [("max", rangefuncs.max_over_time)],
    "avg_over_time": [("sum", rangefuncs.sum_over_time), ("count", rangefuncs.sum_over_time)],
    "last_over_time": [("last", rangefuncs.last_over_time)],
    "present_over_time": [("count", rangefuncs.present_over_time)],
}


def selectors_of(expr: Any) -> list[Any] | None:
    """Every vector selector in `expr` (those under range selectors too); None when
    `expr` holds a subquery, whose cost its selectors alone do not tell."""
    found: list[Any] = []
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, pp.SubqueryExpr):
            return None
        if isinstance(node, pp.VectorSelector):
            found.append(node)
        elif isinstance(node, pp.MatrixSelector):
            found.append(node.vector_selector)
        elif isinstance(node, pp.ParenExpr | pp.UnaryExpr):
            stack.append(node.expr)
        elif isinstance(node, pp.BinaryExpr):
            stack += [node.lhs, node.rhs]
        elif isinstance(node, pp.AggregateExpr):
            stack.append(node.expr)
            if node.param is not None:
                stack.append(node.param)
        elif isinstance(node, pp.Call):
            stack += list(node.args)
    return found


def _order_of(expr: Any) -> str:
    while isinstance(expr, pp.ParenExpr):
        expr = expr.expr
    if isinstance(expr, pp.Call) and expr.func.name in ("sort", "sort_desc"):
        return "asc" if expr.func.name == "sort" else "desc"
    if isinstance(expr, pp.AggregateExpr) and str(expr.op) in ("topk", "bottomk"):
        return "desc" if str(expr.op) == "topk" else "asc"
    return "labels"


class _Evaluation:
    """One query's evaluation: its steps, its deadline, its limits."""

    def __init__(
        self,
        engine: Engine,
        steps: np.ndarray,
        timeout_s: float | None,
        parent: _Evaluation | None = None,
    ) -> None:
        self.engine = engine
        self.options = engine.options
        self.reader = engine.reader
        self.steps = steps
        self.T = len(steps)
        self.timeout: float
        self.deadline: float
        if parent is not None:  # a subquery shares its query's deadline
            self.timeout, self.deadline = parent.timeout, parent.deadline
            return
        timeout = (
            self.options.timeout_s if timeout_s is None else min(timeout_s, self.options.timeout_s)
        )
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout

    # -- plumbing ----------------------------------------------------------------

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise QueryTimeout(f"query timed out after {self.timeout:g}s (setting query_timeout)")

    def check_points(self, n_series: int) -> None:
        if n_series * self.T > self.options.max_points:
            raise Unprocessable(
                f"the query would hold {n_series} series x {self.T} steps, more than the "
                f"limit of {self.options.max_points} points (setting query_max_points); "
                "narrow the selector or increase the step"
            )

    def scalar_arg(self, node: Any, what: str) -> np.ndarray:
        value = self.eval(node)
        if not isinstance(value, Scalar):
            raise InvalidRequest(f"{what} must be a scalar", field="query")
        return value.values

    def vector_arg(self, node: Any, what: str) -> Vector:
        value = self.eval(node)
        if not isinstance(value, Vector):
            raise InvalidRequest(f"{what} must be an instant vector", field="query")
        return value

    def string_arg(self, node: Any, what: str) -> str:
        value = self.eval(node)
        if not isinstance(value, String):
            raise InvalidRequest(f"{what} must be a string", field="query")
        return value.value

    # -- dispatch ----------------------------------------------------------------

    def eval(self, node: Any) -> Value:
        self.check()
        if isinstance(node, pp.NumberLiteral):
            return Scalar(np.full(self.T, float(node.val)))
        if isinstance(node, pp.StringLiteral):
            return String(node.val)
        if isinstance(node, pp.ParenExpr):
            return self.eval(node.expr)
        if isinstance(node, pp.UnaryExpr):
            return self.negate(self.eval(node.expr))
        if isinstance(node, pp.VectorSelector):
            return self.instant_selector(node)
        if isinstance(node, pp.Call):
            return self.call(node)
        if isinstance(node, pp.AggregateExpr):
            return self.aggregation(node)
        if isinstance(node, pp.BinaryExpr):
            return self.binary(node)
        if isinstance(node, pp.MatrixSelector | pp.SubqueryExpr):
            raise InvalidRequest(
                "a range vector can only be an argument of a function like rate()", field="query"
            )
        raise InvalidRequest(f"unsupported expression: {node}", field="query")

    def negate(self, value: Value) -> Value:
        if isinstance(value, Scalar):
            return Scalar(-value.values)
        if isinstance(value, Vector):
            return merge_same_labels(
                Vector([drop_name(ls) for ls in value.labels], -value.values, value.present)
            )
        raise InvalidRequest("unary minus needs a number or an instant vector", field="query")

    # -- selectors ---------------------------------------------------------------

    def matchers(self, vs: Any) -> list[Matcher]:
        return selector_matchers(vs)

    def selector_ends(self, vs: Any) -> tuple[np.ndarray, bool]:
        """Each step's evaluation time for this selector, and whether it is fixed by `@`."""
        offset = ms_of(vs.offset)
        at = vs.at
        if at is None:
            return self.steps - offset, False
        if at.type == pp.AtModifierType.Start:
            t = int(self.steps[0])
        elif at.type == pp.AtModifierType.End:
            t = int(self.steps[-1])
        else:
            t = round(at.at.timestamp() * 1000)
        return np.array([t - offset], dtype=np.int64), True

    def _fetch(
        self, vs: Any, start: int, end: int, drop_stale: bool, at: np.ndarray | None = None
    ) -> RangeSamples:
        samples = fetch(
            self.reader,
            self.matchers(vs),
            start,
            end,
            max_series=self.options.max_series,
            max_samples=self.options.max_samples,
            drop_stale=drop_stale,
            at=at,
        )
        self.check_points(len(samples.labels))
        self.check()
        return samples

    def _broadcast(self, a: np.ndarray, fixed: bool) -> np.ndarray:
        return np.repeat(a, self.T, axis=1) if fixed and self.T > 1 else a

    def instant_selector(self, vs: Any) -> Vector:
        ends, fixed = self.selector_ends(vs)
        lookback = self.options.lookback_ms
        samples = self._fetch(vs, int(ends.min()) - lookback + 1, int(ends.max()), False, ends)
        base = samples.offsets[:-1, None]
        hi = base + counts_at_or_before(samples, ends)
        ok = hi > base
        last = np.where(ok, hi - 1, 0)
        if len(samples.ts):
            ts = samples.ts[last]
            values = samples.values[last]
            ok &= (ts > (ends - lookback)[None, :]) & ~is_stale(values)
        else:
            ts = np.zeros(ok.shape, dtype=np.int64)
            values = np.zeros(ok.shape)
        vector = Vector(
            samples.labels,
            self._broadcast(values, fixed),
            self._broadcast(ok, fixed),
            self._broadcast(ts, fixed),
        )
        return vector.compact()

    def windows(self, node: Any) -> tuple[rangefuncs.Windows, bool]:
        if isinstance(node, pp.SubqueryExpr):
            return self.subquery_windows(node)
        if not isinstance(node, pp.MatrixSelector):
            raise InvalidRequest("expected a range vector such as foo[5m]", field="query")
        vs = node.vector_selector
        range_ms = ms_of(node.range)
        ends, fixed = self.selector_ends(vs)
        samples = self._fetch(vs, int(ends.min()) - range_ms + 1, int(ends.max()), True)
        return self._windows_over(samples, ends, fixed, range_ms), fixed

    def _windows_over(
        self, samples: RangeSamples, ends: np.ndarray, fixed: bool, range_ms: int
    ) -> rangefuncs.Windows:
        lo, hi = window_bounds(samples, ends, range_ms)
        return rangefuncs.Windows(
            samples,
            self._broadcast(lo, fixed),
            self._broadcast(hi, fixed),
            np.repeat(ends, self.T) if fixed else ends,
            self.steps,
            range_ms,
        )

    def subquery_windows(self, node: Any) -> tuple[rangefuncs.Windows, bool]:
        """`expr[range:step]`: `expr` evaluated at absolute multiples of the step, its
        points then windowed like raw samples (Prometheus's subquery semantics)."""
        range_ms = ms_of(node.range)
        step_ms = ms_of(node.step) or self.options.subquery_step_ms
        ends, fixed = self.selector_ends(node)  # a subquery has offset and @ like a selector
        first = int(ends.min()) - range_ms
        if first % step_ms:
            first += step_ms - first % step_ms  # the first aligned time in the range
        inner_steps = np.arange(first, int(ends.max()) + 1, step_ms, dtype=np.int64)
        if len(inner_steps) > MAX_STEPS * 100:
            raise Unprocessable(
                f"the subquery would evaluate {len(inner_steps)} steps; use a larger step"
            )
        inner = _Evaluation(self.engine, inner_steps, None, parent=self).eval(node.expr)
        if not isinstance(inner, Vector):
            raise InvalidRequest("a subquery needs an instant vector expression", field="query")
        rows, cols = np.nonzero(inner.present)  # row-major: by series, then time
        counts = np.bincount(rows, minlength=len(inner.labels))
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        samples = RangeSamples(inner.labels, offsets, inner_steps[cols], inner.values[rows, cols])
        return self._windows_over(samples, ends, fixed, range_ms), fixed

    def rollup_resolution(self, node: Any) -> int | None:
        """The rollup resolution a range function over `node` may read, if any.

        Only for long queries (`rollup_min_span_ms`) whose range, step and
        evaluation times (less offset) all fall on that resolution's boundaries,
        so every window is a whole number of rollup buckets.
        """
        if not isinstance(node, pp.MatrixSelector) or not self.options.rollup_min_span_ms:
            return None
        vs = node.vector_selector
        range_ms = ms_of(node.range)
        ends, fixed = self.selector_ends(vs)
        if fixed or int(ends[-1] - ends[0]) + range_ms < self.options.rollup_min_span_ms:
            return None
        step = int(ends[1] - ends[0]) if len(ends) > 1 else 0
        for r in sorted(ROLLUP_RESOLUTIONS_MS, reverse=True):
            if range_ms % r == 0 and step % r == 0 and not (ends % r).any():
                return r
        return None

    def from_rollups(self, name: str, node: Any) -> Vector | None:
        """`*_over_time` from rollup buckets: each window (t - R, t] is read as the
        buckets [t - R, t). The one difference, a sample lying exactly on a bucket
        boundary, is documented in docs/query.md; raw samples are never read."""
        r = self.rollup_resolution(node)
        if r is None:
            return None
        vs = node.vector_selector
        range_ms = ms_of(node.range)
        ends, _ = self.selector_ends(vs)
        ids, labels = select_series(self.reader, self.matchers(vs), self.options.max_series)
        self.check_points(len(labels))
        rollups = self.reader.read_rollups(ids, int(ends[0]) - range_ms, int(ends[-1]) - 1, r)
        self.check()
        offsets = np.append(np.searchsorted(rollups.series, ids), len(rollups)).astype(np.int64)

        # Bucket b (start) belongs to the windows ending at b + r ... b + R.
        def windows_of(values: np.ndarray) -> rangefuncs.Windows:
            samples = RangeSamples(labels, offsets, rollups.bucket, values)
            lo, hi = window_bounds(samples, ends - r, range_ms)
            return rangefuncs.Windows(samples, lo, hi, ends, self.steps, range_ms)

        fields = ROLLUP_FIELDS[name]
        results = [
            rangefuncs.by_row_chunks(fn, windows_of(np.asarray(getattr(rollups, f), np.float64)))
            for f, fn in fields
        ]
        values, present = results[0]
        if name == "avg_over_time":
            with np.errstate(invalid="ignore", divide="ignore"):
                values = values / results[1][0]
        keep = name in rangefuncs.KEEPS_NAME
        out = Vector(labels if keep else [drop_name(ls) for ls in labels], values, present)
        return out.compact() if keep else merge_same_labels(out.compact())

    def raw_range(self, node: Any) -> RangeSamples:
        """`foo[5m]` as an instant query: the raw samples in the window."""
        w, _ = self.windows(node)
        lo, hi = w.lo[:, 0], w.hi[:, 0]
        keep = np.flatnonzero(hi > lo)
        idx = np.concatenate(
            [np.arange(lo[i], hi[i]) for i in keep.tolist()] or [np.empty(0, np.int64)]
        )
        lengths = (hi - lo)[keep]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return RangeSamples(
            [w.samples.labels[i] for i in keep.tolist()],
            offsets,
            w.samples.ts[idx.astype(np.int64)],
            w.samples.values[idx.astype(np.int64)],
        )

    # -- functions ---------------------------------------------------------------

    def call(self, node: Any) -> Value:
        name = node.func.name
        args = list(node.args)
        if name in ROLLUP_FIELDS:
            rolled = self.from_rollups(name, args[0])
            if rolled is not None:
                return rolled
        if name in rangefuncs.PLAIN:
            w, _ = self.windows(args[0])
            if not len(w.samples.ts):
                return Vector.empty(self.T)
            values, present = rangefuncs.by_row_chunks(rangefuncs.PLAIN[name], w)
            return self._range_result(w, values, present, keep_name=name in rangefuncs.KEEPS_NAME)
        if name == "quantile_over_time":
            q = self.scalar_arg(args[0], "quantile_over_time's first argument")
            w, _ = self.windows(args[1])
            if not len(w.samples.ts):
                return Vector.empty(self.T)
            values, present = rangefuncs.quantile_over_time(w, q)
            return self._range_result(w, values, present, keep_name=False)
        if name == "predict_linear":
            w, _ = self.windows(args[0])
            seconds = self.scalar_arg(args[1], "predict_linear's second argument")
            if not len(w.samples.ts):
                return Vector.empty(self.T)
            values, present = rangefuncs.predict_linear(w, seconds)
            return self._range_result(w, values, present, keep_name=False)
        if name == "absent_over_time":
            w, _ = self.windows(args[0])
            any_present = (
                (w.count > 0).any(axis=0) if len(w.samples.labels) else np.zeros(self.T, bool)
            )
            inner = args[0]
            selector = inner.vector_selector if isinstance(inner, pp.MatrixSelector) else None
            return self._absent(selector, ~any_present)
        if name == "absent":
            vector = self.vector_arg(args[0], "absent's argument")
            inner = args[0]
            while isinstance(inner, pp.ParenExpr):
                inner = inner.expr
            selector = inner if isinstance(inner, pp.VectorSelector) else None
            return self._absent(selector, ~vector.present.any(axis=0))
        if name == "time":
            return Scalar(self.steps / 1000.0)
        if name == "pi":
            return Scalar(np.full(self.T, np.pi))
        if name == "vector":
            s = self.scalar_arg(args[0], "vector's argument")
            return Vector([()], s[None, :].copy(), np.ones((1, self.T), dtype=bool))
        if name == "scalar":
            v = self.vector_arg(args[0], "scalar's argument")
            if not len(v):
                return Scalar(np.full(self.T, np.nan))
            one = v.present.sum(axis=0) == 1
            picked = np.where(v.present, v.values, 0.0).sum(axis=0)
            return Scalar(np.where(one, picked, np.nan))
        if name in functions.MATH:
            return functions.apply_math(name, self.vector_arg(args[0], f"{name}'s argument"))
        if name == "round":
            v = self.vector_arg(args[0], "round's argument")
            to = (
                self.scalar_arg(args[1], "round's to_nearest") if len(args) > 1 else np.ones(self.T)
            )
            return functions.round_to(v, to)
        if name in ("clamp", "clamp_min", "clamp_max"):
            v = self.vector_arg(args[0], f"{name}'s argument")
            if name == "clamp":
                low = self.scalar_arg(args[1], "clamp's min")
                high = self.scalar_arg(args[2], "clamp's max")
                return functions.clamp(v, low, high)
            bound = self.scalar_arg(args[1], f"{name}'s bound")
            return functions.clamp(
                v, bound if name == "clamp_min" else None, bound if name == "clamp_max" else None
            )
        if name in functions.DATE_FUNCTIONS:
            if args:
                v = self.vector_arg(args[0], f"{name}'s argument")
                return functions.with_values(v, functions.date_function(name, v.values))
            seconds = self.steps / 1000.0
            values = functions.date_function(name, seconds)[None, :]
            return Vector([()], values, np.ones((1, self.T), dtype=bool))
        if name == "timestamp":
            v = self.vector_arg(args[0], "timestamp's argument")
            if v.sample_ts is not None:
                seconds = v.sample_ts / 1000.0
            else:
                seconds = np.broadcast_to(self.steps / 1000.0, v.values.shape).copy()
            return functions.with_values(v, seconds)
        if name in ("sort", "sort_desc"):
            return self.vector_arg(args[0], f"{name}'s argument")
        if name == "label_replace":
            v = self.vector_arg(args[0], "label_replace's first argument")
            dst, repl, src, regex = (
                self.string_arg(a, "label_replace's arguments") for a in args[1:5]
            )
            return functions.label_replace(v, dst, repl, src, regex)
        if name == "label_join":
            v = self.vector_arg(args[0], "label_join's first argument")
            strings = [self.string_arg(a, "label_join's arguments") for a in args[1:]]
            return functions.label_join(v, strings[0], strings[1], strings[2:])
        if name == "histogram_quantile":
            q = self.scalar_arg(args[0], "histogram_quantile's first argument")
            v = self.vector_arg(args[1], "histogram_quantile's second argument")
            return functions.histogram_quantile(q, v)
        raise InvalidRequest(f"function {name}() is not supported", field="query")

    def _range_result(
        self, w: rangefuncs.Windows, values: np.ndarray, present: np.ndarray, keep_name: bool
    ) -> Vector:
        labels = w.samples.labels if keep_name else [drop_name(ls) for ls in w.samples.labels]
        vector = Vector(labels, values, present).compact()
        return vector if keep_name else merge_same_labels(vector)

    def _absent(self, selector: Any, absent: Any) -> Vector:
        labels: dict[str, str] = {}
        if selector is not None:
            seen: set[str] = set()
            for m in self.matchers(selector):
                if m.name == METRIC_NAME:
                    continue
                if m.op == "=" and m.name not in seen:
                    labels[m.name] = m.value
                elif m.name in labels:
                    del labels[m.name]  # two matchers on one label: no value to report
                seen.add(m.name)
        present = np.asarray(absent)[None, :].copy()
        return Vector([tuple(sorted(labels.items()))], np.ones((1, self.T)), present).compact()

    # -- aggregations and operators ---------------------------------------------

    def aggregation(self, node: Any) -> Vector:
        op = str(node.op)
        if op not in aggregate.ALL_OPS:
            raise InvalidRequest(f"aggregation {op}() is not supported", field="query")
        param: np.ndarray | str | None = None
        if op == "count_values":
            param = self.string_arg(node.param, "count_values' label")
            if not functions.LABEL_NAME.match(param):
                raise InvalidRequest(f"invalid label name {param!r}", field="query")
        elif op in ("topk", "bottomk", "quantile"):
            param = self.scalar_arg(node.param, f"{op}'s parameter")
        vector = self.vector_arg(node.expr, f"{op}'s argument")
        modifier = node.modifier
        without = modifier is not None and modifier.type == pp.AggModifierType.Without
        grouping = list(modifier.labels) if modifier is not None else []
        return aggregate.aggregate(op, vector, grouping, without, param)

    def binary(self, node: Any) -> Value:
        op = str(node.op)
        mod = node.modifier
        return_bool = bool(mod and mod.return_bool)
        lhs, rhs = self.eval(node.lhs), self.eval(node.rhs)
        if isinstance(lhs, String) or isinstance(rhs, String):
            raise InvalidRequest("binary operators are not defined on strings", field="query")
        if isinstance(lhs, Scalar) and isinstance(rhs, Scalar):
            return Scalar(binary.scalar_scalar(op, lhs.values, rhs.values))
        if isinstance(lhs, Vector) and isinstance(rhs, Scalar):
            return binary.vector_scalar(op, lhs, rhs.values, False, return_bool)
        if isinstance(lhs, Scalar) and isinstance(rhs, Vector):
            return binary.vector_scalar(op, rhs, lhs.values, True, return_bool)
        assert isinstance(lhs, Vector) and isinstance(rhs, Vector)
        matching = self.matching(op, mod)
        result = binary.vector_vector(op, lhs, rhs, matching)
        self.check_points(len(result))
        return result

    @staticmethod
    def matching(op: str, mod: Any) -> Matching:
        if mod is None:
            card = "many-to-many" if op in binary.SET else "one-to-one"
            return Matching(card, False, (), (), False)
        fill = mod.fill_values
        if fill is not None and (fill.lhs is not None or fill.rhs is not None):
            raise InvalidRequest("fill modifiers are not supported", field="query")
        card = _CARD[str(mod.card)]
        if op in binary.SET:
            card = "many-to-many"
        matching = mod.matching
        on = matching is not None and matching.type == pp.LabelModifierType.Include
        labels = tuple(matching.labels) if matching is not None else ()
        include = tuple(mod.group_labels or ())
        return Matching(card, on, labels, include, bool(mod.return_bool))
