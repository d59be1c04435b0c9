"""The in-memory series index: labels by id, postings by label, matcher selection.

Built from the catalog on start and kept current by the appender. Label pairs
are interned, so a million series with Kubernetes-like labels cost a few
hundred bytes each. Postings are append-only lists (a series is added once).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence

import numpy as np
import xxhash

from hakon.gcpolicy import collector_paused
from hakon.store.labels import (
    METRIC_NAME,
    Labels,
    Matcher,
    decode_labels,
    decode_many_labels,
    series_id,
)

log = logging.getLogger(__name__)


class SeriesIndex:
    def __init__(self) -> None:
        self._labels: dict[int, Labels] = {}  # (or its text, until indexed)
        self._postings: dict[str, dict[str, list[int]]] = {}
        # Each distinct (name, value) pair once: the interned pair and its postings list
        # (the same list object `_postings[name][value]` holds).
        self._pairs: dict[tuple[str, str], tuple[tuple[str, str], list[int]]] = {}
        self._sorted_ids = np.empty(0, dtype=np.int64)
        self._recent: set[int] = set()
        self._unindexed: list[int] = []
        self._lock = threading.Lock()
        # Digests of id arrays already found fully known: agents send the same series
        # every scrape, so most batches are answered by one hash of their id bytes.
        self._known_sets: dict[bytes, None] = {}
        self._metric_keys: tuple[int, tuple[np.ndarray, np.ndarray]] | None = None

    def __len__(self) -> int:
        return len(self._labels)

    def __contains__(self, sid: int) -> bool:
        return sid in self._labels

    def labels(self, sid: int) -> Labels:
        found = self._labels[sid]
        return decode_labels(found) if isinstance(found, bytes) else found

    def add(self, ids: Iterable[int], label_sets: Iterable[Labels | bytes]) -> None:
        """Record new series; their postings are built later, off the write path.

        A cluster's first payload registers thousands of series at once, and the
        writer is waiting on it. Postings (and label interning) are deferred to
        the next read or maintenance round (`index_pending`), and so is decoding
        label sets given as `encode_labels` texts (what the write path has: the
        decode workers send them, the WAL and the catalog keep them).
        """
        known, recent = self._labels, self._recent
        with self._lock:
            for sid, labels in zip(ids, label_sets, strict=True):
                sid = int(sid)
                if sid in known:
                    continue
                known[sid] = labels  # type: ignore[assignment]  # (a text until indexed)
                self._unindexed.append(sid)
                recent.add(sid)
            if len(self._recent) > 50_000:
                self._fold_recent()

    def index_pending(self) -> None:
        """Index what was added since the last round, a slice at a time (maintenance).

        The lock is let go between slices (and the GIL with it): the appends that
        register new series and the queries wait for one slice, not for a whole
        burst (a cluster's 99,000 new series took 0.4 s to index). The collector
        stays paused through the round: let on between slices, it walked every
        slice's new objects again.
        """
        with collector_paused():
            while True:
                with self._lock:
                    if not self._unindexed:
                        return
                    part = self._unindexed[: self.DECODE_SLICE]
                    self._index(part)
                    del self._unindexed[: len(part)]
                time.sleep(0.0005)  # a thread waiting for the lock gets it now, not after us

    # Texts are decoded this many series at a time, each slice interned before the next:
    # a million decoded at once took 1 GB of short-lived objects, whose pages the
    # allocator then kept (resident memory at 1 M series: 1.3 -> 2.6 KB a series).
    # A slice of Kubernetes-like label sets takes about 8 ms.
    DECODE_SLICE = 2048

    def _index_pending(self) -> None:
        """Build postings for series added since the last call (the caller holds the lock)."""
        pending = self._unindexed
        if not pending:
            return
        with collector_paused():
            for at in range(0, len(pending), self.DECODE_SLICE):
                self._index(pending[at : at + self.DECODE_SLICE])
        self._unindexed = []

    def _index(self, sids: list[int]) -> None:
        self._decode(sids)
        self._intern(sids)

    def _intern(self, sids: list[int]) -> None:
        pairs, known = self._pairs, self._labels
        for sid in sids:
            interned = []
            for pair in known[sid]:
                entry = pairs.get(pair)
                if entry is None:
                    entry = pairs[pair] = (pair, [])
                    self._postings.setdefault(pair[0], {})[pair[1]] = entry[1]
                entry[1].append(sid)
                interned.append(entry[0])
            known[sid] = tuple(interned)

    def _decode(self, sids: list[int]) -> None:
        """Decode the texts among these series' label sets, in one call."""
        known = self._labels
        encoded = [sid for sid in sids if type(known[sid]) is bytes]
        if not encoded:
            return
        texts: list[bytes] = [known[sid] for sid in encoded]  # type: ignore[misc]
        try:
            decoded = decode_many_labels(texts)
        except ValueError:  # a bug upstream: keep the readable ones
            decoded = []
            for sid, text in zip(encoded, texts, strict=True):
                try:
                    decoded.append(decode_labels(text))
                except ValueError as exc:
                    log.error("series %d has unreadable labels (%s); left out", sid, exc)
                    decoded.append(())
        for sid, labels in zip(encoded, decoded, strict=True):
            known[sid] = labels

    def metric_keys(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids sorted, the key of each one's metric name): arrays a block writer can
        take to another process; rebuilt only when series were added since the last call."""
        with self._lock:
            cached = self._metric_keys
            if cached is not None and cached[0] == len(self._labels):
                return cached[1]
            self._index_pending()
            names = self._postings.get(METRIC_NAME, {})
            ids = np.fromiter(
                (sid for posting in names.values() for sid in posting), dtype=np.int64
            )
            keys = np.repeat(
                np.array([series_id(((METRIC_NAME, n),)) for n in names], dtype=np.int64),
                [len(posting) for posting in names.values()],
            )
            order = np.argsort(ids)
            result = (ids[order], keys[order])
            self._metric_keys = (len(self._labels), result)
            return result

    def _fold_recent(self) -> None:
        # Recent ids are never in the sorted array (add skips known ids): sort the few
        # and insert them, linear in the total, where union1d re-sorted everything.
        fresh = np.fromiter(self._recent, dtype=np.int64, count=len(self._recent))
        fresh.sort()
        self._sorted_ids = np.insert(
            self._sorted_ids, np.searchsorted(self._sorted_ids, fresh), fresh
        )
        self._recent = set()

    def unknown(self, ids: np.ndarray) -> np.ndarray:
        """Boolean mask of the ids not yet in the index (vectorized for the hot path)."""
        digest = xxhash.xxh3_128_digest(np.ascontiguousarray(ids, dtype=np.int64).tobytes())
        if digest in self._known_sets:
            return np.zeros(len(ids), dtype=bool)
        missing = self._unknown(ids)
        if not missing.any():
            if len(self._known_sets) >= 65_536:
                self._known_sets.pop(next(iter(self._known_sets)))
            self._known_sets[digest] = None
        return missing

    def _unknown(self, ids: np.ndarray) -> np.ndarray:
        known = self._sorted_ids
        if len(known):
            pos = np.searchsorted(known, ids)
            pos[pos == len(known)] = 0
            missing = known[pos] != ids
        else:
            missing = np.ones(len(ids), dtype=bool)
        recent = self._recent
        if recent and missing.any():
            idx = np.flatnonzero(missing)
            hits = [
                i for i, sid in zip(idx.tolist(), ids[idx].tolist(), strict=True) if sid in recent
            ]
            missing[hits] = False
        return missing

    # With an equality matcher this selective, checking the other matchers on each
    # candidate's labels beats building and intersecting sets of bigger postings.
    VERIFY_AT_MOST = 4096

    def upper_bound(self, matchers: Sequence[Matcher]) -> int | None:
        """At most how many series `matchers` select, from posting sizes alone (no
        selection); None without an equality matcher to bound it."""
        sizes = [
            len(self._postings.get(m.name, {}).get(m.value, ()))
            for m in matchers
            if m.op == "=" and not m.matches_empty
        ]
        return min(sizes) if sizes else None

    def select(self, matchers: Sequence[Matcher]) -> dict[int, Labels]:
        """Ids and labels of the series matching every matcher."""
        positive: list[set[int]] = []
        filters: list[Matcher] = []
        with self._lock:
            self._index_pending()
            equal = sorted(
                (len(self._postings.get(m.name, {}).get(m.value, ())), i)
                for i, m in enumerate(matchers)
                if m.op == "=" and not m.matches_empty
            )
            if equal and (equal[0][0] <= self.VERIFY_AT_MOST or len(matchers) == 1):
                first = matchers[equal[0][1]]
                seeds: set[int] = set(self._postings.get(first.name, {}).get(first.value, ()))
                # Another equality matcher narrows by its posting when that is shorter than
                # the candidates (one set lookup per id of its); a longer one is cheaper
                # checked as a label pair of each candidate.
                used = {equal[0][1]}
                for size, i in equal[1:]:
                    if size < len(seeds):
                        m = matchers[i]
                        seeds = seeds.intersection(self._postings[m.name][m.value])
                        used.add(i)
                rest = [m for i, m in enumerate(matchers) if i not in used]
                return self._verified(seeds, rest)
            for m in matchers:
                if m.matches_empty:
                    filters.append(m)
                    continue
                values = self._postings.get(m.name, {})
                if m.op == "=":
                    ids = set(values.get(m.value, ()))
                else:
                    ids = set()
                    for value, posting in values.items():
                        if m.matches(value):
                            ids.update(posting)
                positive.append(ids)
            if not positive:
                candidates = set(self._labels)
        if positive:
            positive.sort(key=len)
            candidates = positive[0]
            for other in positive[1:]:
                candidates = candidates & other
                if not candidates:
                    return {}
        return self._verified(candidates, filters)

    def _verified(
        self, candidates: Iterable[int], matchers: Sequence[Matcher]
    ) -> dict[int, Labels]:
        labels_of = self._labels
        if not matchers:
            return {sid: labels_of[sid] for sid in candidates}
        # An equality matcher that does not match "" is a (name, value) pair the label
        # tuple must contain: a membership test, no dict per candidate.
        pairs = [(m.name, m.value) for m in matchers if m.op == "=" and not m.matches_empty]
        others = [m for m in matchers if m.op != "=" or m.matches_empty]
        out: dict[int, Labels] = {}
        for sid in candidates:
            labels = labels_of[sid]
            if not all(pair in labels for pair in pairs):
                continue
            if others:
                as_dict = dict(labels)
                if not all(m.matches(as_dict.get(m.name, "")) for m in others):
                    continue
            out[sid] = labels
        return out

    def label_names(self, ids: Iterable[int] | None = None) -> list[str]:
        if ids is None:
            with self._lock:
                self._index_pending()
                return sorted(self._postings)
        names: set[str] = set()
        for sid in ids:
            names.update(name for name, _ in self._labels[sid])
        return sorted(names)

    def label_values(self, name: str, ids: Iterable[int] | None = None) -> list[str]:
        if ids is None:
            with self._lock:
                self._index_pending()
                return sorted(self._postings.get(name, {}))
        values = {v for sid in ids for n, v in self._labels[sid] if n == name}
        return sorted(values)
