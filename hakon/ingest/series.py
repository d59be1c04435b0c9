"""Label sets already seen, and the columnar batch handed to the store.

Hashing a label set (sort, encode, xxh64) costs microseconds; a dict lookup
costs tens of nanoseconds. Each format keeps its own cheap key for a series
(the raw label bytes of a remote_write series, a pod's identity tuple, ...)
and resolves it here once. The store needs the labels only of series it has
never seen, so the batch carries a lazy id -> labels lookup instead of a list
built per request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import overload

import numpy as np

from hakon.ingest.limits import IngestLimits
from hakon.store.interface import SampleBatch
from hakon.store.labels import Labels, canonical, decode_labels, encode_labels, series_id


class LabelsLookup(Sequence[Labels]):
    """`series_labels` of a batch: each id's labels looked up on demand, by `labels_of`."""

    def __init__(self, ids: np.ndarray, labels_of: Callable[[int], Labels]) -> None:
        self._ids = ids
        self._labels_of = labels_of

    def __len__(self) -> int:
        return len(self._ids)

    @overload
    def __getitem__(self, i: int) -> Labels: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Labels]: ...
    def __getitem__(self, i: int | slice) -> Labels | Sequence[Labels]:
        if isinstance(i, slice):
            return [self._labels_of(int(sid)) for sid in self._ids[i]]
        return self._labels_of(int(self._ids[i]))

    def take(self, positions: np.ndarray) -> list[Labels]:
        """The labels at many positions at once (`SampleBatch.labels_at`)."""
        return list(map(self._labels_of, self._ids[positions].tolist()))

    def __iter__(self) -> Iterator[Labels]:
        return (self._labels_of(sid) for sid in self._ids.tolist())


class TextsLookup(LabelsLookup):
    """`series_labels` of a decode worker's batch: each id's labels kept as their
    `encode_labels` text, which is what the store writes (WAL, catalog) and indexes."""

    def __init__(self, ids: np.ndarray, text_of: Callable[[int], bytes]) -> None:
        super().__init__(ids, lambda sid: decode_labels(text_of(sid)))
        self._text_of = text_of

    def take_texts(self, positions: np.ndarray) -> list[bytes]:
        """The texts at many positions at once (`SampleBatch.label_texts_at`)."""
        return list(map(self._text_of, self._ids[positions].tolist()))


class SeriesRegistry:
    """Per-format memory of series: cheap key -> id, id -> canonical labels.

    Bounded: past `limits.series_cache_size` entries everything is forgotten at
    once (a new generation) and rebuilt from the traffic; callers holding
    derived caches compare `generation` to know when to drop theirs. The labels
    of the previous generation stay reachable, so a request that straddles a
    reset still finds every id it registered.
    """

    def __init__(self, limits: IngestLimits) -> None:
        self.limits = limits
        self.ids: dict[Hashable, int] = {}
        self.labels_by_id: dict[int, Labels] = {}
        self._previous: dict[int, Labels] = {}
        # When set (in a decode worker process), every newly remembered label set is
        # also noted here as its `encode_labels` text, to be sent back with the batch.
        self.journal: dict[int, bytes] | None = None
        # False in a decode worker: the server keeps the labels (each batch carries
        # those of its new series, the journal), so the worker's registry holds keys and
        # ids only. Its copies were 1.8 KB per series in every worker (1 M series over
        # remote_write: 1.8 GiB).
        self.keeps_labels = True
        self._unkept = 0  # label sets remembered but not kept, this generation
        self.generation = 0
        self.lock = threading.Lock()

    def register(self, labels: dict[str, str], where: str, key: Hashable = None) -> int:
        """Validate a new label set and return its id (remembered under `key` if given)."""
        self.limits.check_labels(labels, where)
        canon = canonical(labels)
        sid = series_id(canon)
        self.maybe_reset()
        self.remember(sid, canon)
        if key is not None:
            self.ids[key] = sid
        return sid

    def remember(self, sid: int, labels: Labels) -> None:
        if self.keeps_labels:
            self.labels_by_id[sid] = labels
        else:
            self._unkept += 1
        if self.journal is not None:
            self.journal[sid] = encode_labels(labels)

    @property
    def texts_only(self) -> bool:
        """Whether new series need only their text (`remember_texts`): a decode worker's
        registry, which keeps no labels and sends texts back."""
        return not self.keeps_labels and self.journal is not None

    def remember_texts(self, sids: list[int], texts: list[bytes]) -> None:
        """`remember` for a `texts_only` registry, from label sets' texts alone (a
        decoder that composes texts from cached pieces builds no tuple at all)."""
        assert self.journal is not None
        self._unkept += len(sids)
        self.journal.update(zip(sids, texts, strict=True))

    def maybe_reset(self) -> None:
        if len(self.labels_by_id) + self._unkept >= self.limits.series_cache_size:
            self.reset()

    def reset(self) -> None:
        # New dicts rather than clear(): batches built from the old ones keep them.
        self.ids = {}
        self._previous, self.labels_by_id = self.labels_by_id, {}
        self._unkept = 0
        self.generation += 1

    def labels_of(self, sid: int) -> Labels:
        found = self.labels_by_id.get(sid)
        return found if found is not None else self._previous[sid]

    def add_checked(self, labels: dict[str, str]) -> int:
        """Like `register`, for a label set whose names and sizes are already checked."""
        canon = tuple(sorted(labels.items()))  # callers leave out empty values
        sid = series_id(canon)
        self.remember(sid, canon)
        return sid

    def batch(
        self, sample_ids: np.ndarray, timestamps: np.ndarray, values: np.ndarray
    ) -> SampleBatch:
        ids = np.ascontiguousarray(sample_ids, dtype=np.int64)
        return SampleBatch(
            series_ids=ids,  # repeats allowed; the store registers each unknown id once
            series_labels=LabelsLookup(ids, self.labels_of),
            sample_series=ids,
            timestamps=np.ascontiguousarray(timestamps, dtype=np.int64),
            values=np.ascontiguousarray(values, dtype=np.float64),
        )


def check_times(
    timestamps: np.ndarray, limits: IngestLimits, where: str | Callable[[int], str]
) -> None:
    """Refuse the request if any timestamp lies outside the accepted window.

    `where` names the field, or maps a sample's position to it (e.g. its line).
    """
    if not len(timestamps):
        return
    oldest, newest = limits.time_window()
    bad = np.flatnonzero((timestamps < oldest) | (timestamps > newest))
    if len(bad):
        first = int(bad[0])
        label = where if isinstance(where, str) else where(first)
        limits.check_timestamp(int(timestamps[first]), label)
