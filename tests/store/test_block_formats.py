"""Blocks written by earlier versions stay readable, sample for sample."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hakon.store.block import BlockFile, grid_residuals, write_raw_block
from hakon.store.interface import Samples

DATA = Path(__file__).parent / "data"
# 2 h of 15 s scrapes with the 201st missing
GAP_OF_ONE = list(range(0, 3_000_000, 15_000)) + list(range(3_015_000, 7_200_000, 15_000))


def _expected() -> Samples:
    exp = json.loads((DATA / "v1-raw-block.json").read_text())
    values = np.array([float(v) for v in exp["values"]])
    return Samples(np.array(exp["series"]), np.array(exp["timestamps"]), values)


def _same(a: Samples, b: Samples) -> bool:
    return (
        np.array_equal(a.series, b.series)
        and np.array_equal(a.timestamps, b.timestamps)
        and np.array_equal(a.values.view(np.int64), b.values.view(np.int64))  # bit for bit
    )


def test_a_format_1_block_reads_back_exactly() -> None:
    """tests/store/data/v1-raw-block.parquet: stitched `tsx` timestamps, no grid."""
    block = BlockFile.open(DATA / "v1-raw-block.parquet")
    assert block.directory is not None and block.directory.ts_grid is None
    assert _same(block.read_raw(None, -(2**62), 2**62), _expected())


def test_the_same_samples_rewritten_read_back_exactly(tmp_path: Path) -> None:
    samples = _expected()
    write_raw_block(samples, tmp_path / "b.parquet", 16)
    block = BlockFile.open(tmp_path / "b.parquet")
    assert block.directory is not None and block.directory.ts_grid is not None
    assert _same(block.read_raw(None, -(2**62), 2**62), samples)
    ids = np.unique(samples.series)[[1, 3]]
    part = block.read_raw(ids, samples.timestamps.min() + 60_000, samples.timestamps.max())
    keep = np.isin(samples.series, ids) & (samples.timestamps >= samples.timestamps.min() + 60_000)
    assert _same(part, Samples(samples.series[keep], samples.timestamps[keep],
                               samples.values[keep]))  # fmt: skip


@pytest.mark.parametrize(
    ("timestamps", "largest"),
    [
        ([1000, 16000, 31000, 46000], 0),  # on the grid: nothing to store
        ([1007, 16000, 31013, 46002], 20),  # jitter: residuals as small as the jitter
        ([1000, 16000, 31000, 46000, 76000, 91000], 15000),  # a missed scrape: one step
        (GAP_OF_ONE, 15000),
        ([5], 0),  # one sample
    ],
)
def test_grid_residuals(timestamps: list[int], largest: int) -> None:
    ts = np.array(timestamps, dtype=np.int64)
    got, grid, period = grid_residuals(ts, np.array([0]), np.array([len(ts)]))
    residuals = got
    assert residuals.min() == 0 and residuals.max() <= largest
    assert np.array_equal(grid[0] + np.arange(len(ts)) * period[0] + residuals, ts)
