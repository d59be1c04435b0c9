"""Immutable Parquet blocks: writing, opening, and selective reads.

Layout (docs/format/blocks.md): rows sorted by (series, ts), one time
partition per block, columns

    series  int64   DELTA_BINARY_PACKED  (runs of one id: deltas of 0)
    ts      int64   DELTA_BINARY_PACKED  (regular scrapes: near-constant deltas)
    scale   int8    dictionary + RLE     (decimal exponent per row, -1 = raw float)
    vint    int64   DELTA_BINARY_PACKED  (value * 10**scale, exact)
    vfloat  float64 nullable, BYTE_STREAM_SPLIT (only where no exact scale exists)

all zstd-compressed. Metric values are mostly integers or short decimals;
stored as exact scaled integers they delta-encode to a few bits, while any
value that does not round-trip bit for bit (NaN, ±Inf, long fractions) is
kept as a raw float. Small row groups carry min/max statistics on `series`,
which the reader keeps in memory to read only the row groups holding the
series it was asked for.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hakon.store.interface import Samples
from hakon.store.merge import EMPTY, ranges_for

MAX_SCALE = 9
_POW10 = 10.0 ** np.arange(MAX_SCALE + 1)
_EXACT_LIMIT = float(2**53)

RAW_SCHEMA = pa.schema(
    [
        ("series", pa.int64()),
        ("ts", pa.int64()),
        ("scale", pa.int8()),
        ("vint", pa.int64()),
        ("vfloat", pa.float64()),
    ]
)


def choose_scales(series: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per row, the decimal exponent that represents the value exactly, unified per series.

    -1 where no exponent up to MAX_SCALE round-trips the float bit for bit.
    """
    n = len(values)
    scale = np.full(n, -1, dtype=np.int8)
    finite = np.isfinite(values)
    negative_zero = (values == 0) & np.signbit(values)
    pending = finite & (np.abs(values) < _EXACT_LIMIT) & ~negative_zero
    with np.errstate(invalid="ignore", over="ignore"):
        for k in range(MAX_SCALE + 1):
            if not pending.any():
                break
            idx = np.flatnonzero(pending)
            scaled = np.round(values[idx] * _POW10[k])
            ok = (np.abs(scaled) < _EXACT_LIMIT) & (scaled / _POW10[k] == values[idx])
            scale[idx[ok]] = k
            pending[idx[ok]] = False
    if n == 0:
        return scale
    # One exponent per series run (the largest needed), so deltas stay small; rows
    # that cannot use it exactly fall back to raw floats.
    starts = np.flatnonzero(np.concatenate(([True], series[1:] != series[:-1])))
    run_max = np.maximum.reduceat(scale, starts)
    unified = np.repeat(run_max, np.diff(np.append(starts, n)))
    usable = scale >= 0
    if (unified != scale).any():
        with np.errstate(invalid="ignore", over="ignore"):
            k = np.clip(unified, 0, MAX_SCALE)
            scaled = np.round(values * _POW10[k])
            exact = (np.abs(scaled) < _EXACT_LIMIT) & (scaled / _POW10[k] == values)
        usable &= exact & (unified >= 0) & ~((values == 0) & np.signbit(values))
    return np.where(usable, unified, -1).astype(np.int8)


def encode_values(series: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, ...]:
    scale = choose_scales(series, values)
    as_int = scale >= 0
    with np.errstate(invalid="ignore", over="ignore"):
        vint = np.where(as_int, np.round(values * _POW10[np.clip(scale, 0, None)]), 0).astype(
            np.int64
        )
    return scale, vint, as_int


