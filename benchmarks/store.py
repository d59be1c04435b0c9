"""Storage engine benchmark: append, bytes per sample, reads, WAL replay, memory.

    python benchmarks/store.py                 # every phase, the issue's data set
    python benchmarks/store.py --series 20000  # smaller, for a quick look
    python benchmarks/store.py --phase memory --memory-series 1000000
    python benchmarks/store.py --phase serve-memory  # the same through `hakon serve`

Data set: `--series` Kubernetes-like series (cluster, namespace, pod, node,
container), one sample every 15 s with 0-20 ms of scrape jitter (by default one draw per
node and scrape, shared by the node's series as a scrape stamps all its samples), over
`--hours` hours aligned to one block partition. Kinds: byte counters (40 %),
nanosecond-precision CPU-seconds counters (10 %), memory gauges in bytes
(30 %), and CPU-core gauges with 3 decimals (20 %).

Phases print one `name value unit` line per figure; medians where repeated.
Appends are measured with maintenance idle (no background flush), so they
show the write path alone; flush and compaction are timed on their own.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from hakon.store.catalog import Catalog
from hakon.store.engine import Store, StoreOptions
from hakon.store.interface import SampleBatch
from hakon.store.labels import canonical, series_ids

STEP_MS = 15_000
BLOCK_MS = 2 * 3_600_000
NODES = 500


def label_sets(n: int, offset: int = 0) -> list[dict[str, str]]:
    kinds = ["container_network_receive_bytes_total"] * 4 + ["container_cpu_usage_seconds_total"]
    kinds += ["container_memory_working_set_bytes"] * 3 + ["container_cpu_usage_cores"] * 2
    # Repeated values are one string each (only pod names are unique), as the index keeps
    # them once interned: a million copies of "ns-7" were the generator's memory, counted
    # as the store's. (A server's decoded requests do carry copies until the index interns
    # them; the memory phase measures the store's steady state.)
    clusters = [f"c{k}" for k in range(3)]
    namespaces = [f"ns-{k}" for k in range(40)]
    nodes = [f"node-{k:03d}" for k in range(NODES)]
    containers = [f"ctr-{k}" for k in range(4)]
    out = []
    for i in range(offset, offset + n):
        pod = i // 4
        out.append(
            {
                "__name__": kinds[i % 10],
                "cluster": clusters[pod % 3],
                "namespace": namespaces[pod % 40],
                "pod": f"app-{pod % 997}-{pod:07d}",
                "node": nodes[pod % NODES],
                "container": containers[i % 4],
            }
        )
    return out


class DataSet:
    """Per-series value generators, vectorized across series, one scrape at a time."""

    def __init__(self, n: int, seed: int = 1, jitter: str = "target") -> None:
        self.rng = np.random.default_rng(seed)
        self.jitter = jitter
        pairs: dict[tuple[str, str], tuple[str, str]] = {}  # each distinct pair once
        canon = [
            tuple(pairs.setdefault(pair, pair) for pair in canonical(ls)) for ls in label_sets(n)
        ]
        self.ids = series_ids(canon)
        self.labels = canon
        kind = np.arange(n) % 10
        self.byte_counter = kind < 4
        self.cpu_counter = kind == 4
        self.mem_gauge = (kind >= 5) & (kind < 8)
        self.core_gauge = kind >= 8
        self.value = np.zeros(n)
        self.value[self.mem_gauge] = self.rng.integers(50, 2000, self.mem_gauge.sum()) * 2**20
        self.rate = self.rng.lognormal(8, 2, n)
        self.node = (np.arange(n) // 4) % NODES  # as in label_sets

    def scrape(self, k: int, base: int) -> tuple[np.ndarray, np.ndarray]:
        rng = self.rng
        v = self.value
        bc = self.byte_counter
        v[bc] += np.floor(rng.poisson(self.rate[bc] * 15)).astype(np.float64)
        cc = self.cpu_counter
        v[cc] = np.round(v[cc] + rng.uniform(0, 15 * 0.3, cc.sum()), 9)
        mg = self.mem_gauge
        v[mg] = np.maximum(v[mg] + rng.integers(-64, 65, mg.sum()) * 4096, 4096)
        cg = self.core_gauge
        v[cg] = np.round(np.abs(rng.normal(0.25, 0.1, cg.sum())), 3)
        ts = base + k * STEP_MS + scrape_jitter(rng, self.node, self.jitter)
        return ts, v.copy()


JITTER = {
    "target": "each node's scrape 0-20 ms late, the same for all its series (cAdvisor's"
    " container series come from one scrape of the node's kubelet)",
    "uniform": "every sample 0-20 ms late, independently (the harsh case: no scraper"
    " or pushing agent stamps samples of one scrape differently)",
    "late": "5 % of samples 1-20 ms late, the rest on the 15 s grid",
    "aligned": "every sample on the grid (Prometheus aligns scrapes within 2 ms)",
}


def scrape_jitter(rng: np.random.Generator, node: np.ndarray, model: str) -> np.ndarray:
    n = len(node)
    if model == "target":
        return rng.integers(0, 21, NODES)[node]
    if model == "aligned":
        return np.zeros(n, dtype=np.int64)
    if model == "late":
        return np.where(rng.random(n) < 0.05, rng.integers(1, 21, n), 0)
    return rng.integers(0, 21, n)


def open_store(path: Path, **kw: int) -> tuple[Catalog, Store]:
    catalog = Catalog.open_in(path)
    options = StoreOptions(
        head_max_samples=10**10, head_max_age_s=10**9, maintenance_interval_s=3600, **kw
    )
    return catalog, Store(path, catalog, options).open()


def batches_for(ds: DataSet, k: int, base: int, size: int) -> list[SampleBatch]:
    ts, values = ds.scrape(k, base)
    out = []
    for lo in range(0, len(ds.ids), size):
        hi = lo + size
        ids = ds.ids[lo:hi]
        out.append(SampleBatch(ids, ds.labels[lo:hi], ids, ts[lo:hi], values[lo:hi]))
    return out


def report(name: str, value: float, unit: str) -> None:
    print(f"{name:<44} {value:>14,.3f} {unit}", flush=True)


def bench_main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="hakon-bench-"))
    ds = DataSet(args.series, jitter=args.jitter)
    scrapes = int(args.hours * 3600_000 // STEP_MS)
    now = int(time.time() * 1000)
    base = now - now % BLOCK_MS - BLOCK_MS * int(np.ceil(args.hours / 2)) - BLOCK_MS
    catalog, store = open_store(tmp)
    print(f"data set: {args.series} series x {scrapes} scrapes = {args.series * scrapes:,} samples"
          f", timestamps {args.jitter} ({JITTER[args.jitter]})")  # fmt: skip

    # Register every series first so both append phases measure steady state.
    store.append(batches_for(DataSet(args.series, seed=9), 0, base - STEP_MS, args.series)[0])

    half = scrapes // 2
    elapsed = 0.0
    appended = 0
    for k in range(half):
        batches = batches_for(ds, k, base, 10_000)
        t0 = time.perf_counter()
        for b in batches:
            store.append(b)
        elapsed += time.perf_counter() - t0
        appended += sum(len(b) for b in batches)
    report("append 10k-series batches, 1 thread", appended / elapsed / 1e6, "M samples/s")

    # Eight long-lived appenders, as a server's request handlers are; each sends its
    # share of every scrape in 1,000-series batches.
    per_thread: list[list[SampleBatch]] = [[] for _ in range(8)]
    for k in range(half, scrapes):
        for i, b in enumerate(batches_for(ds, k, base, 1_000)):
            per_thread[i % 8].append(b)

    def run(mine: list[SampleBatch]) -> None:
        for b in mine:
            store.append(b)

    threads = [threading.Thread(target=run, args=(mine,)) for mine in per_thread]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    appended = sum(len(b) for mine in per_thread for b in mine)
    del per_thread
    report("append 1k-series batches, 8 threads", appended / elapsed / 1e6, "M samples/s")

    rng = np.random.default_rng(3)
    some = np.sort(rng.choice(ds.ids, size=min(1000, len(ds.ids)), replace=False))
    hour = 3_600_000
    t = [
        _timed(lambda: store.read(some, base + hour // 2, base + hour // 2 + hour))
        for _ in range(5)
    ]
    report("read 1k series x 1h from the head", statistics.median(t) * 1000, "ms")

    store.close()
    catalog.close()
    t0 = time.perf_counter()
    catalog, store = open_store(tmp)
    replay = time.perf_counter() - t0
    replayed = store.stats()["wal_replayed_samples"]
    report("WAL replay (whole open)", replayed / replay / 1e6, "M samples/s")
    report("WAL replay time per 1M samples", replay / replayed * 1e6 * 1000, "ms")

    t0 = time.perf_counter()
    flushed = store.flush()
    report("flush head to blocks", (time.perf_counter() - t0), "s")
    t0 = time.perf_counter()
    store.compact(now_ms=now)
    report("compaction", (time.perf_counter() - t0), "s")
    stats = store.stats()
    report("raw block bytes per sample", stats["block_bytes"] / flushed, "B/sample")
    report("rollup bytes per raw sample (5m + 1h)", stats["rollup_bytes"] / flushed, "B/sample")
    report("raw blocks", stats["blocks"], "blocks")

    t = [
        _timed(lambda: store.read(some, base + hour // 2, base + hour // 2 + hour))
        for _ in range(9)
    ]
    report("read 1k series x 1h from blocks", statistics.median(t) * 1000, "ms")
    one = ds.ids[:1]
    t = [_timed(lambda: store.read(one, base, base + scrapes * STEP_MS)) for _ in range(21)]
    report(f"read 1 series x {args.hours:g}h from blocks", statistics.median(t) * 1000, "ms")
    end = base + scrapes * STEP_MS
    t = [_timed(lambda: store.read_rollups(ds.ids, base, end, 300_000)) for _ in range(3)]
    report("5m rollup of all series over the range", statistics.median(t) * 1000, "ms")
    store.close()
    catalog.close()
    subprocess.run(["rm", "-rf", str(tmp)], check=False)


def bench_day(args: argparse.Namespace) -> None:
    """1 series over 24 h, from a 24 h store of fewer series (12 two-hour blocks)."""
    tmp = Path(tempfile.mkdtemp(prefix="hakon-bench-day-"))
    ds = DataSet(args.day_series)
    now = int(time.time() * 1000)
    base = now - now % BLOCK_MS - 13 * BLOCK_MS
    catalog, store = open_store(tmp)
    for k in range(24 * 240):
        for b in batches_for(ds, k, base, args.day_series):
            store.append(b)
    store.flush()
    store.compact(now_ms=now)
    one = ds.ids[:1]
    t = [_timed(lambda: store.read(one, base, base + 24 * 3_600_000)) for _ in range(21)]
    got = len(store.read(one, base, base + 24 * 3_600_000))
    report(f"read 1 series x 24h ({got} samples, 12 blocks)", statistics.median(t) * 1000, "ms")
    store.close()
    catalog.close()
    subprocess.run(["rm", "-rf", str(tmp)], check=False)


def bench_memory(args: argparse.Namespace) -> None:
    """Resident memory per active series with `--memory-series` series in the head."""
    rss0 = _rss_bytes()
    tmp = Path(tempfile.mkdtemp(prefix="hakon-bench-mem-"))
    ds = DataSet(args.memory_series)
    now = int(time.time() * 1000)
    catalog, store = open_store(tmp)
    for k in range(args.memory_scrapes):
        for b in batches_for(ds, k, now - 3_600_000, 50_000):
            store.append(b)
    del ds
    import gc

    gc.collect()
    per_series = (_rss_bytes() - rss0) / args.memory_series
    report(
        f"RSS per series ({args.memory_series} series, {args.memory_scrapes} samples each)",
        per_series,
        "B",
    )
    store.close()
    catalog.close()
    subprocess.run(["rm", "-rf", str(tmp)], check=False)


def bench_serve_memory(args: argparse.Namespace) -> None:
    """The same, through `hakon serve`: `--memory-series` series sent over remote_write,
    `--memory-scrapes` samples each, with the head kept whole (no flush). The server
    process holds what a store does plus what serving adds: decoded requests, label
    strings until the index interns them, the catalog's buffers, allocator slack."""
    import cramjam
    import httpx

    sys.path.append(str(Path(__file__).parent.parent / "tests"))  # after benchmarks/
    from ingest import rss_mb
    from serverproc import HakonProcess

    tmp = Path(tempfile.mkdtemp(prefix="hakon-bench-serve-mem-"))
    proc = HakonProcess(tmp / "data", "--head-max-samples", str(10**10), "--head-max-age", "24h")
    proc.start(timeout=60)
    try:
        assert proc.proc is not None
        token = proc.token("metrics:write")
        time.sleep(1.0)
        rss0 = rss_mb(proc.proc.pid, tree=False) * 2**20
        per_request = 10_000
        series = [remote_write_prefix(ls) for ls in label_sets(args.memory_series)]
        now = int(time.time() * 1000) - 3_600_000
        headers = {"Authorization": f"Bearer {token}", "Content-Encoding": "snappy",
                   "Content-Type": "application/x-protobuf"}  # fmt: skip
        with httpx.Client(base_url=proc.url, headers=headers, timeout=120) as client:
            for k in range(args.memory_scrapes):
                sample = remote_write_sample(now + k * STEP_MS, float(k))
                for lo in range(0, len(series), per_request):
                    body = sample.join(series[lo : lo + per_request]) + sample
                    snappy = bytes(cramjam.snappy.compress_raw(body))
                    client.post("/api/v1/write", content=snappy).raise_for_status()
        time.sleep(2.0)
        with proc.client() as admin:
            stats = admin.get("/api/v1/admin/storage").json()
        rss = rss_mb(proc.proc.pid, tree=False) * 2**20
        workers = rss_mb(proc.proc.pid) - rss / 2**20
    finally:
        proc.stop()
        subprocess.run(["rm", "-rf", str(tmp)], check=False)
    n = args.memory_series
    print(f"hakon serve: {stats['series']:,} series, {stats['head_samples']:,} samples in the head")
    report(f"server RSS growth per series ({n} series)", (rss - rss0) / n, "B")
    report("server RSS per series, whole process", rss / n, "B")
    report("decode workers' RSS (all of them)", workers, "MiB")


