"""Immutable Parquet blocks: writing, opening, and selective reads.

Layout (docs/format/blocks.md): rows sorted by (series, ts), one time
partition per block, columns

    series    int64   dictionary + RLE     (one run per series)
    ts0       int64   nullable             (first timestamp of a series run, else null)
    tsx       int64   DELTA_BINARY_PACKED  (stitched timestamps, see below)
    scale     int8    dictionary + RLE     (decimal exponent per row, -1 = raw float)
    v0        int64   nullable             (first scaled value of a series run, else null)
    step      int64   dictionary + RLE     (GCD of a series run's value changes)
    vx        int64   DELTA_BINARY_PACKED  (stitched (value - v0) / step)
    vfloat    float64 nullable, BYTE_STREAM_SPLIT (only where no exact scale exists)

"Stitched": the column is the running sum of each series' own deltas, with
the delta at a series' first row replaced by its second row's delta. Parquet's
delta encoding then sees only in-series changes; a jump between two series
(a new hash id, a new counter magnitude) would otherwise widen a whole
miniblock to 64 bits. A value is `first + (x[row] - x[first row]) * step`, computed
in wrapping int64 arithmetic, which is exact because the true difference fits.
`step` is the GCD of a series' changes: memory gauges move in 4 KiB pages,
and dividing by the page saves 12 bits a sample.

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
from hakon.store.merge import EMPTY

MAX_SCALE = 9
_POW10 = 10.0 ** np.arange(MAX_SCALE + 1)
_EXACT_LIMIT = float(2**53)

RAW_SCHEMA = pa.schema(
    [
        ("series", pa.int64()),
        ("ts0", pa.int64()),
        ("tsx", pa.int64()),
        ("scale", pa.int8()),
        ("v0", pa.int64()),
        ("step", pa.int64()),
        ("vx", pa.int64()),
        ("vfloat", pa.float64()),
    ]
)
RAW_COLUMNS = RAW_SCHEMA.names


def run_starts(series: np.ndarray) -> np.ndarray:
    starts = np.empty(len(series), dtype=bool)
    if len(series):
        starts[0] = True
        np.not_equal(series[1:], series[:-1], out=starts[1:])
    return starts


def stitch(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Running sum of in-series deltas; a series' first delta copies its second."""
    n = len(values)
    if n == 0:
        return values.astype(np.int64)
    with np.errstate(over="ignore"):
        d = np.empty(n, dtype=np.int64)
        d[0] = 0
        np.subtract(values[1:], values[:-1], out=d[1:])
        first = np.flatnonzero(starts)
        nxt = first + 1
        ok = nxt < n
        ok[ok] &= ~starts[nxt[ok]]
        d[first] = 0
        d[first[ok]] = d[nxt[ok]]
        return np.cumsum(d, dtype=np.int64)


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


def factor_steps(
    vint: np.ndarray, as_int: np.ndarray, starts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, its series run's GCD of changes, and (value - first value) / GCD.

    A run holding a raw-float row keeps a step of 1 (its integer column is 0 there).
    """
    n = len(vint)
    if n == 0:
        return vint.copy(), vint.copy()
    first_idx = np.flatnonzero(starts)
    lengths = np.diff(np.append(first_idx, n))
    run = np.repeat(np.arange(len(first_idx)), lengths)
    rel = vint - vint[first_idx][run]
    g = np.gcd.reduceat(np.abs(rel), first_idx)
    has_float = np.minimum.reduceat(as_int.astype(np.int8), first_idx) == 0
    g[(g == 0) | has_float] = 1
    step = g[run]
    return step, rel // step


RAW_ENCODINGS = {
    "tsx": "DELTA_BINARY_PACKED",
    "vx": "DELTA_BINARY_PACKED",
    "vfloat": "BYTE_STREAM_SPLIT",
}


def write_raw_block(samples: Samples, path: Path, row_group_rows: int) -> int:
    scale, vint, as_int = encode_values(samples.series, samples.values)
    starts = run_starts(samples.series)
    step, quotient = factor_steps(vint, as_int, starts)
    table = pa.table(
        [
            pa.array(samples.series),
            pa.array(samples.timestamps, mask=~starts),
            pa.array(stitch(samples.timestamps, starts)),
            pa.array(scale),
            pa.array(vint, mask=~starts),
            pa.array(step),
            pa.array(stitch(quotient, starts)),
            pa.array(samples.values, mask=as_int),
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
            # Decoding dominates (about 30 ns a row); threads split it across cores.
            return self.file.read_row_groups(
                row_groups, columns=columns, use_threads=len(row_groups) > 4
            )

    def read_raw(self, ids: np.ndarray | None, start: int, end: int) -> Samples:
        groups = self.row_groups_for(ids)
        if not groups:
            return EMPTY
        table = self.read_table(groups, RAW_COLUMNS)
        series = table.column("series").to_numpy()
        if ids is None:
            lo = np.flatnonzero(run_starts(series))
            hi = np.append(lo[1:], len(series))
        else:
            lo = np.searchsorted(series, ids, side="left")
            hi = np.searchsorted(series, ids, side="right")
            hit = hi > lo
            lo, hi = lo[hit], hi[hit]
        if not len(lo):
            return EMPTY
        # Each selected series is read whole, so `lo` is its first row: rebuild only these rows.
        lengths = hi - lo
        run = np.repeat(np.arange(len(lo)), lengths)
        rows = np.repeat(lo - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
        rows += np.arange(len(run))
        tsx = table.column("tsx").to_numpy()
        ts0 = table.column("ts0").take(pa.array(lo)).fill_null(0).to_numpy()
        with np.errstate(over="ignore"):
            ts = ts0[run] + (tsx[rows] - tsx[lo][run])
        keep = (ts >= start) & (ts <= end)
        rows, run, ts = rows[keep], run[keep], ts[keep]
        if not len(rows):
            return EMPTY
        vx = table.column("vx").to_numpy()
        v0 = table.column("v0").take(pa.array(lo)).fill_null(0).to_numpy()
        step = table.column("step").take(pa.array(lo)).to_numpy()
        with np.errstate(over="ignore"):
            vint = v0[run] + (vx[rows] - vx[lo][run]) * step[run]
        scale = table.column("scale").to_numpy()[rows]
        vfloat = table.column("vfloat").take(pa.array(rows)).to_numpy(zero_copy_only=False)
        return Samples(series[rows], ts, decode_values(scale, vint, vfloat))