def decode_values(scale: np.ndarray, vint: np.ndarray, vfloat: np.ndarray) -> np.ndarray:
    out = vint / _POW10[np.clip(scale, 0, None)]
    raw = scale < 0
    if raw.any():
        out[raw] = vfloat[raw]
    return out


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_parquet_atomically(
    table: pa.Table, path: Path, row_group_rows: int, encodings: dict[str, str]
) -> int:
    """Write to a temporary name, fsync, rename into place, fsync the directory."""
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(
        table,
        tmp,
        row_group_size=row_group_rows,
        compression="zstd",
        compression_level=3,
        use_dictionary=[c for c in table.column_names if c not in encodings],
        column_encoding=encodings,
        write_statistics=["series"],
        data_page_size=1 << 20,
    )
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.rename(tmp, path)
    _fsync_dir(path.parent)
    return path.stat().st_size


RAW_ENCODINGS = {
    "series": "DELTA_BINARY_PACKED",
    "ts": "DELTA_BINARY_PACKED",
    "vint": "DELTA_BINARY_PACKED",
    "vfloat": "BYTE_STREAM_SPLIT",
}


def write_raw_block(samples: Samples, path: Path, row_group_rows: int) -> int:
    scale, vint, as_int = encode_values(samples.series, samples.values)
    vfloat = pa.array(samples.values, mask=as_int)
    table = pa.table(
        [
            pa.array(samples.series),
            pa.array(samples.timestamps),
            pa.array(scale),
            pa.array(vint),
            vfloat,
        ],
        schema=RAW_SCHEMA,
    )
    return write_parquet_atomically(table, path, row_group_rows, RAW_ENCODINGS)


@dataclass
class BlockFile:
    """An open Parquet block with its row-group index on `series`.

    The file handle stays open for the object's lifetime, so a reader holding
    a snapshot can finish even after compaction has unlinked the file.
    """

    path: Path
    handle: pa.NativeFile
    file: pq.ParquetFile
    rg_min: np.ndarray
    rg_max: np.ndarray
    rg_rows: np.ndarray
    lock: threading.Lock

    @classmethod
    def open(cls, path: Path) -> BlockFile:
        handle = pa.memory_map(str(path), "r")
        pf = pq.ParquetFile(handle)
        meta = pf.metadata
        col = pf.schema_arrow.get_field_index("series")
        mins, maxs, rows = [], [], []
        for i in range(meta.num_row_groups):
            rg = meta.row_group(i)
            stats = rg.column(col).statistics
            mins.append(stats.min if stats is not None and stats.has_min_max else -(2**63))
            maxs.append(stats.max if stats is not None and stats.has_min_max else 2**63 - 1)
            rows.append(rg.num_rows)
        return cls(
            path,
            handle,
            pf,
            np.array(mins, dtype=np.int64),
            np.array(maxs, dtype=np.int64),
            np.array(rows, dtype=np.int64),
            threading.Lock(),
        )

    @property
    def num_rows(self) -> int:
        return int(self.rg_rows.sum())

    def row_groups_for(self, ids: np.ndarray) -> list[int]:
        """Row groups whose series range holds at least one of the sorted `ids`."""
        if ids is None:
            return list(range(len(self.rg_min)))
        lo = np.searchsorted(ids, self.rg_min, side="left")
        hi = np.searchsorted(ids, self.rg_max, side="right")
        return np.flatnonzero(hi > lo).tolist()

    def read_table(self, row_groups: list[int], columns: list[str]) -> pa.Table:
        with self.lock:
            return self.file.read_row_groups(row_groups, columns=columns, use_threads=False)

    def read_raw(self, ids: np.ndarray | None, start: int, end: int) -> Samples:
        groups = self.row_groups_for(ids)
        if not groups:
            return EMPTY
        table = self.read_table(groups, ["series", "ts", "scale", "vint", "vfloat"])
        series = table.column("series").to_numpy()
        ts = table.column("ts").to_numpy()
        rows = ranges_for(series, ids) if ids is not None else np.arange(len(ts))
        rows = rows[(ts[rows] >= start) & (ts[rows] <= end)]
        if not len(rows):
            return EMPTY
        scale = table.column("scale").to_numpy()[rows]
        vint = table.column("vint").to_numpy()[rows]
        vfloat = table.column("vfloat").to_numpy(zero_copy_only=False)[rows]
        return Samples(series[rows], ts[rows], decode_values(scale, vint, vfloat))
