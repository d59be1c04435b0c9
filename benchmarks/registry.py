"""Registry benchmark: CRUD latency and throughput over HTTP on a real server.

    python benchmarks/registry.py                    # 5,000 nodes, 8 clients
    python benchmarks/registry.py --nodes 20000 --clients 16

Registers `--nodes` nodes with `--clients` concurrent HTTP clients, then times
gets, label-filtered list pages (limit 100) over all of them, merge updates
with If-Match, status reports with heartbeats, and deletes. Prints requests/s
and p50/p99 latency per operation.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from serverproc import HakonProcess


def timed(
    name: str, calls: list[Callable[[httpx.Client], httpx.Response]], clients: list[httpx.Client]
) -> list[httpx.Response]:
    latencies: list[float] = []

    def run(i: int) -> httpx.Response:
        started = time.perf_counter()
        response = calls[i](clients[i % len(clients)])
        latencies.append(time.perf_counter() - started)
        if response.status_code >= 300:
            raise SystemExit(f"{name}: {response.status_code} {response.text[:200]}")
        return response

    started = time.perf_counter()
    with ThreadPoolExecutor(len(clients)) as pool:
        results = list(pool.map(run, range(len(calls))))
    elapsed = time.perf_counter() - started
    ms = sorted(x * 1000 for x in latencies)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(f"{name:<28} {len(calls):>7} req  {len(calls) / elapsed:>8.0f} req/s  "
          f"p50 {statistics.median(ms):6.2f} ms  p99 {p99:6.2f} ms")  # fmt: skip
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = HakonProcess(Path(tmp) / "data", "--rate-limit-rps", "0").start()
        headers = {"Authorization": f"Bearer {server.admin_token()}"}
        clients = [httpx.Client(base_url=server.url, headers=headers, timeout=30)
                   for _ in range(args.clients)]  # fmt: skip
        try:
            n = args.nodes
            created = timed("register node", [
                lambda c, i=i: c.post("/api/v1/nodes", json={
                    "name": f"edge-{i}", "address": f"10.0.{i // 250}.{i % 250}",
                    "resources": {"cpu": "4", "memory": "8Gi"},
                    "labels": {"site": f"site-{i % 50}", "tier": "edge"}})
                for i in range(n)
            ], clients)  # fmt: skip
            ids = [r.json()["id"] for r in created]
            timed("get node", [lambda c, i=i: c.get(f"/api/v1/nodes/{ids[i % n]}")
                               for i in range(n)], clients)  # fmt: skip
            pages = max(1, n // 100)
            timed("list 100, labels=site", [
                lambda c, i=i: c.get("/api/v1/nodes", params={
                    "labels": f"site=site-{i % 50}", "limit": 100})
                for i in range(pages * 4)
            ], clients)  # fmt: skip
            timed("list 100 of all, sorted", [
                lambda c, i=i: c.get("/api/v1/nodes", params={
                    "sort": "-name", "limit": 100, "page": i % pages + 1})
                for i in range(pages * 4)
            ], clients)  # fmt: skip
            timed("patch node (If-Match)", [
                lambda c, i=i: c.patch(f"/api/v1/nodes/{ids[i]}", json={"address": "10.9.9.9"},
                                       headers={"If-Match": '"1"'})
                for i in range(n)
            ], clients)  # fmt: skip
            timed("status + heartbeat", [
                lambda c, i=i: c.put(f"/api/v1/nodes/{ids[i]}/status", json={
                    "heartbeat": True, "resources": {"cpu_usage": "1.5", "memory_usage": "2Gi"}})
                for i in range(n)
            ], clients)  # fmt: skip
            timed("delete node", [lambda c, i=i: c.delete(f"/api/v1/nodes/{ids[i]}")
                                  for i in range(n)], clients)  # fmt: skip
        finally:
            for c in clients:
                c.close()
            server.stop()


if __name__ == "__main__":
    main()