def remote_write_prefix(labels: dict[str, str]) -> bytes:
    """A TimeSeries field of a WriteRequest up to its one sample: its tag, length and
    labels (sorted by name, as Prometheus sends them)."""
    body = b"".join(
        _pb_field(1, _pb_field(1, name.encode()) + _pb_field(2, value.encode()))
        for name, value in sorted(labels.items())
    )
    sample = remote_write_sample(int(time.time() * 1000), 0.0)
    return b"\x0a" + _varint(len(body) + len(sample)) + body


def remote_write_sample(ts: int, value: float) -> bytes:
    """A TimeSeries' Sample field (value, timestamp): the same length for any value and
    any timestamp from 2004 to 2109 (a 6-byte varint), which `remote_write_prefix`
    relies on."""
    sample = b"\x09" + struct.pack("<d", value) + b"\x10" + _varint(ts)
    return b"\x12" + _varint(len(sample)) + sample


def _pb_field(number: int, data: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def bench_serve_replay(args: argparse.Namespace) -> None:
    """`hakon serve` ready after kill -9 with `--replay-samples` samples in the WAL."""
    sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
    from serverproc import HakonProcess

    tmp = Path(tempfile.mkdtemp(prefix="hakon-bench-replay-"))
    data = tmp / "data"
    writer = subprocess.Popen(
        [sys.executable, __file__, "--phase", "fill-wal", "--data-dir", str(data),
         "--replay-samples", str(args.replay_samples)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert writer.stdout is not None
    for line in writer.stdout:  # skip the banner, wait for the WAL to be full
        if line.startswith("filled"):
            break
    else:
        raise RuntimeError("the WAL filler exited early")
    writer.kill()  # SIGKILL: the WAL is all there is
    writer.wait()
    writer.stdout.close()
    proc = HakonProcess(data)
    t0 = time.perf_counter()
    proc.start(timeout=120)
    ready = time.perf_counter() - t0
    proc.stop()
    report(f"hakon serve ready after kill -9 ({args.replay_samples:,} in WAL)", ready, "s")
    subprocess.run(["rm", "-rf", str(tmp)], check=False)


def fill_wal(args: argparse.Namespace) -> None:
    data = Path(args.data_dir)
    data.mkdir(parents=True)
    from hakon.auth.secret import load_or_create_secret

    load_or_create_secret(data)
    ds = DataSet(10_000)
    now = int(time.time() * 1000)
    _catalog, store = open_store(data)
    written = 0
    k = 0
    while written < args.replay_samples:
        for b in batches_for(ds, k, now - 6 * 3_600_000, 10_000):
            store.append(b)
            written += len(b)
        k += 1
    print(f"filled {written}", flush=True)
    time.sleep(3600)


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--phase",
        default="all",
        choices=["all", "main", "day", "memory", "serve-memory", "serve-replay", "fill-wal"],
    )
    ap.add_argument("--series", type=int, default=100_000)
    models = "; ".join(f"{k}: {v}" for k, v in JITTER.items()).replace("%", "%%")
    ap.add_argument("--jitter", choices=sorted(JITTER), default="target",
                    help="scrape timestamps: " + models)  # fmt: skip
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument("--day-series", type=int, default=100)
    ap.add_argument("--memory-series", type=int, default=1_000_000)
    ap.add_argument("--memory-scrapes", type=int, default=20)
    ap.add_argument("--replay-samples", type=int, default=10_000_000)
    ap.add_argument("--data-dir", default="")
    args = ap.parse_args()  # fmt: skip
    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}")
    phases = {
        "main": bench_main,
        "day": bench_day,
        "memory": bench_memory,
        "serve-memory": bench_serve_memory,
        "serve-replay": bench_serve_replay,
        "fill-wal": fill_wal,
    }
    if args.phase != "all":
        phases[args.phase](args)
        return
    for name in ("main", "day", "serve-replay", "memory", "serve-memory"):
        # Each phase in its own process, so memory and caches do not leak across.
        cmd = [sys.executable, __file__, "--phase", name]
        cmd += [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
                if k not in ("phase", "data_dir")]  # fmt: skip
        subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
