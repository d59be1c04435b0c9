"""HakonGo connector payloads: typed decoding and flattening into a columnar batch.

The request types are generated from `hakon.ingest.collectors`, so the schema
clients see, the validation and the series written cannot drift apart.
msgspec validates while it parses (types, required fields, ranges, enums) and
names the failing field by JSON path.

Flattening follows the measured fast path (`stack-ceilings.md`): a resource's
identity tuple is resolved once to a cached row holding the ids of all its
series; numbers and states are pulled with C-level `map(attrgetter(...))`
into numpy; per-sample Python objects are never built. Absent numbers decode
as NaN (JSON cannot carry NaN) and are masked out.
"""

from __future__ import annotations

import functools
import math
import re
import threading
from collections.abc import Callable, Hashable, Sequence
from datetime import datetime
from itertools import chain
from operator import attrgetter
from typing import Annotated, Any, Literal

import msgspec
import numpy as np
from xxhash import xxh64_intdigest as xxh64

from hakon.errors import InvalidRequest
from hakon.ingest.collectors import COLLECTORS, ENVELOPE_LABELS, Collector, Kind
from hakon.ingest.limits import IngestLimits
from hakon.ingest.series import SeriesRegistry, check_times
from hakon.store.interface import SampleBatch
from hakon.store.labels import METRIC_NAME, Labels, encode_pair, pair_pieces, signed_id

