"""The store's boundary: what writers hand in and what readers get back.

`query` and `alerting` import only these names. All arrays are numpy; all
timestamps are int64 milliseconds since the epoch; ids are signed int64.

Thread safety: `append` may be called from any number of threads at once;
readers may run concurrently with appends, flushes and compactions and always
see a consistent snapshot (never a partial block, never a sample twice).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from hakon.store.labels import Labels, Matcher, canonical, encode_labels, series_ids

RAW = 0
ROLLUP_RESOLUTIONS_MS = (300_000, 3_600_000)  # 5 m and 1 h


@dataclass(frozen=True)
class SampleBatch:
    """Samples of several series, columnar.

    `series_ids[i]` is the id of `series_labels[i]` (each series of the batch at
    least once; repeats are allowed, so a writer may pass `sample_series` itself);
    `sample_series`, `timestamps` and `values` have one entry per sample, the
    first holding the sample's series id.
    """

    series_ids: np.ndarray  # int64[k]
    series_labels: Sequence[Labels]  # k canonical label sets
    sample_series: np.ndarray  # int64[n]
    timestamps: np.ndarray  # int64[n], ms
    values: np.ndarray  # float64[n]

    @classmethod
    def from_series(
        cls,
        labels: Sequence[Mapping[str, str] | Labels],
        sample_index: np.ndarray | Sequence[int],
        timestamps: np.ndarray | Sequence[int],
        values: np.ndarray | Sequence[float],
    ) -> SampleBatch:
        """Build a batch from label sets and, per sample, the index of its label set."""
        index = np.asarray(sample_index, dtype=np.int64)
        used = np.unique(index)  # only series that have samples here
        canon = [canonical(labels[i]) for i in used.tolist()]
        ids = np.zeros(len(labels), dtype=np.int64)
        ids[used] = series_ids(canon)
        unique_ids, first = np.unique(ids[used], return_index=True)
        return cls(
            series_ids=unique_ids,
            series_labels=[canon[i] for i in first.tolist()],
            sample_series=ids[index] if len(index) else np.empty(0, np.int64),
            timestamps=np.asarray(timestamps, dtype=np.int64),
            values=np.asarray(values, dtype=np.float64),
        )

    def __len__(self) -> int:
        return len(self.timestamps)

    def labels_at(self, positions: np.ndarray) -> list[Labels]:
        """The label sets at these positions of `series_labels`, through its `take` where
        it has one (a lazy lookup answers many at once: a cluster's first payload
        registers thousands of series, and this is on the write path)."""
        take = getattr(self.series_labels, "take", None)
        if take is not None:
            return list(take(positions))
        labels = self.series_labels
        return [labels[i] for i in positions.tolist()]

    def label_texts_at(self, positions: np.ndarray) -> list[bytes]:
        """`encode_labels` of the label sets at these positions: the lookup's own texts
        where it keeps them (a decode worker's batch arrives with its new series as
        texts, so the write path never builds their tuples), else encoded here."""
        take_texts = getattr(self.series_labels, "take_texts", None)
        if take_texts is not None:
            return list(take_texts(positions))
        return list(map(encode_labels, self.labels_at(positions)))


@dataclass(frozen=True)
class Samples:
    """Raw samples sorted by (series id, timestamp), one value per pair."""

    series: np.ndarray  # int64[n]
    timestamps: np.ndarray  # int64[n]
    values: np.ndarray  # float64[n]

    def __len__(self) -> int:
        return len(self.timestamps)


@dataclass(frozen=True)
class Rollups:
    """Per series and aligned bucket: min, max, sum, count, last and the first/last timestamps.

    Sorted by (series id, bucket start). `bucket` is the bucket's start in ms.
    """

    series: np.ndarray
    bucket: np.ndarray
    min: np.ndarray
    max: np.ndarray
    sum: np.ndarray
    count: np.ndarray
    last: np.ndarray
    first_ts: np.ndarray
    last_ts: np.ndarray

    def __len__(self) -> int:
        return len(self.bucket)


class Appender(Protocol):
    def append(self, batch: SampleBatch) -> None:
        """Return once the batch is durable (WAL fsynced) and visible to reads."""


class Reader(Protocol):
    def select(self, matchers: Sequence[Matcher]) -> dict[int, Labels]:
        """Series matching all matchers: id -> labels. No sample is read."""

    def series_upper_bound(self, matchers: Sequence[Matcher]) -> int | None:
        """At most how many series `matchers` select, without selecting; None if unknown."""

    def read(self, ids: np.ndarray, start: int, end: int, at: np.ndarray | None = None) -> Samples:
        """Samples of `ids` with start <= t <= end, merged over head and blocks, deduped.

        With `at` (sorted times), only each series' last sample at or before each of
        them: what an instant selector needs, read without the rest."""

    def read_rollups(self, ids: np.ndarray, start: int, end: int, resolution_ms: int) -> Rollups:
        """Rollup buckets of `ids` whose start lies in [start, end], at 5 m or 1 h."""

    def label_names(self, matchers: Sequence[Matcher] = ()) -> list[str]: ...

    def label_values(self, name: str, matchers: Sequence[Matcher] = ()) -> list[str]: ...
