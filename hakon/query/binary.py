"""Binary operators: arithmetic, comparison and set operations, with vector matching.

Vector matching pairs series by signature (the `on` labels, or all labels
but the `ignoring` ones and the metric name). Every step is matched at once:
a pair of series is one output row whose mask is where both sides are
present; Prometheus's per-step errors (a duplicate on the "one" side, many
matches without group_left/right) are checked on the presence counts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from hakon.errors import Unprocessable
from hakon.query.values import Vector, drop_name, format_labels, merge_same_labels
from hakon.store.labels import METRIC_NAME, Labels

ARITHMETIC = {"+", "-", "*", "/", "%", "^", "atan2"}
COMPARISON = {"==", "!=", ">", "<", ">=", "<="}
SET = {"and", "or", "unless"}


def _pow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.power(a, b)


ARITH_FUNCS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.true_divide,
    "%": np.fmod,  # Go's math.Mod: the sign of the dividend
    "^": _pow,
    "atan2": np.arctan2,
}
COMPARE_FUNCS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "==": np.equal,
    "!=": np.not_equal,
    ">": np.greater,
    "<": np.less,
    ">=": np.greater_equal,
    "<=": np.less_equal,
}


@dataclass(frozen=True)
class Matching:
    card: str  # "one-to-one", "many-to-one", "one-to-many", "many-to-many"
    on: bool
    labels: tuple[str, ...]
    include: tuple[str, ...]  # group_left / group_right labels
    return_bool: bool


def arith(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return ARITH_FUNCS[op](a, b)


def compare(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return COMPARE_FUNCS[op](a, b)


def scalar_scalar(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if op in COMPARISON:
        return compare(op, a, b).astype(np.float64)
    return arith(op, a, b)


def vector_scalar(
    op: str, vector: Vector, scalar: np.ndarray, swap: bool, return_bool: bool
) -> Vector:
    """`vector op scalar`, or `scalar op vector` when `swap`."""
    s = scalar[None, :]
    lhs, rhs = (s, vector.values) if swap else (vector.values, s)
    if op in ARITHMETIC:
        return _with_names_dropped(Vector(vector.labels, arith(op, lhs, rhs), vector.present))
    keep = compare(op, lhs, rhs)
    if return_bool:
        out = Vector(vector.labels, keep.astype(np.float64), vector.present)
        return _with_names_dropped(out)
    # A filter keeps the vector's own value, whichever side it was on.
    return Vector(vector.labels, vector.values, vector.present & keep).compact()


def _with_names_dropped(vector: Vector) -> Vector:
    return merge_same_labels(
        Vector([drop_name(ls) for ls in vector.labels], vector.values, vector.present)
    )


def signatures(labels: Sequence[Labels], matching: Matching) -> list[Labels]:
    if matching.on:
        keep = set(matching.labels)
        return [tuple(p for p in ls if p[0] in keep) for ls in labels]
    drop = {*matching.labels, METRIC_NAME}
    return [tuple(p for p in ls if p[0] not in drop) for ls in labels]


def _presence_by_signature(
    sigs: list[Labels], present: np.ndarray, index: dict[Labels, int]
) -> np.ndarray:
    """Count of present series per signature in `index` and step."""
    counts = np.zeros((len(index), present.shape[1]), dtype=np.int64)
    rows = [i for i, s in enumerate(sigs) if s in index]
    if rows:
        np.add.at(counts, np.array([index[sigs[i]] for i in rows]), present[rows])
    return counts


def set_operation(op: str, lhs: Vector, rhs: Vector, matching: Matching) -> Vector:
    l_sigs, r_sigs = signatures(lhs.labels, matching), signatures(rhs.labels, matching)
    if op in ("and", "unless"):
        index = {s: i for i, s in enumerate(dict.fromkeys(r_sigs))}
        counts = _presence_by_signature(r_sigs, rhs.present, index)
        matched = np.zeros(lhs.present.shape, dtype=bool)
        for i, sig in enumerate(l_sigs):
            g = index.get(sig)
            if g is not None:
                matched[i] = counts[g] > 0
        keep = matched if op == "and" else ~matched
        return Vector(lhs.labels, lhs.values, lhs.present & keep).compact()
    # or: every lhs sample, and rhs samples whose signature lhs lacks at that step
    index = {s: i for i, s in enumerate(dict.fromkeys(l_sigs))}
    counts = _presence_by_signature(l_sigs, lhs.present, index)
    r_present = rhs.present.copy()
    for i, sig in enumerate(r_sigs):
        g = index.get(sig)
        if g is not None:
            r_present[i] &= counts[g] == 0
    combined = Vector(
        lhs.labels + rhs.labels,
        np.concatenate([lhs.values, rhs.values]),
        np.concatenate([lhs.present, r_present]),
    )
    return merge_same_labels(combined.compact())


def vector_vector(op: str, lhs: Vector, rhs: Vector, matching: Matching) -> Vector:
    if op in SET:
        return set_operation(op, lhs, rhs, matching)
    steps = lhs.present.shape[1]
    swap = matching.card == "one-to-many"
    many, one = (rhs, lhs) if swap else (lhs, rhs)
    many_sigs, one_sigs = signatures(many.labels, matching), signatures(one.labels, matching)
    one_index: dict[Labels, list[int]] = {}
    for i, sig in enumerate(one_sigs):
        one_index.setdefault(sig, []).append(i)
    # The "one" side may hold a signature only once per step.
    for sig, rows in one_index.items():
        if len(rows) > 1 and (one.present[rows].sum(axis=0) > 1).any():
            side = "left" if swap else "right"
            names = ", ".join(format_labels(one.labels[r]) for r in rows[:2])
            raise Unprocessable(
                f"found duplicate series for the match group {format_labels(sig)} on the "
                f"{side} hand-side of the operation: [{names}];many-to-many matching not "
                "allowed: matching labels must be unique on one side"
            )
    pairs_many: list[int] = []
    pairs_one: list[int] = []
    for i, sig in enumerate(many_sigs):
        for j in one_index.get(sig, ()):
            pairs_many.append(i)
            pairs_one.append(j)
    if not pairs_many:
        return Vector.empty(steps)
    pm, po = np.array(pairs_many), np.array(pairs_one)
    both = many.present[pm] & one.present[po]
    if matching.card == "one-to-one":
        _check_unique_matches(many_sigs, pm, both)
    lv, rv = (one.values[po], many.values[pm]) if swap else (many.values[pm], one.values[po])
    drop = op in ARITHMETIC or matching.return_bool
    if op in ARITHMETIC:
        values, present = arith(op, lv, rv), both
    else:
        keep = compare(op, lv, rv)
        if matching.return_bool:
            values, present = keep.astype(np.float64), both
        else:
            values, present = lv, both & keep
    labels = [
        _result_labels(many.labels[i], one.labels[j], matching, drop)
        for i, j in zip(pm.tolist(), po.tolist(), strict=True)
    ]
    out = Vector(labels, values, present).compact()
    try:
        return merge_same_labels(out)
    except Unprocessable:
        if matching.card == "one-to-one":
            raise
        raise Unprocessable(
            "multiple matches for labels: grouping labels must ensure unique matches"
        ) from None


def _check_unique_matches(many_sigs: list[Labels], pm: np.ndarray, both: np.ndarray) -> None:
    seen: dict[Labels, list[int]] = {}
    for k, i in enumerate(pm.tolist()):
        seen.setdefault(many_sigs[i], []).append(k)
    for rows in seen.values():
        if len(rows) > 1 and (both[rows].sum(axis=0) > 1).any():
            raise Unprocessable(
                "multiple matches for labels: many-to-one matching must be explicit "
                "(group_left/group_right)"
            )


def _result_labels(many: Labels, one: Labels, matching: Matching, drop_metric: bool) -> Labels:
    out = dict(many)
    if drop_metric:
        out.pop(METRIC_NAME, None)
    if matching.card == "one-to-one":
        if matching.on:
            keep = set(matching.labels)
            out = {k: v for k, v in out.items() if k in keep}
        else:
            for name in matching.labels:
                out.pop(name, None)
    if matching.include:
        one_map = dict(one)
        for name in matching.include:
            value = one_map.get(name, "")
            if value:
                out[name] = value
            else:
                out.pop(name, None)
    return tuple(sorted(out.items()))
