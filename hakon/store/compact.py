"""Planning what to flush, merge and expire: pure functions over block metadata.

Kept free of I/O so the policies are tested on tables (as Prometheus tests
`Compactor.Plan`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from hakon.store.interface import RAW, Samples
from hakon.store.manifest import BlockMeta


def split_by_partition(samples: Samples, block_ms: int) -> list[tuple[int, Samples]]:
    """Sorted samples split into per-partition sorted samples, oldest partition first."""
    if not len(samples):
        return []
    part = samples.timestamps - np.mod(samples.timestamps, block_ms)
    first = int(part[0])
    if (part == first).all():  # the usual case: one partition, already in order
        return [(first, samples)]
    order = np.argsort(part, kind="stable")  # keeps (series, ts) order inside a partition
    part = part[order]
    bounds = np.flatnonzero(np.diff(part)) + 1
    starts = np.concatenate(([0], bounds))
    return [
        (
            int(part[i]),
            Samples(samples.series[rows], samples.timestamps[rows], samples.values[rows]),
        )
        for i, rows in zip(starts, np.split(order, bounds), strict=True)
    ]


# Blocks of one open partition count as alike in size when the largest of a run is
# at most this many times its smallest (flushes of a steady rate vary by tens of
# percent; a merge of `min_blocks` of them is `min_blocks` times as large).
SIMILAR_SIZE = 2.0


def plan_compactions(
    blocks: Sequence[BlockMeta],
    now_ms: int,
    block_ms: int,
    min_blocks: int,
    max_rows: int | None = None,
    whole: bool = False,
) -> list[list[BlockMeta]]:
    """Groups of raw blocks to merge (each group one partition's, consecutive in age).

    A closed partition (its end lies a half block in the past) is merged whole
    once it holds more than one block. An open one merges by size tiers: the
    newest `min_blocks` or more consecutive blocks of alike size become one, so
    flushes merge into blocks `min_blocks` times larger, those again, and so on.
    Merging an open partition whole each time it held `min_blocks` blocks
    rewrote everything flushed into it so far at every few flushes (rows written
    grew with the square of the flushes), and each rewrite changed what the
    newest minutes of data are read from: in the soak a dashboard's reads moved
    to the large block and its row groups, three times the bytes the window
    needs, into the block cache. Should sizes never line up (irregular
    flushes), an open partition holding `4 * min_blocks` blocks is merged whole
    as before. `whole` merges every partition whole (an operator's forced
    compaction).

    A merge holds its inputs in memory, so a group holds at most `max_rows`
    rows: blocks that would pass it stay apart (reads merge them). Groups are
    runs of consecutive blocks in age order, because the merged block takes the
    newest input's age: skipping a block in between would let older samples
    win over it.
    """
    by_partition: dict[int, list[BlockMeta]] = defaultdict(list)
    for b in blocks:
        if b.resolution_ms == RAW:
            by_partition[b.partition_start].append(b)
    plans = []
    for start, group in sorted(by_partition.items()):
        ordered = sorted(group, key=lambda b: (b.seq, b.id))
        closed = start + block_ms + block_ms // 2 <= now_ms
        if whole or closed or len(ordered) >= 4 * min_blocks:
            candidates = ordered if len(ordered) > 1 else []
        else:
            candidates = _newest_alike(ordered, min_blocks)
        plans += _bounded_runs(candidates, max_rows)
    return plans


def _newest_alike(ordered: list[BlockMeta], min_blocks: int) -> list[BlockMeta]:
    """The newest run of consecutive blocks alike in size, if it has `min_blocks`."""
    run: list[BlockMeta] = []
    lo = hi = 0  # the run's smallest and largest row counts
    for b in reversed(ordered):
        rows = max(b.rows, 1)
        if run and max(hi, rows) > SIMILAR_SIZE * min(lo, rows):
            if len(run) >= min_blocks:
                break
            run = []  # start again from this block
        if not run:
            lo = hi = rows
        run.append(b)
        lo, hi = min(lo, rows), max(hi, rows)
    return run[::-1] if len(run) >= min_blocks else []


def _bounded_runs(blocks: list[BlockMeta], max_rows: int | None) -> list[list[BlockMeta]]:
    """`blocks` cut into consecutive runs of at most `max_rows` rows (runs of one dropped)."""
    plans: list[list[BlockMeta]] = []
    run: list[BlockMeta] = []
    for b in blocks:
        if max_rows is not None and run and sum(m.rows for m in run) + b.rows > max_rows:
            if len(run) > 1:
                plans.append(run)
            run = []
        run.append(b)
    if len(run) > 1:
        plans.append(run)
    return plans


def plan_retention(
    blocks: Sequence[BlockMeta], now_ms: int, block_ms: int, retention_ms: dict[int, int]
) -> list[BlockMeta]:
    """Blocks whose whole partition lies beyond the retention of their resolution."""
    return [
        b for b in blocks if b.partition_start + block_ms <= now_ms - retention_ms[b.resolution_ms]
    ]
