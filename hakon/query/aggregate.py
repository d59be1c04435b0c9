"""Aggregation operators (`sum by (...)`, `topk`, `quantile`, ...) over every step at once.

Series are ordered by group once; each operator is then a `reduceat` down
the rows of each group, for all steps in one call.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hakon.errors import InvalidRequest
from hakon.query.rangefuncs import quantile_of_segments
from hakon.query.values import Vector, merge_same_labels
from hakon.store.labels import METRIC_NAME, Labels

GROUPING_OPS = {"sum", "avg", "min", "max", "count", "stddev", "stdvar", "group"}
SELECTING_OPS = {"topk", "bottomk"}
ALL_OPS = GROUPING_OPS | SELECTING_OPS | {"quantile", "count_values"}


def group_keys(labels: Sequence[Labels], by: Sequence[str] | None, without: bool) -> list[Labels]:
    if without:
        drop = {*(by or ()), METRIC_NAME}
        return [tuple(p for p in ls if p[0] not in drop) for ls in labels]
    keep = set(by or ())
    return [tuple(p for p in ls if p[0] in keep) for ls in labels]


def _groups(keys: list[Labels]) -> tuple[np.ndarray, list[Labels]]:
    index: dict[Labels, int] = {}
    group = np.fromiter((index.setdefault(k, len(index)) for k in keys), np.int64, len(keys))
    return group, list(index)


def aggregate(
    op: str,
    vector: Vector,
    grouping: Sequence[str] | None,
    without: bool,
    param: np.ndarray | str | None,
) -> Vector:
    steps = vector.values.shape[1]
    if op in SELECTING_OPS:
        assert isinstance(param, np.ndarray)
        return _select(op, vector, group_keys(vector.labels, grouping, without), param)
    keys = group_keys(vector.labels, grouping, without)
    if op == "count_values":
        assert isinstance(param, str)
        return _count_values(vector, keys, param)
    if not len(vector):
        return Vector.empty(steps)
    group, out_labels = _groups(keys)
    order = np.argsort(group, kind="stable")
    sizes = np.bincount(group)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    values, present = vector.values[order], vector.present[order]
    if op == "quantile":
        assert isinstance(param, np.ndarray)
        return _quantile(values, present, group[order], len(out_labels), out_labels, param)
    count = np.add.reduceat(present.astype(np.int64), starts, axis=0)
    masked = np.where(present, values, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        if op == "sum":
            out = np.add.reduceat(masked, starts, axis=0)
        elif op == "avg":
            out = np.add.reduceat(masked, starts, axis=0) / count
        elif op == "count":
            out = count.astype(np.float64)
        elif op == "group":
            out = np.ones(count.shape)
        elif op in ("min", "max"):
            ufunc = np.fmin if op == "min" else np.fmax
            out = ufunc.reduceat(np.where(present, values, np.nan), starts, axis=0)
        elif op in ("stddev", "stdvar"):
            mean = np.add.reduceat(masked, starts, axis=0) / count
            dev = np.where(present, values - np.repeat(mean, sizes, axis=0), 0.0)
            out = np.add.reduceat(dev * dev, starts, axis=0) / count
            if op == "stddev":
                out = np.sqrt(out)
        else:
            raise InvalidRequest(f"aggregation {op!r} is not supported", field="query")
    return Vector(out_labels, out, count > 0).compact()


def _select(op: str, vector: Vector, keys: list[Labels], k_param: np.ndarray) -> Vector:
    """topk / bottomk: per step and group, the k largest (smallest) values; NaN last."""
    if not len(vector):
        return vector
    group, _ = _groups(keys)
    if not group.any():
        chosen_fast = _select_one_group(op, vector, k_param)
        if chosen_fast is not None:
            return Vector(vector.labels, vector.values, vector.present & chosen_fast).compact()
    values = vector.values.T  # [T, S]
    absent = ~vector.present.T
    nan = np.isnan(values)
    primary = -values if op == "topk" else values
    order = np.lexsort(
        (np.where(nan, 0.0, primary), nan, absent, np.broadcast_to(group, values.shape))
    )
    sizes = np.bincount(group)
    group_start = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    ordered_group = group[order]
    rank = np.arange(values.shape[1])[None, :] - group_start[ordered_group]
    k = np.where(np.isnan(k_param), 0, np.clip(k_param, -1, 1 << 62)).astype(np.int64)
    chosen_sorted = rank < k[:, None]
    chosen = np.zeros_like(chosen_sorted)
    np.put_along_axis(chosen, order, chosen_sorted, axis=1)
    present = vector.present & chosen.T
    return Vector(vector.labels, vector.values, present).compact()


def _select_one_group(op: str, vector: Vector, k_param: np.ndarray) -> np.ndarray | None:
    """topk/bottomk without grouping by partial sort; None when ties with NaN, absent
    series or infinities could decide (the full sort handles those exactly)."""
    n = len(vector)
    k = np.where(np.isnan(k_param), 0, np.clip(k_param, 0, n)).astype(np.int64)
    if (k != k[0]).any() or not 0 < k[0] < n:
        return None
    kk = int(k[0])
    sign = -1.0 if op == "topk" else 1.0
    values = vector.values.T  # [T, S]: partition along contiguous rows
    usable = vector.present.T & ~np.isnan(values)
    key = np.where(usable, sign * values, np.inf)  # smallest keys win
    top = np.argpartition(key, kk - 1, axis=1)[:, :kk]  # [T, k]
    if np.isinf(np.take_along_axis(key, top, axis=1)).any():
        return None
    chosen = np.zeros(key.shape, dtype=bool)
    np.put_along_axis(chosen, top, True, axis=1)
    return chosen.T


def _quantile(
    values: np.ndarray,
    present: np.ndarray,
    group: np.ndarray,
    n_groups: int,
    labels: list[Labels],
    q: np.ndarray,
) -> Vector:
    steps = values.shape[1]
    rows, cols = np.nonzero(present)
    segment = cols * n_groups + group[rows]
    order = np.argsort(segment, kind="stable")
    segment = segment[order]
    flat = values[rows[order], cols[order]]
    seg_ids, starts, lengths = np.unique(segment, return_index=True, return_counts=True)
    result = quantile_of_segments(flat, starts, lengths, q[seg_ids // n_groups])
    out = np.zeros((n_groups, steps))
    has = np.zeros((n_groups, steps), dtype=bool)
    out[seg_ids % n_groups, seg_ids // n_groups] = result
    has[seg_ids % n_groups, seg_ids // n_groups] = True
    return Vector(labels, out, has).compact()


def _count_values(vector: Vector, keys: list[Labels], label: str) -> Vector:
    """Per group, step and distinct value: how many series have it (one output series
    per group and value, labelled with the value as Prometheus formats it)."""
    from hakon.query.render import format_value_plain

    steps = vector.values.shape[1]
    rows, cols = np.nonzero(vector.present)
    if not len(rows):
        return Vector.empty(steps)
    group, group_labels = _groups([tuple(p for p in k if p[0] != label) for k in keys])
    uniques, which = np.unique(vector.values[rows, cols], return_inverse=True)
    which = which.ravel()
    # One output series per (group, distinct value) pair that occurs.
    pair = group[rows] * len(uniques) + which
    pairs, out_row = np.unique(pair, return_inverse=True)
    texts = [format_value_plain(v) for v in uniques.tolist()]
    labels: list[Labels] = [
        tuple(sorted((*group_labels[p // len(uniques)], (label, texts[p % len(uniques)]))))
        for p in pairs.tolist()
    ]
    counts = np.zeros((len(pairs), steps))
    np.add.at(counts, (out_row.ravel(), cols), 1.0)
    return merge_same_labels(Vector(labels, counts, counts > 0))
