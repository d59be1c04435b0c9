"""Random histories of appends, flushes, compactions and restarts read back as a dict model says."""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hakon.store.catalog import Catalog
from hakon.store.engine import Store, StoreOptions
from hakon.store.interface import SampleBatch
from hakon.store.labels import Matcher, canonical, series_id

H = 3_600_000
NOW = int(time.time() * 1000)
BASE = NOW - NOW % (2 * H) - 8 * H  # four partitions, all in the past
# Enough series for a scrape of all of them to form a timestamp set in a block.
SERIES = [{"__name__": "m", "pod": f"p{i}", "ns": "a" if i % 2 else "b"} for i in range(10)]
IDS = [series_id(canonical(s)) for s in SERIES]

values = st.one_of(
    st.integers(-(10**6), 10**6).map(float),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0.1, 2.5, -0.0, 1e300, 5e-324, 123.456]),
)
# Timestamps cluster on a few instants so duplicates (last write wins) are common.
stamps = st.one_of(
    st.integers(0, 8 * H - 1),
    st.sampled_from([0, 1, 2 * H - 1, 2 * H, 5 * H + 7, 8 * H - 1]),
).map(lambda t: BASE + t)
sample = st.tuples(st.integers(0, len(SERIES) - 1), stamps, values)
# A scrape: every series at one instant, as a target's samples arrive.
scrape = st.tuples(stamps, st.lists(values, min_size=len(SERIES), max_size=len(SERIES))).map(
    lambda s: [(i, s[0], v) for i, v in enumerate(s[1])]
)
step = st.one_of(
    st.lists(sample, min_size=1, max_size=40).map(lambda s: ("append", s)),
    st.lists(scrape, min_size=1, max_size=6).map(lambda s: ("append", [x for r in s for x in r])),
    st.just(("flush", None)),
    st.just(("compact", None)),
    st.just(("restart", None)),
)


def open_store(path: Path) -> tuple[Catalog, Store]:
    catalog = Catalog.open_in(path)
    options = StoreOptions(compaction_min_blocks=2, maintenance_interval_s=3600)
    return catalog, Store(path, catalog, options).open()


def expected_rollups(model: dict, res: int) -> dict:
    buckets: dict = {}
    for (sid, ts), v in sorted(model.items()):
        if math.isnan(v):
            continue
        buckets.setdefault((sid, ts - ts % res), []).append((ts, v))
    out = {}
    for key, pts in buckets.items():
        vs = [v for _, v in pts]
        total = 0.0
        for v in vs:
            total += v
        # A float sum depends on its order by up to n * eps * sum(|v|): the store may add
        # a bucket's values in another order (0.1 - 1e6 + 1e6 is 0.0999999999767 in time
        # order, 0.1 when the last two meet first).
        bound = len(vs) * 2.3e-16 * sum(abs(v) for v in vs)
        out[key] = (min(vs), max(vs), total, len(vs), vs[-1], pts[0][0], pts[-1][0], bound)
    return out


def same_float(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def check(store: Store, model: dict) -> None:
    assert sorted(store.select([Matcher("__name__", "=", "m")])) == sorted(
        {sid for sid, _ in model}
    )
    got = store.read(IDS, BASE, BASE + 8 * H)
    pairs = sorted(model)
    assert list(zip(got.series.tolist(), got.timestamps.tolist(), strict=True)) == pairs
    expected = np.array([model[p] for p in pairs], dtype=np.float64)
    assert got.values.view(np.int64).tolist() == expected.view(np.int64).tolist()
    for res in (300_000, H):
        r = store.read_rollups(IDS, BASE, BASE + 8 * H, res)
        want = expected_rollups(model, res)
        assert list(zip(r.series.tolist(), r.bucket.tolist(), strict=True)) == sorted(want)
        for i, key in enumerate(sorted(want)):
            mn, mx, total, count, last, first_ts, last_ts, bound = want[key]
            assert same_float(r.min[i], mn) and same_float(r.max[i], mx)
            assert same_float(r.last[i], last) and r.count[i] == count
            assert (r.first_ts[i], r.last_ts[i]) == (first_ts, last_ts)
            assert same_float(r.sum[i], total) or abs(r.sum[i] - total) <= bound


@given(st.lists(step, min_size=1, max_size=12))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_store_reads_back_what_the_model_says(steps) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        catalog, store = open_store(path)
        model: dict[tuple[int, int], float] = {}
        try:
            for kind, arg in steps:
                if kind == "append":
                    idx, ts, vals = zip(*arg, strict=True)
                    store.append(SampleBatch.from_series(SERIES, idx, ts, vals))
                    for i, t, v in arg:
                        model[(IDS[i], t)] = v
                elif kind == "flush":
                    store.flush()
                elif kind == "compact":
                    store.compact(now_ms=NOW)
                else:
                    store.close()
                    catalog.close()
                    catalog, store = open_store(path)
                check(store, model)
        finally:
            store.close()
            catalog.close()
