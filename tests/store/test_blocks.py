import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from hakon.store.block import BlockFile, choose_scales, write_raw_block
from hakon.store.cache import RowGroupCache
from hakon.store.compact import plan_compactions, plan_retention
from hakon.store.interface import Samples
from hakon.store.manifest import BlockMeta

H = 3_600_000


@given(
    hnp.arrays(np.float64, st.integers(1, 300), elements=st.floats(allow_nan=True, width=64)),
    st.integers(1, 5),
)
@settings(max_examples=200, deadline=None)
def test_block_round_trip_is_bit_exact(tmp_path_factory, values, n_series) -> None:
    n = len(values)
    series = np.sort(np.arange(n) % n_series).astype(np.int64)
    ts = np.arange(n, dtype=np.int64) * 15_000
    order = np.lexsort((ts, series))
    samples = Samples(series[order], ts[order], values)
    path = tmp_path_factory.mktemp("b") / "b.parquet"
    write_raw_block(samples, path, row_group_rows=64)
    back = BlockFile.open(path).read_raw(None, 0, 2**62)
    assert back.series.tolist() == samples.series.tolist()
    assert back.timestamps.tolist() == samples.timestamps.tolist()
    assert back.values.view(np.int64).tolist() == values.view(np.int64).tolist()


@given(st.integers(0, 2**32 - 1), st.integers(1, 40), st.integers(1, 4))
@settings(max_examples=60, deadline=None)
def test_clustered_block_reads_back_in_id_order(tmp_path_factory, seed, n_series, n_groups) -> None:
    """Rows clustered by metric on disk still read back exactly, sorted by (series, ts)."""
    rng = np.random.default_rng(seed)
    ids = np.unique(rng.integers(-(2**62), 2**62, n_series))
    counts = rng.integers(1, 30, len(ids))
    series = np.repeat(ids, counts)
    ts = np.concatenate([np.sort(rng.choice(10**6, c, replace=False)) for c in counts])
    values = np.round(rng.normal(size=len(ts)) * 100, 2)
    groups = rng.integers(0, n_groups, len(ids)).astype(np.int64)
    path = tmp_path_factory.mktemp("c") / "b.parquet"
    write_raw_block(Samples(series, ts, values), path, row_group_rows=32, groups=groups)
    block = BlockFile.open(path)
    back = block.read_raw(None, 0, 2**62)
    assert back.series.tolist() == series.tolist()
    assert back.timestamps.tolist() == ts.tolist()
    assert back.values.tolist() == values.tolist()
    some = np.sort(rng.choice(ids, max(1, len(ids) // 3), replace=False))
    part = block.read_raw(some, 0, 2**62)
    keep = np.isin(series, some)
    assert part.series.tolist() == series[keep].tolist()
    assert part.values.tolist() == values[keep].tolist()


def test_a_metric_clustered_together_reads_only_its_row_groups(tmp_path) -> None:
    series = np.repeat(np.arange(100, dtype=np.int64), 50)
    ts = np.tile(np.arange(50, dtype=np.int64) * 15_000, 100)
    groups = (np.arange(100) % 10).astype(np.int64)  # ten metrics, ids interleaved
    write_raw_block(Samples(series, ts, ts.astype(float)), tmp_path / "b.parquet", 500, groups)
    block = BlockFile.open(tmp_path / "b.parquet")
    one_metric = np.arange(3, 100, 10, dtype=np.int64)
    assert len(block.raw_row_groups(one_metric, 0, 10**9)) == 1  # not all ten


def test_scales_pick_short_decimals_and_fall_back_to_floats() -> None:
    series = np.zeros(6, dtype=np.int64)
    values = np.array([1.0, 2.5, 3.25, 4.0, 5.0, 6.0])
    assert choose_scales(series, values).tolist() == [2] * 6
    weird = np.array([0.1 + 0.2, np.nan, -0.0, 7.0])
    assert choose_scales(np.arange(4), weird).tolist() == [-1, -1, -1, 0]


@pytest.mark.parametrize(
    ("last", "has_floats"), [(4.5, False), (np.nan, True), (0.1 + 0.2, True), (-0.0, True)]
)
def test_the_raw_float_column_is_written_only_when_a_row_needs_it(
    tmp_path, last: float, has_floats: bool
) -> None:
    series = np.repeat(np.arange(3, dtype=np.int64), 4)
    ts = np.tile(np.arange(4, dtype=np.int64) * 15_000, 3)
    values = np.arange(12, dtype=np.float64)
    values[-1] = last
    write_raw_block(Samples(series, ts, values), tmp_path / "b.parquet", 8)
    block = BlockFile.open(tmp_path / "b.parquet")
    assert block.has_floats is has_floats
    schema = block.file.schema_arrow
    assert not schema.field("tsr").nullable and not schema.field("vx").nullable
    for cache in (None, RowGroupCache(1 << 20)):
        got = block.read_raw(None, 0, 10**9, cache)
        assert got.values.tobytes() == values.tobytes()  # bit for bit: NaN, -0.0


def test_selective_read_touches_only_needed_row_groups(tmp_path) -> None:
    series = np.repeat(np.arange(100, dtype=np.int64), 50)
    ts = np.tile(np.arange(50, dtype=np.int64) * 15_000, 100)
    write_raw_block(Samples(series, ts, ts.astype(float)), tmp_path / "b.parquet", 500)
    block = BlockFile.open(tmp_path / "b.parquet")
    assert len(block.rg_offsets) == 11
    assert block.raw_row_groups(np.array([42], dtype=np.int64), 0, 10**9) == [4]
    assert block.raw_row_groups(np.array([42], dtype=np.int64), 10**9, 2 * 10**9) == []
    assert block.raw_row_groups(np.array([9, 10], dtype=np.int64), 0, 10**9) == [0, 1]
    assert block.raw_row_groups(np.array([1000], dtype=np.int64), 0, 10**9) == []
    assert block.raw_row_groups(np.array([-5, 3, 7000], dtype=np.int64), 0, 10**9) == [0]
    got = block.read_raw(np.array([42], dtype=np.int64), 15_000, 30_000)
    assert got.series.tolist() == [42, 42] and got.timestamps.tolist() == [15_000, 30_000]


def meta(bid: str, part: int, seq: int, res: int = 0) -> BlockMeta:
    return BlockMeta(bid, res, part, part, part + 1, 10, 100, f"blocks/{bid}", seq)


@pytest.mark.parametrize(
    ("blocks", "now", "expected"),
    [
        ([meta("a", 0, 1), meta("b", 0, 2)], 2 * H, []),  # open partition, few blocks
        ([meta("a", 0, 1), meta("b", 0, 2)], 3 * H, [["a", "b"]]),  # closed
        ([meta(str(i), 0, i) for i in range(4)], 1 * H, [["0", "1", "2", "3"]]),
        ([meta("a", 0, 1), meta("b", 2 * H, 2)], 10 * H, []),  # one per partition
        ([meta("a", 0, 1), meta("r", 0, 2, res=300_000)], 10 * H, []),  # rollups never merge
    ],
)
def test_compaction_plan(blocks, now, expected) -> None:
    plans = plan_compactions(blocks, now, 2 * H, min_blocks=4)
    assert [[b.id for b in group] for group in plans] == expected


def sized(bid: str, seq: int, rows: int, part: int = 0) -> BlockMeta:
    return BlockMeta(bid, 0, part, part, part + 1, rows, 100, f"blocks/{bid}", seq)


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        # four flushes of a steady rate (sizes within 2x of each other) merge
        ([100, 130, 90, 110], [0, 1, 2, 3]),
        # a merged block and three new flushes: the flushes wait for a fourth
        ([400, 100, 110, 95], []),
        ([400, 100, 110, 95, 105], [1, 2, 3, 4]),
        # four merged blocks of four merge again; the newer flushes are left alone
        ([400, 420, 390, 410, 100, 90], [0, 1, 2, 3]),
        # a small late flush in the middle breaks the run; the newest alike run counts
        ([100, 100, 3, 100, 100, 100, 100], [3, 4, 5, 6]),
        ([100, 100, 100, 3], []),
    ],
)
def test_open_partitions_merge_blocks_of_alike_size(rows: list[int], expected: list[int]) -> None:
    blocks = [sized(str(i), i, n) for i, n in enumerate(rows)]
    plans = plan_compactions(blocks, 1 * H, 2 * H, min_blocks=4)
    assert [[int(b.id) for b in group] for group in plans] == ([expected] if expected else [])


def test_rows_written_grow_linearly_not_with_the_square_of_the_flushes() -> None:
    """Sixty steady flushes into one open partition, compacting after each."""
    blocks: list[BlockMeta] = []
    written, seq = 0, 0
    for _ in range(60):
        seq += 1
        blocks.append(sized(f"f{seq}", seq, 1000 + 37 * (seq % 5)))
        while plans := plan_compactions(blocks, 1 * H, 2 * H, min_blocks=4):
            for group in plans:
                seq += 1
                merged = sized(f"m{seq}", max(b.seq for b in group), sum(b.rows for b in group))
                written += merged.rows
                at = blocks.index(group[0])
                blocks[at : at + len(group)] = [merged]
    total = sum(b.rows for b in blocks)
    assert written <= 3 * total  # each row rewritten once per tier (log4 60 < 3)
    assert len(blocks) <= 9  # at most three blocks waiting in each tier
    whole = plan_compactions(blocks, 1 * H, 2 * H, min_blocks=4, whole=True)
    assert [b.id for b in whole[0]] == [b.id for b in blocks]


def test_an_open_partition_that_never_lines_up_is_merged_whole_at_last() -> None:
    rows = [1, 10, 100, 1000] * 4  # never four alike in a row
    blocks = [sized(str(i), i, n) for i, n in enumerate(rows)]
    assert plan_compactions(blocks[:-1], 1 * H, 2 * H, min_blocks=4) == []
    assert len(plan_compactions(blocks, 1 * H, 2 * H, min_blocks=4)[0]) == 16


def test_compaction_groups_stay_under_the_row_bound_and_consecutive_in_age() -> None:
    blocks = [
        BlockMeta(bid, 0, 0, 0, 1, rows, 100, f"blocks/{bid}", seq)
        for bid, seq, rows in [("big", 1, 90), ("s1", 2, 20), ("s2", 3, 20), ("s3", 4, 20),
                               ("s4", 5, 50), ("s5", 6, 10)]
    ]  # fmt: skip
    plans = plan_compactions(blocks, 10 * H, 2 * H, min_blocks=4, max_rows=60)
    # "big" alone passes nothing; s1-s3 fit; s4+s5 fit; s3+s4 would not.
    assert [[b.id for b in group] for group in plans] == [["s1", "s2", "s3"], ["s4", "s5"]]
    assert plan_compactions(blocks, 10 * H, 2 * H, min_blocks=4, max_rows=10) == []


def test_retention_plan_uses_each_resolutions_window() -> None:
    blocks = [meta("raw", 0, 1), meta("r5", 0, 1, res=300_000), meta("new", 20 * H, 2)]
    retention = {0: 10 * H, 300_000: 100 * H}
    assert [b.id for b in plan_retention(blocks, 13 * H, 2 * H, retention)] == ["raw"]


def test_small_reads_through_the_block_cache_equal_direct_reads(tmp_path) -> None:

    series = np.repeat(np.arange(40, dtype=np.int64), 50)
    ts = np.tile(np.arange(50, dtype=np.int64) * 15_000, 40)
    values = np.where(series % 3 == 0, ts * 0.1 + 0.1 / 3, ts * 0.5)  # some raw floats
    write_raw_block(Samples(series, ts, values), tmp_path / "b.parquet", 128)
    block = BlockFile.open(tmp_path / "b.parquet")
    cache = RowGroupCache(1 << 20)
    for wanted in ([3], [4, 5], [0, 39]):
        ids = np.array(wanted, dtype=np.int64)
        direct = block.read_raw(ids, 30_000, 600_000)
        for _ in range(2):  # a miss, then a hit
            cached = block.read_raw(ids, 30_000, 600_000, cache)
            assert cached.series.tolist() == direct.series.tolist()
            assert cached.timestamps.tolist() == direct.timestamps.tolist()
            assert cached.values.view(np.int64).tolist() == direct.values.view(np.int64).tolist()
    assert cache.hits > 0


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    start=st.integers(-50_000, 1_600_000),
    width=st.integers(0, 1_600_000),
)
def test_a_window_of_long_runs_reads_what_a_whole_read_filters(
    tmp_path_factory, seed: int, start: int, width: int
) -> None:
    """Runs spanning many row groups, with jitter, missed scrapes (the residuals grow
    after each) and counters: a read of part of the range equals the whole read cut
    to it, with and without the directory's window facts (older blocks lack them)."""
    rng = np.random.default_rng(seed)
    rows = []
    for sid in range(6):
        n = int(rng.integers(1, 100))
        steps = np.cumsum(np.where(rng.random(n) < 0.1, 30_000, 15_000))  # some gaps
        ts = steps + rng.integers(0, 21, n)
        values = np.cumsum(rng.integers(0, 1000, n)).astype(float) if sid % 2 else rng.random(n)
        rows += [(sid * 7919, int(t), float(v)) for t, v in zip(ts, values, strict=True)]
    rows.sort()
    series = np.array([r[0] for r in rows], dtype=np.int64)
    ts = np.array([r[1] for r in rows], dtype=np.int64)
    values = np.array([r[2] for r in rows])
    path = tmp_path_factory.mktemp("window") / "b.parquet"
    write_raw_block(Samples(series, ts, values), path, 16)
    block = BlockFile.open(path)
    whole = block.read_raw(None, -(2**63), 2**63 - 1)
    assert whole.timestamps.tolist() == ts.tolist() and whole.values.tolist() == values.tolist()
    inside = (ts >= start) & (ts <= start + width)
    got = block.read_raw(None, start, start + width)
    assert got.series.tolist() == series[inside].tolist()
    assert got.timestamps.tolist() == ts[inside].tolist()
    assert got.values.tolist() == values[inside].tolist()
    assert block.directory is not None
    block.directory = dataclasses.replace(block.directory, x_first=None, tsr_max=None)
    old = block.read_raw(None, start, start + width)
    assert old.timestamps.tolist() == got.timestamps.tolist()
    assert old.values.tolist() == got.values.tolist()


