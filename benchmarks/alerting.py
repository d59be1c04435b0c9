"""Alerting benchmark: rule-group evaluation time and firing-to-delivered latency.

    python benchmarks/alerting.py                   # 100,000 series, 1,000 rules, 100 webhooks
    python benchmarks/alerting.py --series 20000 --rules 200

Evaluation: the storage benchmark's data set (benchmarks/store.py: 15 s
scrapes over `--hours`, flushed to blocks) and one group of `--rules`
alerting rules, each a per-namespace CPU-rate threshold (`avg by (pod)
(rate(container_cpu_usage_seconds_total{namespace="ns-K"}[5m])) > T`),
evaluated by the same code the scheduler runs; the figure is the median over
`--repeat` evaluations (target: 1,000 rules within a 15 s interval).

Notification latency: `--webhooks` receivers on loopback, each registered for
alert.firing; `--events` firing notifications published one after another as
an evaluation publishes them; latency is from publish to the receiver having
the body (p50/p99; target p99 < 1 s with healthy receivers).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from store import STEP_MS, DataSet, batches_for, open_store

from hakon.alerting.evaluator import GroupState
from hakon.alerting.notifier import Notifier, alert_payload, am_alert
from hakon.alerting.rules import parse_rules
from hakon.query.engine import Engine
from hakon.store.catalog import Catalog


def rule_file(n: int) -> str:
    lines = ["groups:", "  - name: bench", "    interval: 15s", "    rules:"]
    for k in range(n):
        ns = k % 40
        threshold = 0.01 * (k % 50)
        lines += [
            f"      - alert: CpuHigh{k}",
            "        expr: avg by (pod) (rate(container_cpu_usage_seconds_total"
            f'{{namespace="ns-{ns}"}}[5m])) > {threshold}',
            "        for: 1m",
            "        labels: {severity: warning}",
            '        annotations: {summary: "{{ $labels.pod }} at {{ $value | humanize }}"}',
        ]
    return "\n".join(lines) + "\n"


def bench_evaluation(args: argparse.Namespace, work: Path) -> None:
    catalog, store = open_store(work / "data")
    steps = int(args.hours * 3600_000 / STEP_MS)
    end = (int(time.time() * 1000) // 15_000) * 15_000 - 60_000
    base = end - steps * STEP_MS
    ds = DataSet(args.series)
    started = time.perf_counter()
    for k in range(steps):
        for batch in batches_for(ds, k, base, 50_000):
            store.append(batch)
    store.flush()
    print(f"data: {args.series} series x {steps} scrapes, written in "
          f"{time.perf_counter() - started:.1f} s")  # fmt: skip
    (group,) = parse_rules(rule_file(args.rules), "bench.yml")
    state = GroupState(group)
    engine = Engine(store)
    times, alerts = [], 0
    try:
        for i in range(args.repeat):
            t = end - (args.repeat - 1 - i) * 15_000
            began = time.perf_counter()
            outcome = state.evaluate(engine, t, store.append)
            batch = outcome.batch()
            if batch is not None:
                store.append(batch)
            times.append(time.perf_counter() - began)
            alerts = sum(len(rs.active) for rs in state.rules)
        errors = [rs.last_error for rs in state.rules if rs.health == "err"]
        assert not errors, errors[:3]
        print(f"evaluate {args.rules} rules (one group)           median "
              f"{statistics.median(times):7.2f} s  (max {max(times):.2f} s; {alerts} active alerts;"
              f" target < 15 s)")  # fmt: skip
    finally:
        store.close()
        catalog.close()


class _Receivers:
    def __init__(self, n: int) -> None:
        self.arrived: dict[str, float] = {}
        receivers = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                receivers.arrived[self.headers["X-Hakon-Delivery"]] = time.perf_counter()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a: Any) -> None:
                pass

        self.servers = [ThreadingHTTPServer(("127.0.0.1", 0), Handler) for _ in range(n)]
        for s in self.servers:
            threading.Thread(target=s.serve_forever, daemon=True).start()
        self.urls = [f"http://127.0.0.1:{s.server_address[1]}/" for s in self.servers]


def bench_notifications(args: argparse.Namespace, work: Path) -> None:
    catalog = Catalog.open_in(work / "notify")
    notifier = Notifier(catalog).start()
    receivers = _Receivers(args.webhooks)
    try:
        for url in receivers.urls:
            notifier.create(url, ["alert.firing"], "secret", True, "hakon")
        published: list[tuple[float, set[str]]] = []
        for i in range(args.events):
            before = set(r[0] for r in catalog.fetchall("SELECT id FROM webhook_deliveries"))
            one = am_alert({"alertname": f"A{i}"}, {}, "firing", 0, None, f"{i:016x}")
            payload = alert_payload({"alertname": f"A{i}"}, [one], "firing")
            t = time.perf_counter()
            notifier.publish("alert.firing", payload)
            ids = {r[0] for r in catalog.fetchall("SELECT id FROM webhook_deliveries")} - before
            published.append((t, ids))
            time.sleep(args.gap)
        deadline = time.monotonic() + 60
        total = args.events * args.webhooks
        while len(receivers.arrived) < total and time.monotonic() < deadline:
            time.sleep(0.05)
        latencies = sorted(
            receivers.arrived[d] - t for t, ids in published for d in ids if d in receivers.arrived
        )
        p50 = latencies[len(latencies) // 2] * 1000
        p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
        print(f"firing-to-delivered, {args.webhooks} webhooks x {args.events} events   "
              f"p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  ({len(latencies)}/{total} delivered;"
              f" target p99 < 1000 ms)")  # fmt: skip
    finally:
        notifier.stop()
        catalog.close()
        for s in receivers.servers:
            s.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--series", type=int, default=100_000)
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--rules", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--webhooks", type=int, default=100)
    ap.add_argument("--events", type=int, default=20)
    ap.add_argument("--gap", type=float, default=0.25, help="seconds between published events")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hakon-alerting-bench-") as tmp:
        work = Path(tmp)
        print(f"machine: python {sys.version.split()[0]}")
        bench_evaluation(args, work)
        bench_notifications(args, work)


if __name__ == "__main__":
    main()
