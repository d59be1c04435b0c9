"""Immutable Parquet blocks: writing, opening, and selective reads.

Layout (docs/format/blocks.md): rows sorted by (series, ts), one time
partition per block, zstd-compressed row columns

    tsr     int32   BYTE_STREAM_SPLIT    timestamp - (ts_grid + i * ts_period), i its row
                                         within its series
    vx      int64   DELTA_BINARY_PACKED  stitched (scaled value - v0) / step
    vfloat  float64 nullable, BYTE_STREAM_SPLIT: the raw float where no exact scale exists
            (only in blocks where some row has no exact scale)

and a directory in the footer (key `hakon:directory`, an Arrow IPC stream)
with one entry per series: id, first row, rows, first and last timestamp,
first scaled value `v0`, `step`, decimal `scale`, whether it has raw-float
rows, its timestamp grid (`ts_grid`, `ts_period`) and its timestamp set: series
with the very same timestamps (a scrape target's) share one copy of their
residuals in the footer (key `hakon:timestamps`), their `tsr` rows 0. Blocks of format 1
have a stitched DELTA_BINARY_PACKED `tsx` column instead of `tsr` and no grid;
they are read as they are and rewritten in the current format when merged.

Reads look series up in the directory, decode only the row groups their
rows lie in and only two or three columns: every column read costs about the
same per row, so per-series facts do not belong in row columns.

Metric values are mostly integers or short decimals; stored as exact scaled
integers (value * 10**scale) they delta-encode to a few bits, while any value
that does not round-trip bit for bit (NaN, ±Inf, -0.0, long fractions) keeps
its raw float. Many gauges move in fixed quanta (memory in 4 KiB pages), so
each series' changes are divided by their GCD, `step`.

"Stitched": the column is the running sum of each series' own deltas, with
the delta at a series' first row replaced by its second row's delta. Parquet's
delta encoding then sees only in-series changes; a jump between two series
(a new counter magnitude, another time origin) would otherwise widen a whole
miniblock of 32 values to 64 bits. A value is `first + (x[row] - x[first
row]) * step`, in wrapping int64 arithmetic, exact because the true
difference fits.
"""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hakon.store.cache import RowGroupCache
from hakon.store.interface import Samples
from hakon.store.merge import EMPTY, PIECE_ROWS, run_chunks, run_starts

MAX_SCALE = 9
_POW10 = 10.0 ** np.arange(MAX_SCALE + 1)
_EXACT_LIMIT = float(2**53)

DIRECTORY_KEY = b"hakon:directory"
DIRECTORY_SCHEMA = pa.schema(
    [
        ("series", pa.int64()),
        ("start", pa.int64()),
        ("rows", pa.int64()),
        ("ts_first", pa.int64()),
        ("ts_last", pa.int64()),
        ("v0", pa.int64()),
        ("step", pa.int64()),
        ("scale", pa.int8()),
        ("has_float", pa.bool_()),
        ("ts_grid", pa.int64()),
        ("ts_period", pa.int64()),
        ("x_first", pa.int64()),
        ("tsr_max", pa.int64()),
        ("ts_set", pa.int32()),
    ]
)
# Timestamp sets (see shared_timestamp_sets): an Arrow IPC stream with one row per set,
# `tsr`, the residuals its members share, in the narrowest unsigned type that holds them.
TIMESTAMPS_KEY = b"hakon:timestamps"
# Written before the timestamp grid (format 1): `tsx`, a stitched DELTA_BINARY_PACKED
# column, and no ts_grid/ts_period in the directory. Still read.
V1_TIMESTAMPS = "tsx"


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


