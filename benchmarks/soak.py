"""Soak: ingest in several formats, dashboard queries, alert evaluation and registry
traffic together against one real server, for a while.

    python benchmarks/soak.py                  # 10 minutes
    python benchmarks/soak.py --minutes 3
    python benchmarks/soak.py --only registry  # some workloads (and /health) only

Workloads (each its own client thread, paced): HakonGo pod payloads, edge node
metrics, Prometheus text imports and Influx lines; range queries as a dashboard
sends them; a rule file of 20 alerting and recording rules evaluated every 5 s;
registry create/read/update/delete of nodes and fleets with status reports; and
/health probes. Before the clock starts, the ingest workloads' last `--history`
seconds (default: the dashboards' 15-minute range) are backfilled, and the server
flushes its head every `--head-max-age` (default 2 m), so the run reaches a steady
state. Prints per workload the requests, errors (5xx and others) and p50/p99
latency, and the server's RSS every `--sample` seconds. Targets: RSS after warm-up
grows by at most 10 % (the peaks of the first and the last flush cycle compared),
zero 5xx, /health p99 <= 50 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from serverproc import HakonProcess

from hakon.config import parse_duration

RULES = "groups:\n  - name: soak\n    interval: 5s\n    rules:\n" + "".join(
    f"      - alert: PodCpuHigh{k}\n"
    f'        expr: sum by (pod) (hakon_pod_cpu_usage_cores{{namespace="ns-{k}"}}) > 0.{k + 1}\n'
    "        for: 10s\n"
    f"      - record: ns:cpu_{k}:sum\n"
    f'        expr: sum(hakon_pod_cpu_usage_cores{{namespace="ns-{k}"}})\n'
    for k in range(10)
)


Call = Callable[[httpx.Client, int, float], int]  # (client, request number, at: epoch s)


class Workload:
    def __init__(self, name: str, per_second: float, call: Call, history: bool = False):
        """`history`: an ingest workload whose earlier requests `backfill` replays."""
        self.name, self.per_second, self.call, self.history = name, per_second, call, history
        self.latencies: list[float] = []
        self.server_errors = 0
        self.other_errors = 0
        self.first = 0

    def run(self, url: str, headers: dict[str, str], stop: threading.Event) -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            k = self.first
            next_at = time.monotonic()
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    status = self.call(client, k, time.time())
                except httpx.HTTPError:
                    status = 599
                self.latencies.append(time.perf_counter() - started)
                if status >= 500:
                    self.server_errors += 1
                elif status >= 400:
                    self.other_errors += 1
                k += 1
                next_at += 1 / self.per_second
                stop.wait(max(0.0, next_at - time.monotonic()))

    def report(self, seconds: float) -> str:
        ms = sorted(x * 1000 for x in self.latencies) or [0.0]
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        n = len(self.latencies)
        return (f"{self.name:<22} {n:>7} req {n / seconds:7.1f}/s"
                f"  p50 {statistics.median(ms):7.1f} ms  p99 {p99:7.1f} ms"
                f"  5xx {self.server_errors}  4xx {self.other_errors}")  # fmt: skip


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


def _pods(client: httpx.Client, k: int, at: float) -> int:
    resources = [{"namespace": f"ns-{i % 10}", "name": f"pod-{i}", "node": f"n-{i % 20}",
                  "cpu_usage_cores": (i * k % 100) / 100, "memory_working_set_bytes": 1e8 + k,
                  "phase": "Running", "ready": True} for i in range(500)]  # fmt: skip
    body = {"cluster_id": "soak", "context": {"name": "soak"}, "collected_at": _iso(at),
            "resources": resources}  # fmt: skip
    return client.post("/api/v1/hakongo/pods", json=body).status_code


def _edge(client: httpx.Client, k: int, at: float) -> int:
    body = {"timestamp": _iso(at), "cpu_usage": k % 100, "memory_usage": 3.2,
            "memory_total": 8, "disk_usage": 40, "disk_total": 100,
            "network": {"rx_bytes": 1000 * k, "tx_bytes": 500 * k}}  # fmt: skip
    return client.post(f"/api/v1/metrics/nodes/edge-{k % 50}", json=body).status_code


def _text(client: httpx.Client, k: int, at: float) -> int:
    ts = int(at * 1000)
    body = "".join(f'soak_requests_total{{svc="s{i}"}} {k * 10 + i} {ts}\n' for i in range(300))
    return client.post("/api/v1/import/prometheus", content=body).status_code


def _influx(client: httpx.Client, k: int, at: float) -> int:
    ns = int(at * 1e9)
    body = "".join(f"soak_disk,host=h{i} used={k + i}i,free={i}.5 {ns}\n" for i in range(200))
    return client.post("/write", content=body, params={"precision": "ns"}).status_code


DASHBOARD_RANGE_S = 900


def _dashboard(client: httpx.Client, k: int, at: float) -> int:
    end = at
    queries = ["sum by (namespace) (hakon_pod_cpu_usage_cores)",
               "sum(rate(soak_requests_total[1m]))",
               'avg_over_time(hakon_edge_cpu_usage_percent{node_id="edge-1"}[5m])',
               "topk(5, hakon_pod_memory_working_set_bytes)"]  # fmt: skip
    params = {"query": queries[k % len(queries)], "start": end - DASHBOARD_RANGE_S, "end": end,
              "step": 15}  # fmt: skip
    return client.get("/prometheus/api/v1/query_range", params=params).status_code


def _registry(client: httpx.Client, k: int, at: float) -> int:
    step = k % 5
    name = f"soak-node-{k // 5}"
    if step == 0:
        body = {"name": name, "address": "10.0.0.1", "labels": {"site": f"s{k % 7}"}}
        response = client.post("/api/v1/nodes", json=body)
        _registry.ids[name] = response.json().get("id", "")  # type: ignore[attr-defined]
        return response.status_code
    nid = _registry.ids.get(name, "none")  # type: ignore[attr-defined]
    if step == 1:
        return client.get("/api/v1/nodes", params={"labels": f"site=s{k % 7}"}).status_code
    if step == 2:
        return client.patch(f"/api/v1/nodes/{nid}", json={"address": "10.0.0.2"}).status_code
    if step == 3:
        body = {"heartbeat": True, "resources": {"cpu_usage": "1.5", "memory_usage": "2Gi"}}
        return client.put(f"/api/v1/nodes/{nid}/status", json=body).status_code
    _registry.ids.pop(name, None)  # type: ignore[attr-defined]
    return client.delete(f"/api/v1/nodes/{nid}").status_code


_registry.ids = {}  # type: ignore[attr-defined]


def _health(client: httpx.Client, k: int, at: float) -> int:
    return client.get("/health").status_code


def backfill(
    url: str, headers: dict[str, str], workloads: list[Workload], seconds: float, cycle: float
) -> None:
    """Replay the ingest workloads' last `seconds` before the run, as fast as the server
    takes them: a production server's dashboard window is already full, so the queries
    read as much data at the first minute as at the last and the resident size can
    settle within the warm-up. Without it the window fills during the run and the
    queries' working set grows with it. Sent one flush cycle at a time, each whole one
    followed by a flush, so the head never holds more than it does in the run."""
    history = [w for w in workloads if w.history]
    origin = time.time() - seconds
    failures: list[tuple[str, int]] = []

    def send(part: list[tuple[Workload, int, float]]) -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            for w, k, at in part:
                status = w.call(client, k, at)
                if status >= 300:
                    failures.append((w.name, status))

    started = time.monotonic()
    sent = 0
    lo = origin
    with httpx.Client(base_url=url, headers=headers, timeout=600) as admin:
        # Up to the present, which moves on while the past is sent: no gap before the run.
        while lo < (now := time.time()) - 1:
            hi = min(lo + cycle, now)
            chunk = []
            for w in history:
                while (at := origin + w.first / w.per_second) < hi:
                    chunk.append((w, w.first, at))
                    w.first += 1  # the live run goes on from there (counters keep rising)
            senders = [threading.Thread(target=send, args=(chunk[i::8],)) for i in range(8)]
            for t in senders:
                t.start()
            for t in senders:
                t.join()
            if hi - lo >= cycle:  # a whole cycle: flushed as the server would
                admin.post("/api/v1/admin/flush").raise_for_status()
            sent += len(chunk)
            lo = hi
    print(f"backfill: {sent:,} requests over the {time.time() - origin:.0f} s before the run "
          f"in {time.monotonic() - started:.1f} s, {len(failures)} failed "
          f"{sorted(set(failures))[:5]}", flush=True)  # fmt: skip


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:  # a child that just exited
        pass
    return 0.0


def rss_parts_mb(pid: int) -> dict[str, float]:
    """Anonymous memory (heap, arrays) and mapped files (code, Parquet and catalog pages
    the server maps) of the resident size."""
    parts = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("RssAnon:", "RssFile:")):
                parts[line[3:7].lower()] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return parts


def children_rss_mb(pid: int) -> float:
    """The server's child processes (decode workers, a block writer while one runs)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            total += rss_mb(int(stat.parent.name))
    return total