_NAN = math.nan
_BOOL_VALUE = {True: 1.0, False: 0.0, None: _NAN}
NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
MetricKey = Annotated[str, msgspec.Meta(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$", max_length=200)]


class Platform(msgspec.Struct, gc=False, omit_defaults=True):
    os: str = ""
    architecture: str = ""
    version: str = ""


class NodeGroup(msgspec.Struct, gc=False, omit_defaults=True):
    name: NonEmpty
    labels: dict[str, str] = {}
    platform: Platform | None = None
    metadata: dict[str, str] = {}


class Provider(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    name: str = ""
    region: str = ""
    zone: str = ""


class Context(msgspec.Struct, gc=False, omit_defaults=True):
    name: NonEmpty
    kubernetes_version: str = ""
    provider: Provider = Provider()
    labels: dict[str, str] = {}
    node_groups: list[NodeGroup] = []
    metadata: dict[str, str] = {}


def _resource_type(kind: Kind) -> type:
    fields: list[tuple[str, Any, Any] | tuple[str, Any]] = []
    for ident in kind.identity:
        doc = msgspec.Meta(description=ident.description + f" Label `{ident.label}`.")
        if ident.required:
            fields.append((ident.field, Annotated[str, msgspec.Meta(min_length=1), doc]))
    for ident in kind.identity:
        if not ident.required:
            doc = msgspec.Meta(description=ident.description + f" Label `{ident.label}`.")
            fields.append((ident.field, Annotated[str, doc], ""))
    for num in kind.numbers:
        doc = msgspec.Meta(
            ge=0, description=f"{num.description} Series `{kind.prefix}_{num.field}`."
        )
        fields.append((num.field, Annotated[float, doc], _NAN))
    for state in kind.states:
        series = f"{kind.prefix}_{state.field}"
        if state.is_bool:
            doc = msgspec.Meta(description=f"{state.description} Series `{series}` (0/1).")
            fields.append((state.field, Annotated[bool | None, doc], None))
        else:
            doc = msgspec.Meta(
                description=f"{state.description} Series `{series}{{{state.field}=...}}`: "
                "1 for the current value, 0 for the others."
            )
            fields.append((state.field, Annotated[Literal[state.values] | None, doc], None))  # type: ignore[valid-type]
    if kind.child is not None:
        fields.append((kind.child_field, list[_resource_type(kind.child)], []))  # type: ignore[misc]
    if kind.extra_metrics:
        doc = msgspec.Meta(
            description=f"Extra values: each key `k` becomes series `{kind.prefix}_k` with "
            "this resource's labels."
        )
        fields.append(("metrics", Annotated[dict[MetricKey, float], doc], {}))
    return msgspec.defstruct(kind.name, fields, gc=False, omit_defaults=True)  # type: ignore[arg-type]


def request_type(collector: Collector) -> type:
    resource = _resource_type(collector.kind)
    return msgspec.defstruct(
        f"{collector.kind.name}Request",
        [
            ("cluster_id", Annotated[str, msgspec.Meta(min_length=1)]),
            ("context", Context),
            ("collected_at", Annotated[datetime, msgspec.Meta(tz=True)]),
            ("resources", list[resource]),  # type: ignore[valid-type]
        ],
        gc=False,
    )


def validation_error(exc: msgspec.MsgspecError | RecursionError) -> InvalidRequest:
    """msgspec's "... - at `$.resources[3].x`" as our error naming the JSON path."""
    if isinstance(exc, RecursionError):
        return InvalidRequest("body: JSON nested too deeply", field="body")
    text = str(exc)
    found = _AT_PATH.search(text) if isinstance(exc, msgspec.ValidationError) else None
    if found is not None:
        path = found.group(2).removeprefix(".") or "body"
        what = text[: found.start()] + (" (in a key)" if found.group(1) else "")
        return InvalidRequest(f"{path}: {what}", field=path)
    if isinstance(exc, msgspec.ValidationError):
        return InvalidRequest(f"body: {text}", field="body")
    return InvalidRequest(f"body is not valid JSON: {text}", field="body")


_U64 = (1 << 64) - 1


_AT_PATH = re.compile(r" - at `(key` in `)?\$([^`]*)`$")


class _Rows:
    """Resources of one kind seen in one cluster context: key -> row of series ids.

    An id of 0 means "not computed yet": a series is hashed when it first has a
    value, so fields an agent never sends cost nothing. (An id that really is 0
    is merely recomputed each time.)
    """

    def __init__(self, width: int) -> None:
        self.index: dict[Hashable, int] = {}
        self.ids = np.zeros((64, width), np.int64)
        self.labels: list[dict[str, str]] = []
        self._encoded: list[tuple[Labels, bytes, bytes] | None] = []
        # The last request's resources (a signature compared with ==) and their rows:
        # an agent sends the same resources in the same order scrape after scrape.
        self.last: tuple[Any, np.ndarray] | None = None

    def encoded(self, row: int) -> tuple[Labels, bytes, bytes] | None:
        """A row's sorted label pairs, their encoding (for ids) and their text after the
        name pair (`,` and the pairs' texts, then `]`: the rest of an `encode_labels`
        text); None if a name sorts before __name__."""
        found = self._encoded[row]
        if found is None:
            pairs = tuple(sorted(self.labels[row].items()))
            if pairs and pairs[0][0] < METRIC_NAME:
                return None
            pieces = list(map(pair_pieces, pairs))
            found = self._encoded[row] = (
                pairs,
                b"".join([p[0] for p in pieces]),
                b"".join([p[1] for p in pieces]) + b"]",
            )
        return found

    def add(self, key: Hashable, labels: dict[str, str]) -> int:
        """A new row; its ids stay 0 until each series first has a value."""
        row = len(self.labels)
        if row == len(self.ids):
            grown = np.zeros((2 * row, self.ids.shape[1]), np.int64)
            grown[:row] = self.ids
            self.ids = grown
        self.labels.append(labels)
        self._encoded.append(None)
        self.index[key] = row  # published last: readers find the row only once it is filled
        return row


class _KindFlattener:
    """Flattens resources of one kind (and its children) into ids and values."""

    def __init__(self, kind: Kind, registry: SeriesRegistry) -> None:
        self.kind = kind
        self.registry = registry
        self.series = kind.series_names()
        self.width = len(self.series)
        self.name_pairs = [(METRIC_NAME, name) for name, _ in self.series]
        self.name_encoded = [encode_pair(pair) for pair in self.name_pairs]
        self.name_texts = [b"[" + pair_pieces(pair)[1][1:] for pair in self.name_pairs]
        self._plain = [state is None for _, state in self.series]
        self.extra_labels = 1 + any(state is not None for _, state in self.series)
        fields = [i.field for i in kind.identity]
        self.key_of = attrgetter(*fields)
        self.numbers_of = attrgetter(*(n.field for n in kind.numbers))
        # Enum codes map the value to its column (None, not sent, to -1); msgspec has
        # already refused values outside the enum.
        self.states = [
            (
                attrgetter(s.field),
                {**{v: i for i, v in enumerate(s.values)}, None: -1} if s.values else None,
            )
            for s in kind.states
        ]
        self.child = _KindFlattener(kind.child, registry) if kind.child else None
        self.children_of = attrgetter(kind.child_field) if kind.child else None
        self.child_name_of = attrgetter(kind.child.identity[0].field) if kind.child else None

    def values(self, rs: list[Any]) -> np.ndarray:
        """n x width matrix of the resources' values; NaN where a field was not sent."""
        n, k = len(rs), len(self.kind.numbers)
        out = np.empty((n, self.width), np.float64)
        out[:, :k] = np.fromiter(
            chain.from_iterable(map(self.numbers_of, rs)), np.float64, n * k
        ).reshape(n, k)
        col = k
        for getter, codes in self.states:
            raw = list(map(getter, rs))
            width = 1 if codes is None else len(codes) - 1  # codes include None
            if raw.count(None) == n:
                out[:, col : col + width] = _NAN
            elif codes is None:
                out[:, col] = np.fromiter(map(_BOOL_VALUE.__getitem__, raw), np.float64, n)
            else:
                idx = np.fromiter(map(codes.__getitem__, raw), np.int64, n)
                block = (idx[:, None] == np.arange(width)).astype(np.float64)
                block[idx < 0] = _NAN
                out[:, col : col + width] = block
            col += width
        return out

    def ids_for(self, rows: _Rows, row_of: np.ndarray, values: np.ndarray) -> np.ndarray:
        ids = rows.ids[row_of]
        need = (ids == 0) & ~np.isnan(values)
        if need.any():
            self.fill_ids(rows, row_of, need)
            ids = rows.ids[row_of]
        return ids

    def rows(
        self,
        rows: _Rows,
        signature: Any,
        keys_of: Callable[[], Sequence[Hashable]],
        parent_of: Callable[[int], dict[str, str]],
        rs: list[Any],
        where: Callable[[int], str],
    ) -> np.ndarray:
        """Each resource's row; new resources get one (their labels checked, named by `where`).

        `signature` stands for the resources' keys (`keys_of()`): when it equals the
        last request's, so do the rows, found and checked for repeats then. Comparing
        a scrape's keys with the last scrape's costs a quarter of hashing and looking
        them up (500 pods: 35 against 140 us), and containers compare their names
        instead of building a key each.
        """
        last = rows.last
        if last is not None and last[0] == signature:
            return last[1]
        keys = keys_of()
        _refuse_repeats(keys, where, self.kind)
        found = list(map(rows.index.get, keys))
        if None in found:
            with self.registry.lock:
                for j, row in enumerate(found):
                    if row is None:
                        found[j] = rows.index.get(keys[j])
                        if found[j] is None:
                            path = functools.partial(where, j)  # formatted only for an error
                            found[j] = self._add(rows, keys[j], parent_of(j), rs[j], path)
        result = np.fromiter(found, np.int64, len(found))
        result.flags.writeable = False  # shared by the requests that repeat these resources
        rows.last = (signature, result)
        return result

    def _add(
        self,
        rows: _Rows,
        key: Hashable,
        parent: dict[str, str],
        resource: Any,
        where: Callable[[], str],
    ) -> int:
        """A new resource: check its labels now; its series get ids when they get values.

        Label names all come from the collector table (valid by construction), so only
        the count and the values' lengths need checking.
        """
        labels = dict(parent)
        for ident in self.kind.identity:
            value = getattr(resource, ident.field)
            if value:
                labels[ident.label] = value
        self.registry.limits.check_sizes(labels, self.extra_labels, where)
        return rows.add(key, labels)

    def fill_ids(self, rows: _Rows, row_of: np.ndarray, need: np.ndarray) -> None:
        """Give ids to the series that have a value now but none yet (their id is 0).

        A cluster's first payload brings every series new, so this loop is the cost
        of a new series: one pass per resource, the ids written back at once.
        """
        selected = np.flatnonzero(need.any(axis=1))
        targets = row_of[selected]
        registry = self.registry
        plain, name_encoded, name_pairs = self._plain, self.name_encoded, self.name_pairs
        name_texts, texts_only = self.name_texts, registry.texts_only
        columns_of: dict[tuple[bool, ...], tuple[list[int], bool]] = {}
        at_rows: list[int] = []
        at_cols: list[int] = []
        hashes: list[int] = []  # unsigned 64-bit: ids as xxh64 gives them
        composed: list[int] = []  # (a worker's) the hashes of the series in `texts`
        texts: list[bytes] = []
        with registry.lock:
            todo = need[selected] & (rows.ids[targets] == 0)
            for row, mask in zip(targets.tolist(), map(tuple, todo.tolist()), strict=True):
                found = columns_of.get(mask)
                if found is None:
                    cols = [c for c, wanted in enumerate(mask) if wanted]
                    found = columns_of[mask] = (cols, all(plain[c] for c in cols))
                cols, all_plain = found
                base = rows.encoded(row)
                if base is not None and all_plain:
                    # `__name__` sorts before every lowercase label name, so the canonical
                    # form is the name pair then the resource's pairs.
                    encoded = base[1]
                    row_hashes = [xxh64(name_encoded[c] + encoded) for c in cols]
                    hashes += row_hashes
                    if texts_only:  # a worker's: the texts, composed from cached pieces
                        composed += row_hashes
                        texts += [name_texts[c] + base[2] for c in cols]
                    else:
                        for c, h in zip(cols, row_hashes, strict=True):
                            registry.remember(signed_id(h), (name_pairs[c], *base[0]))
                else:
                    hashes += [self._series_id_slow(rows, row, c) & _U64 for c in cols]
                at_rows += [row] * len(cols)
                at_cols += cols
            if composed:
                signed = np.array(composed, dtype=np.uint64).view(np.int64)
                registry.remember_texts(signed.tolist(), texts)
            rows.ids[at_rows, at_cols] = np.array(hashes, dtype=np.uint64).view(np.int64)

    def _series_id_slow(self, rows: _Rows, row: int, c: int) -> int:
        name, state = self.series[c]
        labels = {**rows.labels[row], METRIC_NAME: name}
        if state is not None:
            labels[state[0]] = state[1]
        return self.registry.add_checked(labels)


class HakonGoDecoder:
    """Decodes one collector's requests into sample batches."""

    def __init__(self, collector: Collector, limits: IngestLimits) -> None:
        self.collector = collector
        self.limits = limits
        self.type = REQUEST_TYPES[collector.path]
        self._decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(self.type)
        self.registry = SeriesRegistry(limits)
        self.flat = _KindFlattener(collector.kind, self.registry)
        self._caches: dict[tuple[str, ...], tuple[_Rows, _Rows | None]] = {}
        self._generation = 0
        self._lock = threading.Lock()

    def decode(self, body: bytes) -> tuple[tuple[str, dict[str, Any]], SampleBatch]:
        """((cluster_id, context as plain data), batch); raises InvalidRequest naming the
        field. The context goes back to the caller for the cluster registry."""
        try:
            request = self._decoder.decode(body)
        except (msgspec.MsgspecError, RecursionError) as exc:
            raise validation_error(exc) from None
        batch = self.flatten(request)
        return (request.cluster_id, msgspec.to_builtins(request.context)), batch

    def flatten(self, request: Any) -> SampleBatch:
        ctx = request.context
        envelope = (request.cluster_id, ctx.name, ctx.provider.name, ctx.provider.region)
        base = {k: v for k, v in zip(ENVELOPE_LABELS, envelope, strict=True) if v}
        self.limits.check_sizes(base, 0, "context")
        ts_ms = int(request.collected_at.timestamp() * 1000)
        check_times(np.array([ts_ms]), self.limits, "collected_at")
        rs = request.resources
        n = len(rs)
        if not n:
            return self.registry.batch(*(np.empty(0, t) for t in (np.int64, np.int64, np.float64)))
        flat = self.flat
        parent_rows, child_rows = self._rows_for(envelope)
        keys = list(map(flat.key_of, rs))
        rows = flat.rows(parent_rows, keys, lambda: keys, lambda j: base, rs, _resource_path)
        values = flat.values(rs)
        ids = flat.ids_for(parent_rows, rows, values)
        id_parts, value_parts = [ids.ravel()], [values.ravel()]
        if flat.child is not None and child_rows is not None:
            self._children(rs, rows, parent_rows, child_rows, id_parts, value_parts)
        if flat.kind.extra_metrics and any(map(attrgetter("metrics"), rs)):
            self._extras(envelope, rs, rows, parent_rows, id_parts, value_parts)
        sample_ids = np.concatenate(id_parts) if len(id_parts) > 1 else id_parts[0]
        sample_values = np.concatenate(value_parts) if len(value_parts) > 1 else value_parts[0]
        present = ~np.isnan(sample_values)
        if not present.all():
            sample_ids, sample_values = sample_ids[present], sample_values[present]
        self.limits.check_sample_count(len(sample_values))
        return self.registry.batch(
            sample_ids, np.full(len(sample_values), ts_ms, np.int64), sample_values
        )

    def _rows_for(self, envelope: tuple[str, ...]) -> tuple[_Rows, _Rows | None]:
        self.registry.maybe_reset()
        if self._generation != self.registry.generation:
            with self._lock:
                self._caches = {}
                self._generation = self.registry.generation
        found = self._caches.get(envelope)
        if found is None:
            with self._lock:
                found = self._caches.get(envelope)
                if found is None:
                    child = self.flat.child
                    found = (_Rows(self.flat.width), _Rows(child.width) if child else None)
                    self._caches[envelope] = found
        return found

    def _children(
        self,
        rs: list[Any],
        rows: np.ndarray,
        parent_rows: _Rows,
        child_rows: _Rows,
        id_parts: list[np.ndarray],
        value_parts: list[np.ndarray],
    ) -> None:
        flat = self.flat
        child = flat.child
        assert child is not None and flat.children_of is not None and flat.child_name_of
        lists = list(map(flat.children_of, rs))
        counts = np.fromiter(map(len, lists), np.int64, len(rs))
        total = int(counts.sum())
        if not total:
            return
        kids = list(chain.from_iterable(lists))
        owners = np.repeat(rows, counts)
        names = list(map(flat.child_name_of, kids))

        @functools.cache
        def places() -> tuple[np.ndarray, np.ndarray]:  # for `where`, computed once
            return np.repeat(np.arange(len(rs)), counts), np.cumsum(counts) - counts

        def where(k: int) -> str:
            owner_of, starts = places()
            return f"resources[{owner_of[k]}].{flat.kind.child_field}[{k - starts[owner_of[k]]}]"

        crow = child.rows(
            child_rows,
            (owners.tobytes(), names),
            lambda: list(zip(owners.tolist(), names, strict=True)),
            lambda k: parent_rows.labels[owners[k]],
            kids,
            where,
        )
        values = child.values(kids)
        id_parts.append(child.ids_for(child_rows, crow, values).ravel())
        value_parts.append(values.ravel())

    def _extras(
        self,
        envelope: tuple[str, ...],
        rs: list[Any],
        rows: np.ndarray,
        parent_rows: _Rows,
        id_parts: list[np.ndarray],
        value_parts: list[np.ndarray],
    ) -> None:
        prefix = self.flat.kind.prefix
        own = {name for name, _ in self.flat.series}
        registry = self.registry
        ids: list[int] = []
        values: list[float] = []
        for j, (resource, row) in enumerate(zip(rs, rows.tolist(), strict=True)):
            for name, value in resource.metrics.items():
                key = ("metrics", envelope, row, name)
                sid = registry.ids.get(key)
                if sid is None:
                    where = f"resources[{j}].metrics.{name}"
                    if f"{prefix}_{name}" in own:
                        raise InvalidRequest(
                            f"{where}: {prefix}_{name} is a field of its own; send it there",
                            field=where,
                        )
                    labels = {**parent_rows.labels[row], "__name__": f"{prefix}_{name}"}
                    sid = registry.register(labels, where, key)
                ids.append(sid)
                values.append(value)
        id_parts.append(np.array(ids, np.int64))
        value_parts.append(np.array(values, np.float64))


def _resource_path(j: int) -> str:
    return f"resources[{j}]"


def _refuse_repeats(keys: Sequence[Hashable], where: Callable[[int], str], kind: Kind) -> None:
    """Two entries for one resource in a request would race for the same series."""
    if len(set(keys)) == len(keys):
        return
    first: dict[Hashable, int] = {}
    for k, key in enumerate(keys):
        if key in first:
            fields = ", ".join(i.field for i in kind.identity)
            raise InvalidRequest(
                f"{where(k)}: repeats {where(first[key])} (same {fields})", field=where(k)
            )
        first[key] = k


REQUEST_TYPES = {c.path: request_type(c) for c in COLLECTORS}


def decoders(limits: IngestLimits) -> dict[str, HakonGoDecoder]:
    return {c.path: HakonGoDecoder(c, limits) for c in COLLECTORS}
