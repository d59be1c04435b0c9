"""Rollups: per series and aligned bucket, min, max, sum, count, last, first/last ts.

Computed from sorted, deduplicated raw samples with numpy `reduceat`, so a
block's rollups cost one pass over it. NaN samples (including Prometheus
staleness markers) are skipped by the aggregates, as PromQL's `*_over_time`
functions skip stale points; a bucket holding only NaNs is dropped.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pyarrow as pa

from hakon.store.block import BlockFile, write_parquet_atomically
from hakon.store.cache import RowGroupCache
from hakon.store.interface import Rollups, Samples
from hakon.store.merge import EMPTY_F64, EMPTY_I64, PIECE_ROWS, ranges_for, series_pieces

EMPTY_ROLLUPS = Rollups(
    *([EMPTY_I64] * 2 + [EMPTY_F64] * 3 + [EMPTY_I64, EMPTY_F64] + [EMPTY_I64] * 2)
)
COLUMNS = ["series", "bucket", "min", "max", "sum", "count", "last", "first_ts", "last_ts"]
ENCODINGS = {
    "series": "DELTA_BINARY_PACKED",
    "bucket": "DELTA_BINARY_PACKED",
    "count": "DELTA_BINARY_PACKED",
    "first_ts": "DELTA_BINARY_PACKED",
    "last_ts": "DELTA_BINARY_PACKED",
    "min": "BYTE_STREAM_SPLIT",
    "max": "BYTE_STREAM_SPLIT",
    "sum": "BYTE_STREAM_SPLIT",
    "last": "BYTE_STREAM_SPLIT",
}


def compute(samples: Samples, resolution_ms: int) -> Rollups:
    """Rollups of samples sorted by (series, time), a piece of whole series at a time."""
    pieces = series_pieces(samples.series, PIECE_ROWS)
    if len(pieces) <= 1:
        return _compute(samples, resolution_ms)
    parts = [
        _compute(
            Samples(samples.series[a:b], samples.timestamps[a:b], samples.values[a:b]),
            resolution_ms,
        )
        for a, b in pieces
    ]
    parts = [p for p in parts if len(p)]
    if not parts:
        return EMPTY_ROLLUPS
    return Rollups(**{c: np.concatenate([getattr(p, c) for p in parts]) for c in COLUMNS})


def _compute(samples: Samples, resolution_ms: int) -> Rollups:
    keep = ~np.isnan(samples.values)
    series = samples.series[keep]
    ts = samples.timestamps[keep]
    values = samples.values[keep]
    n = len(ts)
    if n == 0:
        return EMPTY_ROLLUPS
    bucket = ts - np.mod(ts, resolution_ms)
    change = np.empty(n, dtype=bool)
    change[0] = True
    np.not_equal(series[1:], series[:-1], out=change[1:])
    change[1:] |= bucket[1:] != bucket[:-1]
    starts = np.flatnonzero(change)
    ends = np.append(starts[1:], n) - 1
    with np.errstate(invalid="ignore", over="ignore"):
        sums = np.add.reduceat(values, starts)
    return Rollups(
        series=series[starts],
        bucket=bucket[starts],
        min=np.minimum.reduceat(values, starts),
        max=np.maximum.reduceat(values, starts),
        sum=sums,
        count=np.diff(np.append(starts, n)).astype(np.int64),
        last=values[ends],
        first_ts=ts[starts],
        last_ts=ts[ends],
    )


def write_rollup_block(rollups: Rollups, path: Path, row_group_rows: int) -> int:
    table = pa.table({c: getattr(rollups, c) for c in COLUMNS})
    return write_parquet_atomically(table, path, row_group_rows, ENCODINGS)


def read_rollup_block(
    block: BlockFile, ids: np.ndarray, start: int, end: int, cache: RowGroupCache | None = None
) -> Rollups:
    groups = block.row_groups_for(ids)
    if not groups:
        return EMPTY_ROLLUPS

    def decode(group_list: list[int]) -> dict[str, np.ndarray]:
        table = block.read_table(group_list, COLUMNS)
        return {c: table.column(c).to_numpy() for c in COLUMNS}

    if cache is None or len(groups) > block.CACHED_READ_GROUPS:
        cols = decode(groups)  # a scan: one decode call, and it stays out of the cache
    else:
        decoded = [cache.get((str(block.path), g), functools.partial(decode, [g])) for g in groups]
        cols = (
            decoded[0]
            if len(decoded) == 1
            else {c: np.concatenate([d[c] for d in decoded]) for c in COLUMNS}
        )
    rows = ranges_for(cols["series"], ids)
    bucket = cols["bucket"][rows]
    rows = rows[(bucket >= start) & (bucket <= end)]
    return Rollups(**{c: cols[c][rows] for c in COLUMNS})


def concat(parts: list[Rollups]) -> Rollups:
    parts = [p for p in parts if len(p)]
    if not parts:
        return EMPTY_ROLLUPS
    if len(parts) == 1:
        return parts[0]
    merged = {c: np.concatenate([getattr(p, c) for p in parts]) for c in COLUMNS}
    order = np.lexsort((merged["bucket"], merged["series"]))
    return Rollups(**{c: merged[c][order] for c in COLUMNS})
