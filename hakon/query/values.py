"""The values PromQL expressions evaluate to, held for every evaluation step at once.

A query is evaluated over all its steps together: an instant vector is a
matrix with one row per series and one column per step, plus a mask saying
where the series has a value (a series is absent at a step, NaN is a value).
A range query and an instant query are the same thing with T steps or one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hakon.errors import Unprocessable
from hakon.store.labels import METRIC_NAME, Labels

# Prometheus's staleness marker: a NaN with this exact bit pattern.
STALE_NAN_BITS = 0x7FF0000000000002


@dataclass
class Vector:
    """An instant vector at every step: `values[s, k]` counts where `present[s, k]`."""

    labels: list[Labels]
    values: np.ndarray  # float64 [S, T]
    present: np.ndarray  # bool [S, T]
    # Set by selectors only: each value's sample timestamp (ms), for timestamp().
    sample_ts: np.ndarray | None = None

    @classmethod
    def empty(cls, steps: int) -> Vector:
        return cls([], np.empty((0, steps)), np.empty((0, steps), dtype=bool))

    def __len__(self) -> int:
        return len(self.labels)

    def rows(self, keep: np.ndarray) -> Vector:
        """The series at the given row indices or mask, in that order."""
        labels = (
            [self.labels[i] for i in np.flatnonzero(keep).tolist()]
            if keep.dtype == bool
            else [self.labels[i] for i in keep.tolist()]
        )
        ts = None if self.sample_ts is None else self.sample_ts[keep]
        return Vector(labels, self.values[keep], self.present[keep], ts)

    def compact(self) -> Vector:
        """Drop series absent at every step."""
        alive = np.asarray(self.present.any(axis=1))
        return self if alive.all() else self.rows(alive)


@dataclass
class Scalar:
    values: np.ndarray  # float64 [T]


@dataclass
class String:
    value: str


@dataclass
class RangeSamples:
    """Raw samples of selected series: series `s` owns `ts[offsets[s]:offsets[s+1]]`."""

    labels: list[Labels]
    offsets: np.ndarray  # int64 [S + 1]
    ts: np.ndarray
    values: np.ndarray


Value = Vector | Scalar | String


def drop_name(labels: Labels) -> Labels:
    if labels and labels[0][0] == METRIC_NAME:
        return labels[1:]
    return tuple(p for p in labels if p[0] != METRIC_NAME)


def without_names(vector: Vector) -> Vector:
    """The vector with metric names dropped, series that now coincide merged."""
    return merge_same_labels(
        Vector([drop_name(ls) for ls in vector.labels], vector.values, vector.present)
    )


def merge_same_labels(vector: Vector) -> Vector:
    """Merge rows with equal label sets; two of them present at one step is an error.

    Prometheus refuses a vector holding one label set twice ("vector cannot
    contain metrics with the same labelset"); rows that take turns, such as
    `a or b` where each side covers different steps, become one series.
    """
    first: dict[Labels, int] = {}
    group = np.empty(len(vector.labels), dtype=np.int64)
    for i, ls in enumerate(vector.labels):
        group[i] = first.setdefault(ls, len(first))
    if len(first) == len(vector.labels):
        return vector
    counts = np.zeros((len(first), vector.present.shape[1]), dtype=np.int64)
    np.add.at(counts, group, vector.present)
    if (counts > 1).any():
        dup = int(np.flatnonzero((counts > 1).any(axis=1))[0])
        raise Unprocessable(
            "vector cannot contain metrics with the same labelset: "
            + format_labels(next(ls for ls, g in first.items() if g == dup))
        )
    values = np.zeros(counts.shape)
    np.add.at(values, group, np.where(vector.present, vector.values, 0.0))
    return Vector(list(first), values, counts > 0)


def format_labels(labels: Labels) -> str:
    name = ""
    inner = []
    for k, v in labels:
        if k == METRIC_NAME:
            name = v
        else:
            inner.append(f'{k}="{escape(v)}"')
    return name + "{" + ", ".join(inner) + "}"


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def concat(vectors: Sequence[Vector], steps: int) -> Vector:
    vectors = [v for v in vectors if len(v)]
    if not vectors:
        return Vector.empty(steps)
    return Vector(
        [ls for v in vectors for ls in v.labels],
        np.concatenate([v.values for v in vectors]),
        np.concatenate([v.present for v in vectors]),
    )


def is_stale(values: np.ndarray) -> np.ndarray:
    return values.view(np.uint64) == STALE_NAN_BITS
