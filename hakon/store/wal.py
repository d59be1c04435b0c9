"""The write-ahead log: numbered segment files of checksummed columnar records.

Record layout (little endian), documented in docs/format/wal.md:

    magic  u16  0x4B48 ("HK")
    kind   u8   1 = samples, 2 = series
    flags  u8   0
    length u32  payload bytes
    crc32  u32  zlib.crc32 of the payload
    payload     samples: n u32, pad u32, series int64[n], timestamps int64[n], values float64[n]
                series:  n u32, pad u32, ids int64[n], ends u32[n], labels (n JSON texts;
                         text i ends at byte ends[i] of this blob)

Samples are stored raw (24 bytes each): the log lives only until the next
flush, and raw arrays write, checksum and replay at memory speed.

One writer owns the open segment. Segments are preallocated (zero-filled) so
that an fdatasync never has to persist a new file size. A torn or corrupt
tail (a crash mid-write) is found on replay by a short read, a bad magic or a
checksum mismatch; the segment is cut at the last good record and everything
before it is replayed. Zeros after the last record are the unused
preallocation, not damage.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MAGIC = 0x4B48
KIND_SAMPLES = 1
KIND_SERIES = 2
HEADER = struct.Struct("<HBBII")
COUNT = struct.Struct("<II")
SUFFIX = ".wal"


@dataclass(frozen=True)
class WalRecord:
    series: np.ndarray
    timestamps: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class SeriesRecord:
    """New series, written ahead of the first samples that use them: labels are
    durable with those samples, and reach the catalog later, off the write path."""

    ids: np.ndarray
    labels: list[bytes]  # each the catalog's JSON text of a label set


def encode_series(ids: np.ndarray, labels: list[bytes]) -> bytes:
    n = len(ids)
    ends = np.cumsum(np.fromiter(map(len, labels), dtype=np.int64, count=n))
    payload = b"".join(
        (
            COUNT.pack(n, 0),
            np.ascontiguousarray(ids, dtype="<i8").tobytes(),
            ends.astype("<u4").tobytes(),
            *labels,
        )
    )
    return HEADER.pack(MAGIC, KIND_SERIES, 0, len(payload), zlib.crc32(payload)) + payload


def _series_record(payload: memoryview, n: int) -> SeriesRecord | None:
    """The record, or None if its parts do not add up (a bug, not a torn write)."""
    base = COUNT.size
    if len(payload) < base + 12 * n:
        return None
    ids = np.frombuffer(payload, dtype="<i8", count=n, offset=base)
    ends = np.frombuffer(payload, dtype="<u4", count=n, offset=base + 8 * n).astype(np.int64)
    blob = payload[base + 12 * n :]
    if n and (ends[-1] != len(blob) or (np.diff(ends) < 0).any()):
        return None
    if not n and len(blob):
        return None
    starts = [0, *ends[:-1].tolist()] if n else []
    return SeriesRecord(ids, [bytes(blob[a:b]) for a, b in zip(starts, ends.tolist(), strict=True)])


def encode_samples(series: np.ndarray, timestamps: np.ndarray, values: np.ndarray) -> bytes:
    n = len(timestamps)
    payload = b"".join(
        (
            COUNT.pack(n, 0),
            np.ascontiguousarray(series, dtype="<i8").tobytes(),
            np.ascontiguousarray(timestamps, dtype="<i8").tobytes(),
            np.ascontiguousarray(values, dtype="<f8").tobytes(),
        )
    )
    return HEADER.pack(MAGIC, KIND_SAMPLES, 0, len(payload), zlib.crc32(payload)) + payload


def decode_records(
    data: bytes | memoryview,
) -> tuple[list[WalRecord | SeriesRecord], int, str | None]:
    """Records in `data`, the offset after the last good one, and why reading stopped early."""
    view = memoryview(data)
    records: list[WalRecord | SeriesRecord] = []
    offset = 0
    size = len(view)
    while offset < size:
        if size - offset < HEADER.size:
            return records, offset, "torn header"
        magic, kind, _flags, length, crc = HEADER.unpack_from(view, offset)
        if magic != MAGIC or kind not in (KIND_SAMPLES, KIND_SERIES):
            return records, offset, "bad magic"
        start = offset + HEADER.size
        if size - start < length:
            return records, offset, "torn record"
        payload = view[start : start + length]
        if zlib.crc32(payload) != crc:
            return records, offset, "checksum mismatch"
        if length < COUNT.size:
            return records, offset, "short payload"
        n, _ = COUNT.unpack_from(payload, 0)
        if kind == KIND_SERIES:
            series = _series_record(payload, n)
            if series is None:
                return records, offset, "bad series record"
            records.append(series)
            offset = start + length
            continue
        if length != COUNT.size + 24 * n:
            return records, offset, "length mismatch"
        base = COUNT.size
        records.append(
            WalRecord(
                np.frombuffer(payload, dtype="<i8", count=n, offset=base),
                np.frombuffer(payload, dtype="<i8", count=n, offset=base + 8 * n),
                np.frombuffer(payload, dtype="<f8", count=n, offset=base + 16 * n),
            )
        )
        offset = start + length
    return records, offset, None


class Wal:
    """Segment files in one directory; not thread safe: the appender thread owns it."""

    def __init__(self, directory: Path, segment_bytes: int) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self._fd: int | None = None
        self._written = 0
        existing = self.segments()
        self.current = (existing[-1] + 1) if existing else 1

    def start_after(self, checkpoint: int) -> None:
        """New writes go to a segment numbered past every existing one and the checkpoint,
        so replay (which skips segments below the checkpoint) always finds them."""
        self.current = max(self.current, checkpoint + 1)

    def path(self, seq: int) -> Path:
        return self.dir / f"{seq:010d}{SUFFIX}"

    def segments(self) -> list[int]:
        return sorted(int(p.stem) for p in self.dir.glob("*" + SUFFIX) if p.stem.isdigit())

    def replay(self, from_segment: int) -> Iterator[WalRecord | SeriesRecord]:
        """Every good record of every segment >= from_segment, cutting a torn tail."""
        for seq in self.segments():
            if seq < from_segment:
                continue
            path = self.path(seq)
            data = path.read_bytes()
            records, good, problem = decode_records(data)
            if problem is not None and not _all_zero(data, good):
                log.warning(
                    "WAL segment %s: %s at byte %d of %d; cutting it there (%d records kept)",
                    path.name, problem, good, len(data), len(records),
                )  # fmt: skip
            if problem is not None:
                with open(path, "r+b") as f:
                    f.truncate(good)
                    os.fsync(f.fileno())
            yield from records

    def needs_segment(self) -> bool:
        """Whether the next append opens a new segment (the caller drains syncs first)."""
        return self._fd is None or self._written >= self.segment_bytes

    def append(self, data: bytes) -> int:
        """Write one encoded record without syncing; returns the offset after it."""
        if self.needs_segment():
            self._open_next()
        assert self._fd is not None
        view = memoryview(data)
        offset = self._written
        try:
            while view:
                n = os.pwrite(self._fd, view, offset)
                view = view[n:]
                offset += n
        except OSError:
            # Cut what part of the record got out, so later records follow a good one.
            self.cut_unsynced(self._written)
            raise
        self._written = offset
        return offset

    @property
    def written(self) -> int:
        return self._written

    def sync(self) -> None:
        """fdatasync the open segment: every record appended before this call is durable."""
        if self._fd is not None:
            os.fdatasync(self._fd)

    def cut_unsynced(self, offset: int) -> None:
        """Drop everything after `offset` in the open segment (after a failed write or sync)."""
        try:
            assert self._fd is not None
            os.ftruncate(self._fd, offset)
            self._written = offset
        except OSError:
            self._close_current()
            self.current += 1

    def write(self, records: list[bytes]) -> None:
        """Append records and fdatasync once (for callers without a sync thread)."""
        before = self._written if self._fd is not None else 0
        self.append(b"".join(records))
        try:
            self.sync()
        except OSError:
            self.cut_unsynced(before)
            raise

    def rotate(self) -> int:
        """Close the open segment; later writes go to a new one. Returns the new number."""
        self._close_current()
        self.current += 1
        return self.current

    def _open_next(self) -> None:
        if self._fd is not None:
            self._close_current()
            self.current += 1
        path = self.path(self.current)
        existed = path.exists()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        self._written = os.fstat(self._fd).st_size if existed else 0
        if not existed:
            with contextlib.suppress(OSError):  # an optimization only
                os.posix_fallocate(self._fd, 0, self.segment_bytes)
        dir_fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _close_current(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):  # drop the unused preallocation
                os.ftruncate(self._fd, self._written)
            os.close(self._fd)
            self._fd = None
            self._written = 0

    def remove_before(self, seq: int) -> None:
        for s in self.segments():
            if s < seq and s != self.current:
                self.path(s).unlink(missing_ok=True)

    def size_bytes(self) -> int:
        """Bytes of WAL records (the open segment's preallocation not counted)."""
        total = 0
        for s in self.segments():
            if s == self.current and self._fd is not None:
                total += self._written
            elif self.path(s).exists():
                total += self.path(s).stat().st_size
        return total

    def close(self) -> None:
        self._close_current()


def _all_zero(data: bytes, start: int) -> bool:
    return data.count(0, start) == len(data) - start