def grid_residuals(
    ts: np.ndarray, first: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each series' timestamps as offsets from its own grid: (residuals, grid, period).

    A series scraped every `period` ms has its i-th sample near
    `grid + i * period`; the residual is what is left, 0 for timestamps
    exactly on the grid (as Prometheus aligns scrapes) and the jitter
    otherwise. period is the series' mean interval (gaps left out), rounded;
    grid the smallest `ts - i * period`, so residuals are never negative. Stored
    BYTE_STREAM_SPLIT with zstd, residuals cost what their distribution does:
    next to nothing on a regular grid, ~4.4 bits for 0-20 ms of uniform jitter
    (delta encoding needs 6). A missed scrape shifts the rest by one period,
    which costs a byte plane, not a wider delta for every row.
    """
    if not len(first):
        return np.empty(0, np.int64), first.astype(np.int64), first.astype(np.int64)
    last = first + rows - 1
    rough = np.rint((ts[last] - ts[first]) / np.maximum(rows - 1, 1))
    # The mean of the intervals that are not gaps: a missed scrape would otherwise
    # lengthen the period and make every residual after it drift.
    d = np.empty(len(ts), dtype=np.int64)
    d[0] = 0
    np.subtract(ts[1:], ts[:-1], out=d[1:])
    d[first] = 0
    regular = (d > 0) & (d <= 1.5 * np.repeat(rough, rows))
    total = np.add.reduceat(np.where(regular, d, 0), first)
    count = np.add.reduceat(regular.astype(np.int64), first)
    period = np.where(count > 0, np.rint(total / np.maximum(count, 1)), rough).astype(np.int64)
    within = np.arange(len(ts), dtype=np.int64) - np.repeat(first, rows)
    base = ts - within * np.repeat(period, rows)
    grid = np.minimum.reduceat(base, first)
    residual = base - np.repeat(grid, rows)
    return residual, grid, period


def _grid_points(grid: np.ndarray, period: np.ndarray, count: np.ndarray) -> np.ndarray:
    """`grid[k] + i * period[k]` for i < count[k], run after run, as one running sum
    (three passes over the output instead of the six of index arithmetic)."""
    steps = np.repeat(period, count)
    starts = np.cumsum(count) - count
    ends = grid + (count - 1) * period  # each run's last point
    steps[starts] = grid - np.concatenate(([0], ends[:-1]))
    return np.cumsum(steps, out=steps)  # in place: no second output-sized array


# A timestamp array becomes a set when at least this many series have it: the set table
# then holds at most an eighth of a block's timestamps, kept in memory while it is open.
MIN_SET_MEMBERS = 8
_FINGERPRINT_ROWS = 1 << 20


def shared_timestamp_sets(ts: np.ndarray, first: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per series run (the runs `first`, `rows` tile `ts`), the timestamp set it belongs
    to (-1 for none), sets numbered in the order of their first run.

    Every sample of a scrape carries the scrape's time, every resource of a HakonGo
    payload its `collected_at`: hundreds of series of one target have the same
    timestamps, jitter and missed scrapes alike. Such an array is stored once; its
    members' rows hold 0. Runs are bucketed by (rows, first and last timestamp, a
    weighted sum of their timestamps) and each member is compared with its bucket's
    first run row for row, so a shared array is always an exact copy.
    """
    out = np.full(len(first), -1, dtype=np.int64)
    if len(first) < MIN_SET_MEMBERS:
        return out
    last = first + rows - 1
    mixed = _fingerprints(ts, first, rows)
    order = np.lexsort((mixed, ts[last], ts[first], rows))
    as_before = np.zeros(len(order), dtype=bool)  # same key as the run sorted before it
    as_before[1:] = True
    for key in (rows, ts[first], ts[last], mixed):
        sorted_key = key[order]
        as_before[1:] &= sorted_key[1:] == sorted_key[:-1]
    bucket_start = np.flatnonzero(~as_before)
    sizes = np.diff(np.append(bucket_start, len(order)))
    big = sizes >= MIN_SET_MEMBERS
    if not big.any():
        return out
    # Each candidate compared with its bucket's leader (its first run in row order).
    members = order[np.repeat(big, sizes)]
    bucket_of = np.repeat(np.arange(big.sum()), sizes[big])
    leaders = np.minimum.reduceat(members, np.concatenate(([0], np.cumsum(sizes[big])[:-1])))
    leader_of = leaders[bucket_of]
    same = np.ones(len(members), dtype=bool)
    for lo, hi in run_chunks(rows[members], _FINGERPRINT_ROWS):
        m, lead = members[lo:hi], leader_of[lo:hi]
        n = int(rows[m].sum())
        equal = ts[_run_rows(first[m], rows[m], n)] == ts[_run_rows(first[lead], rows[m], n)]
        same[lo:hi] = np.logical_and.reduceat(equal, np.concatenate(([0], np.cumsum(rows[m])[:-1])))
    verified = np.bincount(bucket_of[same], minlength=len(leaders))
    kept = verified >= MIN_SET_MEMBERS
    set_of_bucket = np.full(len(leaders), -1, dtype=np.int64)
    by_leader = np.argsort(leaders[kept], kind="stable")
    set_of_bucket[np.flatnonzero(kept)[by_leader]] = np.arange(int(kept.sum()))
    chosen = same & kept[bucket_of]
    out[members[chosen]] = set_of_bucket[bucket_of[chosen]]
    return out


def _fingerprints(ts: np.ndarray, first: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """A weighted sum of each run's timestamps (wrapping): equal arrays, equal sums."""
    mixed = np.empty(len(first), dtype=np.int64)
    with np.errstate(over="ignore"):
        for lo, hi in run_chunks(rows, _FINGERPRINT_ROWS):  # the runs tile the rows
            a, b = int(first[lo]), int(first[hi - 1] + rows[hi - 1])
            weights = np.arange(a, b, dtype=np.int64)
            weights -= np.repeat(first[lo:hi], rows[lo:hi])  # row within its run
            weights = (weights * 2 + 1) * np.int64(-7046029254386353131)  # odd, bits spread
            weights ^= weights >> 29
            weights *= ts[a:b]
            mixed[lo:hi] = np.add.reduceat(weights, first[lo:hi] - a)
    return mixed


def _narrow_unsigned(values: np.ndarray) -> np.ndarray:
    top = int(values.max()) if len(values) else 0
    for dtype in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(dtype).max:
            return values.astype(dtype)
    return values.astype(np.int64)


def _row_scales(values: np.ndarray) -> np.ndarray:
    """Per value, the smallest decimal exponent that represents it exactly; -1 if none."""
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
    return scale


def _exact_at(values: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Whether each value round-trips through its (non-negative) scale."""
    with np.errstate(invalid="ignore", over="ignore"):
        k = np.clip(scale, 0, MAX_SCALE)
        scaled = np.round(values * _POW10[k])
        exact = (np.abs(scaled) < _EXACT_LIMIT) & (scaled / _POW10[k] == values)
    return exact & (scale >= 0) & ~((values == 0) & np.signbit(values))


def choose_scales(series: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per row, the decimal exponent that represents the value exactly, unified per series.

    -1 where no exponent up to MAX_SCALE round-trips the float bit for bit. One
    exponent per series run (the largest needed) keeps the deltas small; rows
    that cannot use it exactly fall back to raw floats.

    Fast path: a series' values almost always share one exponent, so it is
    guessed from each run's first and last value and checked on every row in one
    pass; only runs where the guess fails get the per-value search.
    """
    n = len(values)
    if n == 0:
        return np.full(0, -1, dtype=np.int8)
    starts = np.flatnonzero(np.concatenate(([True], series[1:] != series[:-1])))
    ends = np.append(starts[1:], n) - 1
    lengths = ends - starts + 1
    guess = np.maximum(_row_scales(values[starts]), _row_scales(values[ends]))
    unified = np.repeat(guess, lengths)
    exact = _exact_at(values, unified)
    finite = np.isfinite(values)
    failed_rows = finite & ~exact & (np.abs(values) < _EXACT_LIMIT)
    if not failed_rows.any():
        return np.where(exact, unified, -1).astype(np.int8)
    run_of_row = np.repeat(np.arange(len(starts)), lengths)
    redo = np.zeros(len(starts), bool)
    redo[run_of_row[failed_rows]] = True
    rows = np.repeat(redo, lengths)
    scale = _row_scales(values[rows])
    sub_starts = np.concatenate(([0], np.cumsum(lengths[redo])[:-1]))
    run_max = np.maximum.reduceat(scale, sub_starts)
    sub_unified = np.repeat(run_max, lengths[redo])
    sub_exact = _exact_at(values[rows], sub_unified)
    unified[rows] = sub_unified
    exact[rows] = sub_exact
    return np.where(exact, unified, -1).astype(np.int8)


def encode_values(series: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, ...]:
    scale = choose_scales(series, values)
    as_int = scale >= 0
    with np.errstate(invalid="ignore", over="ignore"):
        vint = np.where(as_int, np.round(values * _POW10[np.clip(scale, 0, None)]), 0).astype(
            np.int64
        )
    return scale, vint, as_int


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_parquet_atomically(
    table: pa.Table,
    path: Path,
    row_group_rows: int,
    encodings: dict[str, str],
    uncompressed: frozenset[str] = frozenset(),
) -> int:
    """Write to a temporary name, fsync, rename into place, fsync the directory.

    Columns in `uncompressed` skip zstd (already dense: bit-packed deltas)."""
    tmp = path.with_name(path.name + ".tmp")
    zstd = [c for c in table.column_names if c not in uncompressed]
    # The table's metadata (a raw block's directory) goes into the footer once, as
    # key-value metadata. Without `store_schema=False` it was there a second time,
    # base64-encoded inside the Arrow schema copy (0.048 B/sample on the benchmark's
    # set); plain int and float columns read back as the same types without that copy.
    metadata = table.schema.metadata or {}
    table = table.replace_schema_metadata(None)
    with pq.ParquetWriter(
        tmp,
        table.schema,
        compression={c: "zstd" if c in zstd else "none" for c in table.column_names},
        compression_level={c: 3 for c in zstd},
        use_dictionary=[c for c in table.column_names if c not in encodings],
        column_encoding={c: e for c, e in encodings.items() if c in table.column_names},
        write_statistics=["series"],
        data_page_size=1 << 20,
        store_schema=False,
    ) as writer:
        writer.write_table(table, row_group_size=row_group_rows)
        if metadata:
            writer.add_key_value_metadata(metadata)
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
    "tsr": "BYTE_STREAM_SPLIT",
    "vx": "DELTA_BINARY_PACKED",
    "vfloat": "BYTE_STREAM_SPLIT",
}
# zstd found nothing to take out of bit-packed value deltas: on the benchmark's data
# set 76.56 MB compressed against 76.50 MB plain (5,859 of 5,860 row groups grew), and
# skipping its decompression made the 1,000-series read 11 % faster (73.4 -> 65.5 ms).
RAW_UNCOMPRESSED = frozenset({"vx"})


@dataclass
class _Encoded:
    """One piece of a raw block: its row columns and its series' directory fields."""

    tsr: np.ndarray  # int32 unless a residual needs more
    vx: np.ndarray
    as_int: np.ndarray  # False where the row keeps its raw float
    fields: list[np.ndarray]  # DIRECTORY_SCHEMA's, one entry per series run, in row order


def _encode_piece(
    series: np.ndarray,
    ts: np.ndarray,
    values: np.ndarray,
    offset: int,
    carry: int,
    row_group_rows: int,
    ts_set: np.ndarray,
) -> _Encoded:
    """Encode rows holding whole series runs. `offset` is the first row's place in the
    block (directory rows and the row-group layout are the block's); `carry` is the
    stitched column's last value before it, so the column runs on as if encoded
    whole (no jump for the delta encoding at a piece's edge). `ts_set` gives each run's
    timestamp set: the residuals of a set's members are in the set table, their rows 0."""
    scale, vint, as_int = encode_values(series, values)
    starts = run_starts(series)
    step, quotient = factor_steps(vint, as_int, starts)
    first = np.flatnonzero(starts)
    rows = np.diff(np.append(first, len(starts)))
    last = first + rows - 1
    residual, grid, period = grid_residuals(ts, first, rows)
    vx = stitch(quotient, starts)
    with np.errstate(over="ignore"):
        vx += carry  # wrapping, as the running sum itself
    # Window facts for runs spanning row groups (only there can a read skip a group of
    # their early rows); -1 marks the others, so the field costs next to nothing.
    spans_groups = (first + offset) // row_group_rows != (last + offset) // row_group_rows
    tsr_max = np.full(len(first), -1, dtype=np.int64)
    x_first = np.zeros(len(first), dtype=np.int64)
    if spans_groups.any():
        tsr_max[spans_groups] = np.maximum.reduceat(residual, first)[spans_groups]
        x_first[spans_groups] = vx[first[spans_groups]]
    if (ts_set >= 0).any():
        residual[np.repeat(ts_set >= 0, rows)] = 0
    fields = [
        series[first],
        first.astype(np.int64) + offset,
        rows.astype(np.int64),
        ts[first],
        ts[last],
        vint[first],
        step[first],
        np.maximum.reduceat(scale, first) if len(first) else scale,
        np.minimum.reduceat(as_int, first) == 0 if len(first) else as_int,
        grid,
        period,
        x_first,
        tsr_max,
        ts_set.astype(np.int32),
    ]
    # Residuals are bounded by twice a series' time span: int32 for any block shorter
    # than 12 days (four byte planes instead of eight); int64 beyond.
    narrow = not len(residual) or residual.max() < 2**31
    return _Encoded(residual.astype(np.int32) if narrow else residual, vx, as_int, fields)


def write_raw_block(
    samples: Samples, path: Path, row_group_rows: int, groups: np.ndarray | None = None
) -> int:
    """Write sorted samples as a raw block; `groups` (one key per series) clusters rows.

    Series runs go to disk in (group, id) order, a piece of about PIECE_ROWS rows
    at a time: each piece's rows are gathered from the sorted samples and encoded,
    so no reordered copy of the whole block is made (that copy was the largest
    single cost of a flush: 1 s of 4.8 for 20 M samples).
    """
    series, ts, values = samples.series, samples.timestamps, samples.values
    first = np.flatnonzero(run_starts(series))
    rows = np.diff(np.append(first, len(series)))
    ts_set = shared_timestamp_sets(ts, first, rows)  # by run, in id order
    on_disk = (
        np.lexsort((series[first], groups))
        if groups is not None and len(first)
        else np.arange(len(first))
    )
    pieces: list[_Encoded] = []
    raw_values: list[np.ndarray | None] = []  # a piece's values where some keep a raw float
    carry, offset = 0, 0
    for lo, hi in run_chunks(rows[on_disk], PIECE_ROWS) or [(0, 0)]:
        runs = on_disk[lo:hi]
        n = int(rows[runs].sum())
        at = _run_rows(first[runs], rows[runs], n)
        piece = _encode_piece(
            series[at], ts[at], values[at], offset, carry, row_group_rows, ts_set[runs]
        )
        pieces.append(piece)
        raw_values.append(None if piece.as_int.all() else values[at])
        carry = int(piece.vx[-1]) if n else carry
        offset += n
    entries = [np.concatenate(f) for f in zip(*(p.fields for p in pieces), strict=True)]
    by_id = np.argsort(entries[0], kind="stable")  # the directory is sorted by id
    directory = pa.table([pa.array(f[by_id]) for f in entries], schema=DIRECTORY_SCHEMA)
    metadata = {DIRECTORY_KEY: _ipc_bytes(directory)}
    if (ts_set >= 0).any():
        place = np.empty(len(on_disk), dtype=np.int64)
        place[on_disk] = np.arange(len(on_disk))  # each run's entry
        grid = entries[DIRECTORY_SCHEMA.names.index("ts_grid")][place]
        period = entries[DIRECTORY_SCHEMA.names.index("ts_period")][place]
        metadata[TIMESTAMPS_KEY] = _set_table(ts, first, rows, ts_set, grid, period)
    wide = any(p.tsr.dtype == np.int64 for p in pieces)
    tsr = pa.chunked_array(
        [pa.array(p.tsr.astype(np.int64) if wide else p.tsr) for p in pieces],
        pa.int64() if wide else pa.int32(),
    )
    columns: list[pa.ChunkedArray | pa.Array] = [tsr, pa.chunked_array([p.vx for p in pieces])]
    schema = [pa.field("tsr", tsr.type, nullable=False), pa.field("vx", pa.int64(), False)]
    if any(v is not None for v in raw_values):
        floats = [
            pa.nulls(len(p.as_int), pa.float64()) if v is None else pa.array(v, mask=p.as_int)
            for p, v in zip(pieces, raw_values, strict=True)
        ]
        columns.append(pa.chunked_array(floats, pa.float64()))
        schema.append(pa.field("vfloat", pa.float64()))
    table = pa.table(columns, schema=pa.schema(schema, metadata))
    return write_parquet_atomically(table, path, row_group_rows, RAW_ENCODINGS, RAW_UNCOMPRESSED)


def _set_table(
    ts: np.ndarray,
    first: np.ndarray,
    rows: np.ndarray,
    ts_set: np.ndarray,
    grid: np.ndarray,
    period: np.ndarray,
) -> bytes:
    """The residuals of each timestamp set (its first member's), as an IPC stream;
    all arguments by run."""
    leaders = np.flatnonzero(ts_set >= 0)
    leaders = leaders[np.unique(ts_set[leaders], return_index=True)[1]]  # set order
    count = rows[leaders]
    n = int(count.sum())
    residual = ts[_run_rows(first[leaders], count, n)] - _grid_points(
        grid[leaders], period[leaders], count
    )
    offsets = np.concatenate(([0], np.cumsum(count))).astype(np.int32)
    tsr = pa.ListArray.from_arrays(pa.array(offsets), pa.array(_narrow_unsigned(residual)))
    return _ipc_bytes(pa.table({"tsr": tsr}))


def _ipc_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


@dataclass(frozen=True)
class Directory:
    """Per-series facts of a raw block, as numpy arrays sorted by series id."""

    series: np.ndarray
    start: np.ndarray
    rows: np.ndarray
    ts_first: np.ndarray
    ts_last: np.ndarray
    v0: np.ndarray
    step: np.ndarray
    scale: np.ndarray
    has_float: np.ndarray
    ts_grid: np.ndarray | None  # None in format-1 blocks (stitched `tsx` timestamps)
    ts_period: np.ndarray | None
    # For runs spanning row groups, the stitched `vx` at the first row and the largest
    # timestamp residual (-1 for other runs): a read of part of a run decodes only the
    # row groups of that part. None in blocks written before them.
    x_first: np.ndarray | None = None
    tsr_max: np.ndarray | None = None
    ts_set: np.ndarray | None = None  # the run's timestamp set, -1 for none

    @classmethod
    def parse(cls, data: bytes) -> Directory:
        table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
        names = set(table.column_names)
        columns: dict[str, Any] = {
            name: table.column(name).to_numpy() if name in names else None
            for name in DIRECTORY_SCHEMA.names
        }
        return cls(**columns)


def _run_rows(first: np.ndarray, count: np.ndarray, n: int) -> np.ndarray:
    """The positions first[i], first[i] + 1, ... (count[i] of them) of every run, in order."""
    offsets = np.zeros(len(count), dtype=np.int64)
    np.cumsum(count[:-1], out=offsets[1:])
    rows = np.repeat(first - offsets, count)
    rows += np.arange(n)
    return rows


@dataclass
class BlockFile:
    """An open Parquet block: its row-group layout and, for raw blocks, its directory.

    Rollup blocks carry a `series` column whose row-group min/max statistics
    index them. The file handle stays open for the object's lifetime, so a
    reader holding a snapshot can finish after compaction unlinked the file.
    """

    path: Path
    handle: pa.NativeFile
    file: pq.ParquetFile
    rg_offsets: np.ndarray  # first row of each row group, plus the total
    rg_min: np.ndarray
    rg_max: np.ndarray
    directory: Directory | None
    lock: threading.Lock
    has_floats: bool  # a `vfloat` column: written only when some row keeps a raw float
    # Timestamp sets: set k's residuals are set_values[set_offsets[k]:set_offsets[k + 1]].
    set_values: np.ndarray
    set_offsets: np.ndarray

    @classmethod
    def open(cls, path: Path) -> BlockFile:
        handle = pa.memory_map(str(path), "r")
        # No pre-buffering: on a memory map it only hands each column chunk to the I/O
        # thread pool and waits for it, which made selective reads 3-4x slower (960 row
        # groups of 1,000 series x 1 h: 54 against 124-146 ms, one thread).
        pf = pq.ParquetFile(handle, pre_buffer=False)
        meta = pf.metadata
        rows = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        offsets = np.concatenate(([0], np.cumsum(rows, dtype=np.int64)))
        kv = pf.schema_arrow.metadata or {}
        directory = Directory.parse(kv[DIRECTORY_KEY]) if DIRECTORY_KEY in kv else None
        set_values, set_offsets = EMPTY.timestamps, EMPTY.timestamps
        if TIMESTAMPS_KEY in kv:
            sets = pa.ipc.open_stream(pa.py_buffer(kv[TIMESTAMPS_KEY])).read_all()
            tsr = sets.column("tsr").combine_chunks()
            set_values = tsr.values.to_numpy()
            set_offsets = tsr.offsets.to_numpy().astype(np.int64)
        mins, maxs = [], []
        col = pf.schema_arrow.get_field_index("series")
        if col >= 0:
            for i in range(meta.num_row_groups):
                stats = meta.row_group(i).column(col).statistics
                has = stats is not None and stats.has_min_max
                mins.append(stats.min if has else -(2**63))
                maxs.append(stats.max if has else 2**63 - 1)
        return cls(
            path,
            handle,
            pf,
            offsets,
            np.array(mins, dtype=np.int64),
            np.array(maxs, dtype=np.int64),
            directory,
            threading.Lock(),
            "vfloat" in pf.schema_arrow.names,
            set_values,
            set_offsets,
        )

    def row_groups_for(self, ids: np.ndarray | None) -> list[int]:
        """Row groups whose `series` statistics admit one of the sorted `ids` (rollups)."""
        if ids is None:
            return list(range(len(self.rg_offsets) - 1))
        lo = np.searchsorted(ids, self.rg_min, side="left")
        hi = np.searchsorted(ids, self.rg_max, side="right")
        return np.flatnonzero(hi > lo).tolist()

    def read_table(self, row_groups: list[int], columns: list[str]) -> pa.Table:
        with self.lock:
            # Decoding dominates (a few ns a row and column); threads split it across cores.
            return self.file.read_row_groups(
                row_groups, columns=columns, use_threads=len(row_groups) > 4
            )

    def _runs(self, ids: np.ndarray | None, start: int, end: int) -> np.ndarray:
        """Directory entries of the sorted `ids` with samples in [start, end]."""
        d = self.directory
        assert d is not None, "not a raw block"
        if ids is None:
            runs = np.arange(len(d.series))
        else:
            pos = np.searchsorted(d.series, ids)
            inside = pos < len(d.series)
            pos = pos[inside]
            runs = pos[d.series[pos] == ids[inside]]
        return runs[(d.ts_last[runs] >= start) & (d.ts_first[runs] <= end)]

    def _row_groups(self, first: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The row groups holding rows [first, first + count), and the group of each first."""
        last = first + count - 1
        rg_lo = np.searchsorted(self.rg_offsets, first, side="right") - 1
        rg_hi = np.searchsorted(self.rg_offsets, last, side="right") - 1
        # Most runs lie in one or two row groups; only longer ones need their middles listed.
        wide = np.flatnonzero(rg_hi - rg_lo > 1)
        middles = [np.arange(rg_lo[i] + 1, rg_hi[i]) for i in wide.tolist()]
        return np.unique(np.concatenate([rg_lo, rg_hi, *middles])), rg_lo

    def raw_row_groups(self, ids: np.ndarray | None, start: int, end: int) -> list[int]:
        runs = self._runs(ids, start, end)
        return self._row_groups(*self._window(runs, start, end)[:2])[0].tolist()

    def _window(
        self, runs: np.ndarray, start: int, end: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each run's rows that can lie in [start, end]: (first row, count, rows skipped).

        Row i of a run is at `ts_grid + i * ts_period + tsr` with 0 <= tsr, so rows
        after `(end - ts_grid) / ts_period` begin after `end`; where the directory has
        the run's `tsr_max` (and `x_first`, the value base its first row would give),
        rows before `(start - ts_grid - tsr_max) / ts_period` end before `start`. A
        dashboard's last 15 minutes of a merged 2-hour block then decodes an eighth
        of each series."""
        d = self.directory
        assert d is not None
        first, count = d.start[runs], d.rows[runs]
        skipped = np.zeros(len(runs), dtype=np.int64)
        if d.ts_grid is None or d.ts_period is None:
            return first, count, skipped
        start, end = max(start, -(2**62)), min(end, 2**62)  # "everything" without overflow
        grid, period = d.ts_grid[runs], d.ts_period[runs]
        ok = period > 0  # a one-row run has no period: read whole
        safe = np.where(ok, period, 1)
        hi = np.where(ok, np.clip((end - grid) // safe, -1, count - 1), count - 1)
        if d.tsr_max is not None and d.x_first is not None:
            tsr_max = d.tsr_max[runs]
            lo = -((grid + tsr_max - start) // safe)  # ceil((start - grid - tsr_max) / period)
            skipped = np.where(ok & (tsr_max >= 0), np.clip(lo, 0, count), 0)
        return first + skipped, np.maximum(hi - skipped + 1, 0), skipped

    def id_chunks(
        self, ids: np.ndarray | None, start: int, end: int, max_rows: int
    ) -> list[np.ndarray]:
        """The sorted `ids` present here cut into pieces reading at most `max_rows` rows
        each (or one series, if it alone has more), for readers that reduce each piece."""
        d = self.directory
        assert d is not None, "not a raw block"
        runs = self._runs(ids, start, end)
        if not len(runs):
            return []
        rows = np.concatenate(([0], np.cumsum(self._window(runs, start, end)[1])))
        pieces, lo = [], 0
        while lo < len(runs):
            hi = max(int(np.searchsorted(rows, rows[lo] + max_rows, side="right")) - 1, lo + 1)
            pieces.append(d.series[runs[lo:hi]])
            lo = hi
        return pieces

    # Reads touching at most this many row groups (dashboard series, and the many
    # similar selections a rule group makes every interval) go through the block cache
    # when one is given; bigger scans decode directly and stay out of it.
    CACHED_READ_GROUPS = 256

    def read_raw(
        self, ids: np.ndarray | None, start: int, end: int, cache: RowGroupCache | None = None
    ) -> Samples:
        d = self.directory
        assert d is not None, "not a raw block"
        runs = self._runs(ids, start, end)
        if not len(runs):
            return EMPTY
        first, count, skipped = self._window(runs, start, end)
        if not count.all():
            kept = count > 0
            runs, first, count, skipped = runs[kept], first[kept], count[kept], skipped[kept]
            if not len(runs):
                return EMPTY
        n = int(count.sum())
        needed, rg_lo = self._row_groups(first, count)
        any_float = self.has_floats and bool(d.has_float[runs].any())
        grid = d.ts_grid is not None
        ts_column = "tsr" if grid else V1_TIMESTAMPS
        sets = d.ts_set[runs] if d.ts_set is not None else None
        in_set = sets >= 0 if sets is not None else None
        # Runs of timestamp sets have their residuals in memory, 0 in the column: a read
        # of only such runs skips the costliest column (zstd) altogether.
        own_ts = in_set is None or not in_set.all()
        columns = ([ts_column] if own_ts else []) + ["vx"] + (["vfloat"] if any_float else [])
        table = self._decode(needed, columns, ts_column, cache)
        local, first_local = self._table_positions(runs, first, count, needed, rg_lo, n)
        tsx = table.column(ts_column).to_numpy() if own_ts else None
        vx = table.column("vx").to_numpy()
        # Per-run constants, expanded with repeat: value = v0 + (vx - vx_first) * step,
        # computed as (v0 - vx_first * step) + vx * step (the same in int64 wrap-around).
        with np.errstate(over="ignore"):
            if grid:
                assert d.ts_grid is not None and d.ts_period is not None
                period = d.ts_period[runs]
                ts = _grid_points(d.ts_grid[runs] + skipped * period, period, count)
                if tsx is not None:
                    ts += tsx[local]
                if sets is not None and in_set is not None and in_set.any():
                    self._add_set_residuals(ts, sets, in_set, skipped, count)
            else:
                assert tsx is not None
                ts = np.repeat(d.ts_first[runs] - tsx[first_local], count) + tsx[local]
            step = d.step[runs]
            # A run's first row is in the table unless the window skipped it; then the
            # directory has its stitched value.
            x_first = vx[first_local]
            if skipped.any():
                assert d.x_first is not None
                x_first = np.where(skipped > 0, d.x_first[runs], x_first)
            vint = np.repeat(d.v0[runs] - x_first * step, count)
            vint += vx[local] * np.repeat(step, count)
        values = vint / np.repeat(_POW10[np.clip(d.scale[runs], 0, None)], count)
        series = np.repeat(d.series[runs], count)
        if any_float:
            positions = local if isinstance(local, np.ndarray) else np.arange(n) + local.start
            vfloat = table.column("vfloat").take(pa.array(positions))
            raw = ~np.asarray(vfloat.is_null().to_numpy(zero_copy_only=False))
            if raw.any():
                values[raw] = vfloat.to_numpy(zero_copy_only=False)[raw]
        keep = (ts >= start) & (ts <= end)
        if not keep.all():
            series, ts, values = series[keep], ts[keep], values[keep]
        if not len(ts):
            return EMPTY
        return Samples(series, ts, values)

    def _add_set_residuals(
        self,
        ts: np.ndarray,
        ts_set: np.ndarray,
        in_set: np.ndarray,
        skipped: np.ndarray,
        count: np.ndarray,
    ) -> None:
        """Add the set residuals of the runs in a set to their rows of `ts`."""
        wanted = count[in_set]
        n = int(wanted.sum())
        src = _run_rows(self.set_offsets[ts_set[in_set]] + skipped[in_set], wanted, n)
        if in_set.all():
            ts += self.set_values[src]
            return
        out_first = (np.cumsum(count) - count)[in_set]
        ts[_run_rows(out_first, wanted, n)] += self.set_values[src]

    def _decode(
        self,
        needed: np.ndarray,
        columns: list[str],
        ts_column: str,
        cache: RowGroupCache | None,
    ) -> pa.Table:
        groups = needed.tolist()
        if cache is None or len(groups) > self.CACHED_READ_GROUPS:
            return self.read_table(groups, columns)
        key = (str(self.path), "raw")
        # A cached row group holds every column, whichever read decoded it first.
        all_columns = [ts_column, "vx", "vfloat"] if self.has_floats else [ts_column, "vx"]
        parts = [
            cache.get((*key, g), functools.partial(self._decode_group, g, all_columns))
            for g in groups
        ]
        return pa.table({c: pa.concat_arrays([p[c] for p in parts]) for c in columns})

    def _decode_group(self, group: int, columns: list[str]) -> dict[str, Any]:
        table = self.read_table([group], columns)
        return {c: table.column(c).combine_chunks() for c in columns}

    def _table_positions(
        self,
        runs: np.ndarray,
        first: np.ndarray,
        count: np.ndarray,
        needed: np.ndarray,
        rg_lo: np.ndarray,
        n: int,
    ) -> tuple[np.ndarray | slice, np.ndarray]:
        """Where each wanted row (runs in id order) and each run's first row sit in the
        table of the `needed` row groups. Clustered blocks usually need one contiguous
        span of row groups holding the runs back to back: then it is a slice."""
        if needed[-1] - needed[0] + 1 == len(needed):
            base = self.rg_offsets[needed[0]]
            first_local = first - base
            if len(runs) == 1 or bool((first[1:] == first[:-1] + count[:-1]).all()):
                return slice(int(first_local[0]), int(first_local[0]) + n), first_local
            return _run_rows(first_local, count, n), first_local
        # Every row group a run touches is needed, so its groups sit back to back in the
        # table: one shift (the table position of its first group minus that group's
        # first row) places the whole run.
        sizes = np.diff(self.rg_offsets)[needed]
        local_base = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        shift = np.zeros(len(self.rg_offsets), dtype=np.int64)
        shift[needed] = local_base - self.rg_offsets[needed]
        first_local = first + shift[rg_lo]
        return _run_rows(first_local, count, n), first_local