def rss_trend(samples: list[tuple[float, float]]) -> tuple[float, float]:
    """(MiB per second, fitted change over the span in % of the fitted start): growth
    judged on every sample at once, so neither one low sample nor the head's
    sawtooth at either end decides it."""
    ts, rss = [t for t, _ in samples], [r for _, r in samples]
    mean_t, mean_r = statistics.fmean(ts), statistics.fmean(rss)
    spread = sum((t - mean_t) ** 2 for t in ts)
    slope = sum((t - mean_t) * (r - mean_r) for t, r in samples) / spread if spread else 0.0
    start = mean_r + slope * (ts[0] - mean_t)
    return slope, slope * (ts[-1] - ts[0]) / start * 100 if start else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--sample", type=float, default=15.0, help="RSS sample interval, s")
    parser.add_argument("--warmup", type=float, default=0.3, help="fraction before the baseline")
    parser.add_argument("--server-arg", action="append", default=[],
                        help="extra `hakon serve` argument (repeatable)")  # fmt: skip
    parser.add_argument("--head-max-age", default="2m",
                        help="the server's head flush age: steady state needs flushes")  # fmt: skip
    parser.add_argument("--history", type=float, default=DASHBOARD_RANGE_S,
                        help="seconds of ingest to backfill before the run (default: the "
                             "dashboard's range; 0: start empty)")  # fmt: skip
    parser.add_argument("--only", default="",
                        help="comma-separated workload name prefixes to run (default: all; "
                             "/health always runs)")  # fmt: skip
    args = parser.parse_args()
    workloads = [
        Workload("hakongo pods (500)", 4, _pods, history=True),
        Workload("edge node metrics", 20, _edge, history=True),
        Workload("text import (300)", 4, _text, history=True),
        Workload("influx lines (200)", 4, _influx, history=True),
        Workload("dashboard queries", 4, _dashboard),
        Workload("registry CRUD", 10, _registry),
        Workload("/health", 10, _health),
    ]
    if args.only:
        wanted = tuple(p.strip() for p in args.only.split(","))
        workloads = [w for w in workloads if w.name.startswith(wanted) or w.name == "/health"]
    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "rules.yml"
        rules.write_text(RULES)
        server = HakonProcess(Path(tmp) / "data", "--rules", str(rules), "--rate-limit-rps", "0",
                              "--ingest-rate-limit-rps", "0",
                              "--head-max-age", args.head_max_age,
                              *args.server_arg)  # fmt: skip
        server.start()
        assert server.proc is not None
        pid = server.proc.pid
        headers = {"Authorization": f"Bearer {server.admin_token()}"}
        cycle = parse_duration(args.head_max_age)  # the server's flush cycle
        if args.history:
            backfill(server.url, headers, workloads, args.history, cycle)
        stop = threading.Event()
        threads = [threading.Thread(target=w.run, args=(server.url, headers, stop), daemon=True)
                   for w in workloads]  # fmt: skip
        started = time.monotonic()
        for t in threads:
            t.start()
        samples: list[tuple[float, float]] = []
        duration = args.minutes * 60
        admin = httpx.Client(base_url=server.url, headers=headers, timeout=60)
        try:
            while (elapsed := time.monotonic() - started) < duration:
                samples.append((elapsed, rss_mb(pid)))
                held = admin.get("/api/v1/admin/storage").json()
                parts = rss_parts_mb(pid)
                print(f"t={elapsed:6.0f} s  RSS {samples[-1][1]:7.1f} MiB "
                      f"(anon {parts.get('anon', 0):6.1f}, file {parts.get('file', 0):6.1f})  "
                      f"children {children_rss_mb(pid):7.1f} MiB  "
                      f"(block cache {held['block_cache_bytes'] / 2**20:6.1f} MiB, "
                      f"catalog {held['catalog_memory_bytes'] / 2**20:6.1f} MiB, "
                      f"arrow {held['arrow_memory_bytes'] / 2**20:6.1f} MiB, "
                      f"heap used {held['heap_in_use_bytes'] / 2**20:6.1f} "
                      f"free {held['heap_free_kept_bytes'] / 2**20:6.1f} MiB, "
                      f"head {held['head_samples']:>9,} samples, {held['series']:,} series)",
                      flush=True)  # fmt: skip
                time.sleep(min(args.sample, max(0.1, duration - elapsed)))
            samples.append((time.monotonic() - started, rss_mb(pid)))
        finally:
            stop.set()
            admin.close()
            for t in threads:
                t.join(timeout=60)
            seconds = time.monotonic() - started
            with httpx.Client(base_url=server.url, headers=headers) as api:
                groups = api.get("/prometheus/api/v1/rules").json()["data"]["groups"]
            server.stop()
        print()
        for w in workloads:
            print(w.report(seconds))
        evaluation = groups[0]["evaluationTime"] if groups else float("nan")
        print(f"rule group: {len(groups[0]['rules']) if groups else 0} rules, "
              f"last evaluation {evaluation * 1000:.1f} ms")  # fmt: skip
        after = [(t, rss) for t, rss in samples if t >= duration * args.warmup]
        base, peak, last = after[0][1], max(rss for _, rss in after), after[-1][1]
        growth = (last - base) / base * 100
        # The head fills and empties once per flush age and queries in flight come and
        # go: single samples land anywhere on that sawtooth, so the steady-state figure
        # compares the first and the last flush cycle after the warm-up (peak and median).
        first = [rss for t, rss in after if t < after[0][0] + cycle]
        final = [rss for t, rss in after if t > after[-1][0] - cycle]
        peak_growth = (max(final) - max(first)) / max(first) * 100
        median_growth = (statistics.median(final) / statistics.median(first) - 1) * 100
        five_xx = sum(w.server_errors for w in workloads)
        health = sorted(workloads[-1].latencies)
        health_p99 = health[min(len(health) - 1, int(len(health) * 0.99))] * 1000
        print(f"RSS after warm-up {base:.1f} MiB -> {last:.1f} MiB (peak {peak:.1f}): "
              f"{growth:+.1f} %")  # fmt: skip
        print(f"RSS over the first and the last flush cycle after warm-up: peak "
              f"{max(first):.1f} -> {max(final):.1f} MiB ({peak_growth:+.1f} %), median "
              f"{statistics.median(first):.1f} -> {statistics.median(final):.1f} MiB "
              f"({median_growth:+.1f} %) (target <= +10 %)")  # fmt: skip
        slope, change = rss_trend(after)
        print(f"RSS trend after warm-up (least squares over every sample): {slope * 60:+.1f} "
              f"MiB/min, {change:+.1f} % over the {(after[-1][0] - after[0][0]) / 60:.1f} "
              f"minutes measured")  # fmt: skip
        print(f"5xx: {five_xx} (target 0); /health p99 {health_p99:.1f} ms (target <= 50 ms)")


if __name__ == "__main__":
    main()
