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


def plan_compactions(
    blocks: Sequence[BlockMeta],
    now_ms: int,
    block_ms: int,
    min_blocks: int,
    max_rows: int | None = None,
) -> list[list[BlockMeta]]:
    """Groups of raw blocks to merge (each group one partition's, consecutive in age).

    A partition is merged when it holds `min_blocks` or more raw blocks, or
    when it is closed (its end lies a half block in the past) and holds more
    than one. A merge holds its inputs in memory, so a group holds at most
    `max_rows` rows: blocks that would pass it stay apart (reads merge them).
    Groups are runs of consecutive blocks in age order, because the merged
    block takes the newest input's age: skipping a block in between would let
    older samples win over it.
    """
    by_partition: dict[int, list[BlockMeta]] = defaultdict(list)
    for b in blocks:
        if b.resolution_ms == RAW:
            by_partition[b.partition_start].append(b)
    plans = []
    for start, group in sorted(by_partition.items()):
        closed = start + block_ms + block_ms // 2 <= now_ms
        if len(group) < min_blocks and not (closed and len(group) > 1):
            continue
        run: list[BlockMeta] = []
        for b in sorted(group, key=lambda b: (b.seq, b.id)):
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
