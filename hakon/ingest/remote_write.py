"""Prometheus remote_write 1.0: a snappy-compressed protobuf `WriteRequest`.

    WriteRequest { repeated TimeSeries timeseries = 1; repeated MetricMetadata metadata = 3; }
    TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2;
                   repeated Exemplar exemplars = 3; repeated Histogram histograms = 4; }
    Label        { string name = 1; string value = 2; }
    Sample       { double value = 1; int64 timestamp = 2; }

Why the decoder looks the way it does: Prometheus sends one sample per
`TimeSeries`, so the per-series cost is the per-sample cost, and Python cannot
afford to walk each series' labels. The C protobuf runtime (upb) checks the
request and gives each series' length, hence where it lies in the body. A
series almost always ends in a single 18-byte sample field (tag, length 16, a
double, a 6-byte varint timestamp: any time between 1971 and 2109); the bytes
before it are the label fields, which are the same in every request from the
same sender. So the label bytes are the cache key, looked up for the whole
request at once where they lie (`hakon.ingest.bytekeys`), and values and
timestamps of all such series are decoded at once with numpy, from views of
the body. A label prefix is parsed and validated
when first seen (it must hold labels only); every other shape of series (more
samples, exemplars, other field orders) takes the general path, which parses
it fully.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from hakon.errors import InvalidRequest
from hakon.ingest.bytekeys import MAX_KEY, ByteKeyTable, padded, windows
from hakon.ingest.limits import IngestLimits
from hakon.ingest.series import SeriesRegistry, check_times
from hakon.store.interface import SampleBatch


def _build_messages() -> dict[str, Any]:
    f = descriptor_pb2.FileDescriptorProto(name="hakon_remote_write.proto", package="hakon.rw")
    f.syntax = "proto3"
    T = descriptor_pb2.FieldDescriptorProto
    rep, opt = T.LABEL_REPEATED, T.LABEL_OPTIONAL

    def message(name: str, *fields: tuple[str, int, int, int, str]) -> None:
        m = f.message_type.add(name=name)
        for fname, number, label, ftype, type_name in fields:
            fd = m.field.add(name=fname, number=number, label=label, type=ftype)
            if type_name:
                fd.type_name = type_name

    message("Label", ("name", 1, opt, T.TYPE_STRING, ""), ("value", 2, opt, T.TYPE_STRING, ""))
    message("Sample", ("value", 1, opt, T.TYPE_DOUBLE, ""), ("timestamp", 2, opt, T.TYPE_INT64, ""))
    # The full series, for the general path. Exemplars and histograms are kept as
    # raw bytes: they are counted, not stored.
    message(
        "TimeSeries",
        ("labels", 1, rep, T.TYPE_MESSAGE, ".hakon.rw.Label"),
        ("samples", 2, rep, T.TYPE_MESSAGE, ".hakon.rw.Sample"),
        ("exemplars", 3, rep, T.TYPE_BYTES, ""),
        ("histograms", 4, rep, T.TYPE_BYTES, ""),
    )
    # The request split into raw series: same wire format, bytes instead of messages.
    message("RawWriteRequest", ("timeseries", 1, rep, T.TYPE_BYTES, ""))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"hakon.rw.{name}"))
        for name in ("TimeSeries", "RawWriteRequest", "Label", "Sample")
    }


_MESSAGES = _build_messages()
TimeSeries = _MESSAGES["TimeSeries"]
RawWriteRequest = _MESSAGES["RawWriteRequest"]

# The two shapes of a one-sample series' last field that the fast path knows:
# (tail length, byte checks, offset of the double or None for 0.0, offset of the
# 6-byte varint timestamp). proto3 omits a zero value, hence the second shape.
_SHAPES = (
    (18, ((0, 0x12), (1, 16), (2, 0x09), (11, 0x10)), 3, 12),
    (9, ((0, 0x12), (1, 7), (2, 0x10)), None, 3),
)
_SHIFTS = np.arange(0, 42, 7, dtype=np.uint64)


def _series_layout(body: bytes, series: Any, lengths: np.ndarray) -> tuple[bytes, np.ndarray]:
    """A buffer holding every series' bytes (padded for `ByteKeyTable`) and their starts.

    When the request is nothing but its series, each at `tag + varint length`,
    the body itself is that buffer; otherwise (metadata, non-minimal lengths)
    the series are joined.
    """
    varint = 1 + sum(lengths >= 1 << bits for bits in (7, 14, 21, 28))
    ends = np.cumsum(1 + varint + lengths)  # tag, length varint, the series
    if len(ends) and int(ends[-1]) == len(body):
        return padded(body), ends - lengths
    ends = np.cumsum(lengths)
    return padded(b"".join(series)), ends - lengths


class RemoteWriteDecoder:
    def __init__(self, limits: IngestLimits) -> None:
        self.limits = limits
        self.registry = SeriesRegistry(limits)
        self.skipped_histograms = 0
        # Label prefixes of up to MAX_KEY bytes; longer ones and the rare hash
        # collision are kept in the registry's `ids` under their bytes.
        self._prefixes = ByteKeyTable()
        self._prefixes_generation = 0

    def decode(self, body: bytes) -> SampleBatch:
        try:
            request = RawWriteRequest.FromString(body)
        except DecodeError as exc:
            raise InvalidRequest(f"body is not a valid WriteRequest: {exc}", field="body") from None
        series = request.timeseries
        n = len(series)
        self.limits.check_sample_count(n)
        ids = np.empty(n, np.int64)
        ts = np.empty(n, np.int64)
        values = np.empty(n, np.float64)
        pending = np.ones(n, bool)
        lengths = np.fromiter(map(len, series), np.int64, n)
        buffer, starts = _series_layout(body, series, lengths)
        for shape in _SHAPES:
            if pending.any():
                done = self._decode_shape(buffer, starts, lengths, pending, shape, ids, ts, values)
                pending &= ~done
        extra: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        drop = np.zeros(n, bool)
        for i in np.flatnonzero(pending).tolist():
            sid_arr, ts_arr, v_arr = self._decode_series(series[i], i)
            if len(ts_arr) == 1:
                ids[i], ts[i], values[i] = sid_arr[0], ts_arr[0], v_arr[0]
            else:
                drop[i] = True
                extra.append((sid_arr, ts_arr, v_arr))
        if extra:
            keep = ~drop
            ids = np.concatenate([ids[keep], *(e[0] for e in extra)])
            ts = np.concatenate([ts[keep], *(e[1] for e in extra)])
            values = np.concatenate([values[keep], *(e[2] for e in extra)])
            self.limits.check_sample_count(len(ts))
        check_times(ts, self.limits, "timeseries.samples.timestamp")
        return self.registry.batch(ids, ts, values)

    def _decode_shape(
        self,
        buffer: bytes,
        starts: np.ndarray,
        lengths: np.ndarray,
        candidates: np.ndarray,
        shape: tuple[int, tuple[tuple[int, int], ...], int | None, int],
        ids: np.ndarray,
        ts: np.ndarray,
        values: np.ndarray,
    ) -> np.ndarray:
        """Decode the candidates ending in `shape`; return the mask of those done."""
        tail_len, checks, value_at, ts_at = shape
        idx = np.flatnonzero(candidates & (lengths > tail_len))
        done = np.zeros(len(lengths), bool)
        if not len(idx):
            return done
        data = np.frombuffer(buffer, np.uint8)
        tail_at = starts[idx] + lengths[idx] - tail_len
        tails = windows(data, tail_len)[tail_at]
        ok = np.all(tails[:, ts_at : ts_at + 5] >= 0x80, axis=1)
        ok &= (tails[:, ts_at + 5] < 0x80) & (tails[:, ts_at + 5] > 0)
        for offset, expected in checks:
            ok &= tails[:, offset] == expected
        if not ok.all():
            idx, tails = idx[ok], tails[ok]
        if not len(idx):
            return done
        known, usable = self._prefix_ids(buffer, starts[idx], lengths[idx] - tail_len, idx)
        if value_at is None:
            values[idx] = 0.0
        else:
            values[idx] = (
                np.ascontiguousarray(tails[:, value_at : value_at + 8]).view("<f8").ravel()
            )
        digits = (tails[:, ts_at : ts_at + 6] & 0x7F).astype(np.uint64)
        ts[idx] = (digits << _SHIFTS).sum(axis=1).astype(np.int64)
        ids[idx] = known
        done[idx[usable]] = True
        return done

    def _prefix_ids(
        self, buffer: bytes, starts: np.ndarray, lengths: np.ndarray, where: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(id, usable) of each label prefix `buffer[start : start + length]`.

        A prefix seen before is found without leaving numpy; a new one is parsed,
        validated and registered (unusable when it holds more than labels).
        `where` is each prefix's series index, for error messages.
        """
        ids = np.zeros(len(starts), np.int64)
        usable = np.ones(len(starts), bool)
        short = np.flatnonzero(lengths <= MAX_KEY)
        with self.registry.lock:
            table = self._table()
            found_ids, found, hashes = table.lookup(buffer, starts[short], lengths[short])
            ids[short] = found_ids
            if found.all() and len(short) == len(starts):
                return ids, usable
            hash_of = dict(zip(short[~found].tolist(), hashes[~found].tolist(), strict=True))
            missing = np.setdiff1d(np.arange(len(starts)), short[found], assume_unique=True)
            registered: dict[bytes, int] = {}  # new in this request (a repeat is not re-added)
            for j in missing.tolist():
                start = int(starts[j])
                prefix = buffer[start : start + int(lengths[j])]
                sid = registered.get(prefix)
                if sid is None:
                    sid = self.registry.ids.get(prefix)
                if sid is None:
                    sid = self._register_prefix(prefix, int(where[j]))
                    if sid is None:
                        usable[j] = False
                        continue
                    registered[prefix] = sid
                    h = hash_of.get(j)
                    if h is None or not self._table().add(prefix, h, sid):
                        self.registry.ids[prefix] = sid
                ids[j] = sid
        return ids, usable

    def _table(self) -> ByteKeyTable:
        """The prefix table, emptied when the registry started a new generation or is full."""
        registry = self.registry
        if (
            self._prefixes_generation != registry.generation
            or len(self._prefixes) >= self.limits.series_cache_size
        ):
            self._prefixes.clear()
            self._prefixes_generation = registry.generation
        return self._prefixes

    def _register_prefix(self, prefix: bytes, i: int) -> int | None:
        """The id of a label-fields-only prefix (registered if new), else None."""
        try:
            parsed = TimeSeries.FromString(prefix)
        except DecodeError:
            return None
        if parsed.samples or parsed.exemplars or parsed.histograms:
            return None
        return self.registry.register(self._labels_of(parsed, i), f"timeseries[{i}].labels", prefix)

    def _labels_of(self, parsed: Any, i: int) -> dict[str, str]:
        labels: dict[str, str] = {}
        for label in parsed.labels:
            if label.name in labels:
                raise InvalidRequest(
                    f"timeseries[{i}].labels: duplicate label name {label.name!r}",
                    field=f"timeseries[{i}].labels",
                )
            labels[label.name] = label.value
        return labels

    def _decode_series(self, raw: bytes, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        try:
            parsed = TimeSeries.FromString(raw)
        except DecodeError as exc:
            raise InvalidRequest(
                f"timeseries[{i}] is not a valid TimeSeries: {exc}", field=f"timeseries[{i}]"
            ) from None
        labels = self._labels_of(parsed, i)
        sid = self.registry.register(labels, f"timeseries[{i}].labels")
        if parsed.histograms:
            self.skipped_histograms += len(parsed.histograms)
        n = len(parsed.samples)
        ts = np.fromiter((s.timestamp for s in parsed.samples), np.int64, n)
        values = np.fromiter((s.value for s in parsed.samples), np.float64, n)
        return np.full(n, sid, np.int64), ts, values


def encode_write_request(series: list[tuple[dict[str, str], list[tuple[int, float]]]]) -> bytes:
    """A WriteRequest as Prometheus encodes it (unsnappied): for tests and benchmarks."""
    out = []
    for labels, samples in series:
        ts = TimeSeries()
        for name, value in sorted(labels.items()):
            ts.labels.add(name=name, value=value)
        for t, v in samples:
            ts.samples.add(timestamp=t, value=v)
        out.append(ts.SerializeToString())
    request = RawWriteRequest()
    request.timeseries.extend(out)
    return bytes(request.SerializeToString())
