"""Start-up time of `hakon serve` and `/health` latency under a short local load.

    python benchmarks/serve.py [--requests 5000] [--concurrency 16] [--runs 3]

Start-up: from spawning the process to the first 200 from `/ready` (a fresh
data dir each run, so first-start work is included). Load: `--concurrency`
keep-alive connections on asyncio issue `--requests` GETs in total; the
figures are the median over runs of each run's p50/p99 and throughput. The
Python client costs more CPU than the server, so when `wrk` is installed
(Debian package `wrk`) a 5 s wrk run per server is reported as well.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from serverproc import HakonProcess


async def load(url: str, requests: int, concurrency: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    per_worker = requests // concurrency

    async def worker(client: httpx.AsyncClient) -> None:
        for _ in range(per_worker):
            t0 = time.perf_counter()
            resp = await client.get(url)
            latencies.append(time.perf_counter() - t0)
            resp.raise_for_status()

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return latencies, len(latencies) / elapsed


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    startups, p50s, p99s, rates = [], [], [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            proc = HakonProcess(Path(tmp) / "data")
            t0 = time.perf_counter()
            proc.start()
            startups.append(time.perf_counter() - t0)
            try:
                if shutil.which("wrk"):
                    wrk = subprocess.run(
                        ["wrk", "-t1", f"-c{args.concurrency}", "-d5s", "--latency",
                         proc.url + "/health"],
                        capture_output=True, text=True, check=True,
                    )  # fmt: skip
                    wanted = ("50%", "99%", "Requests/sec")
                    lines = [
                        ln.strip()
                        for ln in wrk.stdout.splitlines()
                        if ln.strip().startswith(wanted)
                    ]
                    print("wrk:", " | ".join(lines))
                lat, rate = asyncio.run(load(proc.url + "/health", args.requests, args.concurrency))
            finally:
                proc.stop()
            p50s.append(pct(lat, 0.5))
            p99s.append(pct(lat, 0.99))
            rates.append(rate)
    med = statistics.median
    print(f"runs={args.runs} requests={args.requests} concurrency={args.concurrency}")
    all_ms = [round(s * 1000) for s in startups]
    print(f"startup_to_ready_ms median={med(startups) * 1000:.0f} all={all_ms}")
    print(f"health_p50_ms median={med(p50s) * 1000:.2f}")
    print(f"health_p99_ms median={med(p99s) * 1000:.2f}")
    print(f"health_req_per_s median={med(rates):.0f} (client and server share the 2 cores)")


if __name__ == "__main__":
    main()
