"""Query benchmark: dashboard PromQL over HTTP on Hakon, Prometheus and VictoriaMetrics.

    python benchmarks/query.py                      # 50,000 series x 1 h, peers if installed
    python benchmarks/query.py --series 100000 --hours 2
    python benchmarks/query.py --no-peers --repeat 9

Data: the storage benchmark's Kubernetes-like series (benchmarks/store.py), one
sample every 15 s ending two minutes ago. Hakon's copy is written by the store
directly and flushed to blocks, then served by `hakon serve`; Prometheus 2.42
(Debian) and VictoriaMetrics get the same samples through remote_write, in
time order. Every query runs as query_range over the last hour, once to warm
up and then `--repeat` times per engine, alternating engines; the figure is
the median latency of the whole HTTP request. Ratios are Hakon / peer.

The native endpoints are timed on a second data set: `--nodes` edge nodes
with one sample a minute over 30 days, served from 5 m and 1 h rollups.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cramjam
import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).parent))  # first: benchmarks/store.py, not tests/store

from peers import start_prometheus, start_victoria
from serverproc import HakonProcess
from store import STEP_MS, DataSet, batches_for, open_store

QUERIES = [
    ("sum by (namespace) (rate(container_cpu_usage_seconds_total[5m]))", 15),
    ("sum by (namespace) (rate(container_cpu_usage_seconds_total[5m]))", 60),
    ("avg by (node) (container_memory_working_set_bytes)", 15),
    ("topk(5, sum by (pod) (rate(container_network_receive_bytes_total[5m])))", 15),
    ('max_over_time(container_memory_working_set_bytes{namespace=~"ns-1.*"}[10m])', 15),
    ('container_memory_working_set_bytes{pod="app-1-0000001", container="ctr-1"}', 15),
]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _label_bytes(labels: tuple[tuple[str, str], ...]) -> bytes:
    out = b""
    for name, value in labels:
        n, v = name.encode(), value.encode()
        pair = b"\x0a" + _varint(len(n)) + n + b"\x12" + _varint(len(v)) + v
        out += b"\x0a" + _varint(len(pair)) + pair
    return out


def remote_write_bodies(ds: DataSet, steps: int, base: int, per_request: int) -> list[bytes]:
    """Snappy WriteRequests of `ds`, scrape by scrape (each series' samples in time order)."""
    labels = [_label_bytes(ls) for ls in ds.labels]
    bodies = []
    pack = struct.Struct("<d").pack
    for k in range(steps):
        ts, values = ds.scrape(k, base)
        for lo in range(0, len(labels), per_request):
            parts = []
            for i in range(lo, min(lo + per_request, len(labels))):
                sample = b"\x09" + pack(values[i]) + b"\x10" + _varint(int(ts[i]))
                body = labels[i] + b"\x12" + _varint(len(sample)) + sample
                parts.append(b"\x0a" + _varint(len(body)) + body)
            bodies.append(bytes(cramjam.snappy.compress_raw(b"".join(parts))))
    return bodies


def push(url: str, bodies: list[bytes]) -> float:
    headers = {
        "Content-Type": "application/x-protobuf",
        "Content-Encoding": "snappy",
        "X-Prometheus-Remote-Write-Version": "0.1.0",
    }
    started = time.perf_counter()
    with httpx.Client(timeout=120) as client:
        for body in bodies:
            r = client.post(url, content=body, headers=headers)
            if r.status_code >= 300:
                raise RuntimeError(f"{url}: {r.status_code} {r.text[:200]}")
    return time.perf_counter() - started


def timed_query(
    client: httpx.Client, url: str, query: str, start: int, end: int, step: int
) -> float:
    params = {"query": query, "start": str(start), "end": str(end), "step": str(step)}
    started = time.perf_counter()
    r = client.get(url, params=params)
    elapsed = time.perf_counter() - started
    body = r.json()
    if body.get("status") != "success":
        raise RuntimeError(f"{url} {query}: {body}")
    return elapsed


def series_count(client: httpx.Client, url: str, at: int) -> int:
    r = client.get(url, params={"query": 'count({__name__=~"container_.+"})', "time": str(at)})
    result = r.json()["data"]["result"]
    return int(float(result[0]["value"][1])) if result else 0


def build_hakon(data: Path, ds: DataSet, steps: int, base: int) -> None:
    catalog, store = open_store(data)
    try:
        for k in range(steps):
            for batch in batches_for(ds, k, base, 50_000):
                store.append(batch)
        store.flush()
    finally:
        store.close()
        catalog.close()


EDGE_SERIES = (
    "hakon_edge_cpu_usage_percent",
    "hakon_edge_memory_usage_gigabytes",
    "hakon_edge_memory_total_gigabytes",
    "hakon_edge_disk_usage_gigabytes",
    "hakon_edge_disk_total_gigabytes",
    "hakon_edge_network_rx_bytes_total",
    "hakon_edge_network_tx_bytes_total",
    "hakon_edge_heartbeat_timestamp_seconds",
)


def build_edge(data: Path, nodes: int, days: int, end_ms: int) -> int:
    """`nodes` edge nodes reporting once a minute for `days` days; returns samples written."""
    from hakon.store.interface import RAW, SampleBatch
    from hakon.store.labels import canonical, series_ids

    day_ms = 86_400_000
    retention = {RAW: 400 * day_ms, 300_000: 400 * day_ms, 3_600_000: 400 * day_ms}
    catalog, store = open_store(data, retention_ms=retention)  # type: ignore[arg-type]
    labels = [
        canonical({"__name__": name, "node_id": f"edge-{n:03d}"})
        for n in range(nodes)
        for name in EDGE_SERIES
    ]
    ids = series_ids(labels)
    rng = np.random.default_rng(5)
    start = end_ms - days * day_ms
    written = 0
    try:
        for hour in range(days * 24):
            minutes = start + hour * 3_600_000 + 60_000 * np.arange(60)
            ts = np.tile(minutes, len(ids)) + rng.integers(0, 900, 60 * len(ids))
            values = rng.uniform(0, 100, 60 * len(ids))
            sample_series = np.repeat(ids, 60)
            store.append(SampleBatch(ids, labels, sample_series, ts, values))
            written += len(ts)
        store.flush()
    finally:
        store.close()
        catalog.close()
    return written


def time_native(url: str, nodes: int, repeat: int) -> None:
    cases: list[tuple[str, dict[str, object], int | None]] = [
        ("/api/v1/metrics/nodes/edge-007", {"timeframe": "7d", "resolution": "1h"}, 50),
        ("/api/v1/metrics/nodes/edge-007", {"timeframe": "30d", "resolution": "1h"}, 100),
        ("/api/v1/metrics/nodes/edge-007", {"timeframe": "24h", "resolution": "5m"}, None),
        ("/api/v1/metrics", {"timeframe": "7d", "resolution": "1h"}, None),
    ]
    hour = 3600
    end_s = int(time.time()) // hour * hour
    promql = "/prometheus/api/v1/query_range"
    for query in (
        'avg_over_time(hakon_edge_cpu_usage_percent{node_id="edge-007"}[1h])',
        "max by (node_id) (max_over_time(hakon_edge_memory_usage_gigabytes[1h]))",
    ):
        params = {"query": query, "start": end_s - 30 * 24 * hour, "end": end_s, "step": "1h"}
        cases.append((promql, params, None))
    print(f"\nnative endpoints ({nodes} edge nodes, 8 series each, one sample a minute)")
    with httpx.Client(base_url=url, timeout=120) as client:
        for path, params, target in cases:
            client.get(path, params=params).raise_for_status()
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                r = client.get(path, params=params)
                times.append(time.perf_counter() - started)
                r.raise_for_status()
            if path == promql:
                shown = f"PromQL 30 d at 1 h: {params['query']}"
            else:
                shown = path + "?" + "&".join(f"{k}={v}" for k, v in params.items())
            goal = f"  (target <= {target} ms)" if target else ""
            print(f"{shown:<96} {statistics.median(times) * 1000:9.1f} ms{goal}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--series", type=int, default=50_000)
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--nodes", type=int, default=20, help="edge nodes of the 30-day set")
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--skip-promql", action="store_true", help="only the native endpoints")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="hakon-query-bench-"))
    steps = int(args.hours * 3600_000 / STEP_MS)
    end_ms = (int(time.time()) - 120) * 1000
    base = end_ms - steps * STEP_MS
    print(
        f"data: {args.series} series x {steps} samples ({args.hours:g} h at 15 s), workdir {work}"
    )
    started = time.perf_counter()
    if args.skip_promql:
        args.series, steps = 0, 0
    else:
        build_hakon(work / "hakon", DataSet(args.series), steps, base)
    written = build_edge(work / "hakon", args.nodes, args.days, end_ms)
    print(f"hakon: wrote and flushed in {time.perf_counter() - started:.1f} s "
          f"(+ {written / 1e6:.1f} M edge samples over {args.days} days)")  # fmt: skip

    engines: dict[str, tuple[str, subprocess.Popen[bytes] | HakonProcess]] = {}
    hakon = HakonProcess(work / "hakon", "--no-auth", "--rate-limit-rps", "0").start()
    engines["hakon"] = (hakon.url + "/prometheus/api/v1/query_range", hakon)
    bodies: list[bytes] | None = None
    time_native(hakon.url, args.nodes, args.repeat)
    if args.skip_promql:
        hakon.stop()
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
        return
    if not args.no_peers:
        peers = (
            # no result cache on either side: every run computes
            ("prometheus", lambda: start_prometheus(work, "--web.enable-remote-write-receiver")),
            ("victoriametrics", lambda: start_victoria(work, "-search.disableCache")),
        )
        write_path, query_path = "/api/v1/write", "/api/v1/query_range"
        for name, starter in peers:
            started_peer = starter()
            if started_peer is None:
                print(f"{name}: not installed, no comparison")
                continue
            proc, port = started_peer
            url = f"http://127.0.0.1:{port}"
            if bodies is None:
                t = time.perf_counter()
                bodies = remote_write_bodies(DataSet(args.series), steps, base, 10_000)
                print(f"remote_write bodies encoded in {time.perf_counter() - t:.1f} s")
            seconds = push(url + write_path, bodies)
            if name == "victoriametrics":
                httpx.get(url + "/internal/force_flush", timeout=60)
            with httpx.Client(timeout=60) as c:
                deadline = time.monotonic() + 120
                while series_count(c, url + "/api/v1/query", end_ms // 1000) < args.series:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{name} did not show all series")
                    time.sleep(1)
            rate = args.series * steps / seconds
            print(f"{name}: loaded by remote_write at {rate / 1e6:.2f} M samples/s")
            engines[name] = (url + query_path, proc)

    start_s, end_s = end_ms // 1000 - 3600, end_ms // 1000
    print()
    header = f"{'query (range over 1 h)':<82} {'step':>4}" + "".join(
        f" {name[:12]:>12}" for name in engines
    )
    print(header + "   ratios (hakon / peer)")
    try:
        with httpx.Client(timeout=300) as client:
            for query, step in QUERIES:
                times: dict[str, list[float]] = {name: [] for name in engines}
                for url, _ in engines.values():
                    timed_query(client, url, query, start_s, end_s, step)  # warm-up
                for _ in range(args.repeat):
                    for name, (url, _) in engines.items():
                        times[name].append(timed_query(client, url, query, start_s, end_s, step))
                medians = {n: statistics.median(t) * 1000 for n, t in times.items()}
                line = f"{query:<82} {step:>3}s" + "".join(
                    f" {medians[n]:>9.1f} ms" for n in engines
                )
                ratios = [
                    f"{n}: {medians['hakon'] / medians[n]:.2f}" for n in engines if n != "hakon"
                ]
                print(line + "   " + ", ".join(ratios), flush=True)
    finally:
        for _, proc in engines.values():
            if isinstance(proc, HakonProcess):
                proc.stop()
            else:
                proc.terminate()
                proc.wait(timeout=30)
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