def test_the_last_minutes_of_a_long_run_decode_only_their_row_groups(tmp_path) -> None:
    ts = np.arange(480, dtype=np.int64) * 15_000  # 2 hours, 15 row groups of 32 rows
    series = np.zeros(480, dtype=np.int64)
    write_raw_block(Samples(series, ts, ts.astype(float)), tmp_path / "b.parquet", 32)
    block = BlockFile.open(tmp_path / "b.parquet")
    last_15m = block.raw_row_groups(None, ts[-1] - 900_000, ts[-1])
    assert last_15m == [13, 14]  # rows 419-479
    got = block.read_raw(None, ts[-1] - 900_000, ts[-1])
    assert got.timestamps.tolist() == ts[ts >= ts[-1] - 900_000].tolist()


@pytest.mark.parametrize("max_rows", [1, 5, 12, 40, 1000])
def test_id_chunks_cover_the_present_ids_in_order_within_the_row_bound(
    tmp_path, max_rows: int
) -> None:
    counts = [3, 9, 1, 20, 4, 4]
    series = np.repeat(np.arange(len(counts), dtype=np.int64) * 10, counts)
    ts = np.concatenate([np.arange(c, dtype=np.int64) * 15_000 for c in counts])
    write_raw_block(Samples(series, ts, ts.astype(float)), tmp_path / "b.parquet", 8)
    block = BlockFile.open(tmp_path / "b.parquet")
    wanted = np.array([-5, 0, 10, 20, 30, 35, 40, 50], dtype=np.int64)
    chunks = block.id_chunks(wanted, 0, 10**9, max_rows)
    assert np.concatenate(chunks).tolist() == [0, 10, 20, 30, 40, 50]
    rows = dict(zip(range(0, 60, 10), counts, strict=True))
    for chunk in chunks:
        assert len(chunk) == 1 or sum(rows[i] for i in chunk.tolist()) <= max_rows
    assert block.id_chunks(np.array([7], dtype=np.int64), 0, 10**9, max_rows) == []


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), piece=st.integers(1, 40), wide=st.booleans())
def test_a_block_encoded_in_pieces_equals_one_encoded_whole(
    tmp_path_factory, seed: int, piece: int, wide: bool
) -> None:
    """Raw and rollup blocks come out the same whether their rows are encoded in one
    piece or in pieces of whole series (raw floats, a residual over 2^31 in one
    piece only, clustered metrics)."""
    import hakon.store.block as block_mod
    import hakon.store.rollup as rollup_mod

    rng = np.random.default_rng(seed)
    n_series = int(rng.integers(1, 12))
    lengths = rng.integers(1, 15, n_series)
    series = np.repeat(np.sort(rng.choice(10**6, n_series, replace=False)), lengths)
    ts = np.concatenate([np.cumsum(rng.integers(1, 30_000, k)) for k in lengths])
    if wide:
        ts[-1] += 2**32  # the last series spans weeks: int64 residuals for every piece
    values = np.round(rng.normal(0, 100, len(ts)), int(rng.integers(0, 4)))
    values[rng.random(len(ts)) < 0.1] = np.nan
    groups = rng.integers(0, 3, n_series)
    samples = Samples(series.astype(np.int64), ts.astype(np.int64), values)
    tmp = tmp_path_factory.mktemp("pieces")
    results = []
    for rows in (10**9, piece):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(block_mod, "PIECE_ROWS", rows)
            patch.setattr(rollup_mod, "PIECE_ROWS", rows)
            path = tmp / f"b{rows}.parquet"
            write_raw_block(samples, path, 16, groups)
            rollups = rollup_mod.compute(samples, 300_000)
        block = BlockFile.open(path)
        got = block.read_raw(None, -(2**62), 2**62)
        assert block.directory is not None
        fields = dataclasses.fields(block.directory)
        directory = {f.name: getattr(block.directory, f.name) for f in fields}
        columns = block.file.read(columns=["tsr", "vx"]).to_pydict()  # vfloat: in values
        results.append((got, directory, block.file.schema_arrow, rollups, columns))
    whole, dir_whole, schema_whole, roll_whole, columns_whole = results[0]
    cut, dir_cut, schema_cut, roll_cut, columns_cut = results[1]
    assert columns_whole == columns_cut  # the stored columns themselves, vx included
    assert whole.values.tobytes() == cut.values.tobytes() == values.tobytes()
    assert np.array_equal(whole.timestamps, cut.timestamps) and np.array_equal(cut.timestamps, ts)
    assert schema_whole == schema_cut
    for name, column in dir_whole.items():
        assert np.array_equal(column, dir_cut[name]), name
    for name in rollup_mod.COLUMNS:
        a, b = getattr(roll_whole, name), getattr(roll_cut, name)
        assert a.tobytes() == b.tobytes(), name
