"""Ingest throughput, latency and CPU cost over loopback HTTP, per wire format.

    python benchmarks/ingest.py [--duration 10] [--senders 1,4,16] [--clusters 22]
                                [--pods 500] [--no-vm] [--fresh]

The workload is a fleet of about 100,000 series, sent two ways:
- HakonGo: `--clusters` clusters, each posting pod payloads of `--pods` resources
  (5 pod figures plus 1-3 containers with 2 each: about 9 samples per pod,
  4.5 k samples and 200 KB per request);
- remote_write: the same number of series as Prometheus sends them (one sample
  per TimeSeries, 2,000 per request, snappy-compressed protobuf).
The payloads of `--rounds` scrapes are prepared up front and cycled, so after
the first cycle a request rewrites samples already stored (last write wins):
this measures the ingest path, while the store flushes heads that deduplicate
to a few scrapes. With `--fresh`, each HakonGo cycle is `--rounds` x 15 s later
than the one before (the load generator rewrites `collected_at`, starting 12
hours back), so every sample is a new one and the store's flushes and
compactions carry the whole rate: the sustained end-to-end figure. Either
way the rate compresses time: 100,000 series at 1.5 M samples/s is one scrape
every 67 ms per series.

A load generator of its own runs in a separate process (raw keep-alive HTTP/1.1
on asyncio sockets, so the client costs little CPU) and posts with 1, 4 and 16
concurrent senders for `--duration` seconds each. First each format is
decoded alone in this process (the decoder's ceiling on one core). Printed per
format and concurrency: accepted samples/s (durable: every 2xx is fsynced), p50/p99 request
latency and the server's CPU seconds per million samples. Then: the first
payloads of fresh clusters (every series new: new series/s), p99 at 80 % of the
best HakonGo rate (paced sending), and an overload run with many more senders
than the server admits (statuses, latency of refusals, server RSS).

remote_write is measured last, on a fresh Hakon (the one above holds the HakonGo
data and may be flushing it). When Debian's `victoria-metrics` is installed, a
fresh VictoriaMetrics runs beside it: each gets the same first pass that
registers the series, then both settle for 3 s, then at each concurrency they
are measured alternately, Hakon, VictoriaMetrics, VictoriaMetrics, Hakon, so a
slow or fast phase of this shared machine falls on both alike; each server's
two runs are pooled and the ratio Hakon/VictoriaMetrics is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pickle
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cramjam

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from serverproc import HakonProcess

sys.path.insert(0, str(Path(__file__).parent))
from peers import start_victoria

from hakon.auth.secret import read_secret
from hakon.auth.tokens import TokenAuthority
from hakon.ingest.remote_write import encode_write_request

TICKS = os.sysconf("SC_CLK_TCK")


# -- workloads ---------------------------------------------------------------------


def hakongo_bodies(clusters: int, pods: int, rounds: int, base_ms: int) -> list[list[bytes]]:
    """bodies[cluster][round]; values vary a little per round, identities stay."""
    rnd = random.Random(1)
    out = []
    for c in range(clusters):
        resources = []
        for i in range(pods):
            resources.append(
                {
                    "namespace": f"ns-{i % 20}",
                    "name": f"app-{i}-{rnd.randrange(1 << 30):08x}",
                    "node": f"node-{i % 40}",
                    "cpu_usage_cores": round(rnd.random() * 2, 3),
                    "memory_working_set_bytes": rnd.randrange(1 << 20, 1 << 32),
                    "network_rx_bytes_total": rnd.randrange(1 << 40),
                    "network_tx_bytes_total": rnd.randrange(1 << 40),
                    "restarts_total": rnd.randrange(5),
                    "containers": [
                        {
                            "name": f"c{k}",
                            "cpu_usage_cores": round(rnd.random(), 3),
                            "memory_working_set_bytes": rnd.randrange(1 << 20, 1 << 31),
                        }
                        for k in range(1 + i % 3)
                    ],
                }
            )
        per_round = []
        for r in range(rounds):
            ts = datetime.fromtimestamp((base_ms + r * 15_000) / 1000, UTC)
            for res in resources:
                res["cpu_usage_cores"] = round(rnd.random() * 2, 3)
                res["network_rx_bytes_total"] += rnd.randrange(1 << 20)
            payload = {
                "cluster_id": f"cluster-{c:03d}",
                "context": {
                    "name": f"cluster-{c:03d}",
                    "kubernetes_version": "1.30.2",
                    "provider": {"name": "aws", "region": "eu-west-1", "zone": "eu-west-1a"},
                },
                "collected_at": ts.isoformat().replace("+00:00", "Z"),
                "resources": resources,
            }
            per_round.append(json.dumps(payload, separators=(",", ":")).encode())
        out.append(per_round)
    return out


def remote_write_bodies(series: int, batch: int, rounds: int, base_ms: int) -> list[list[bytes]]:
    """bodies[batch][round] of `batch` one-sample series each, snappy-compressed."""
    rnd = random.Random(2)
    names = [
        "container_cpu_usage_seconds_total",
        "container_memory_working_set_bytes",
        "container_network_receive_bytes_total",
        "container_network_transmit_bytes_total",
        "kube_pod_container_status_restarts_total",
        "node_cpu_seconds_total",
        "http_requests_total",
        "http_request_duration_seconds_sum",
        "process_resident_memory_bytes",
        "up",
    ]
    label_sets = []
    for i in range(series):
        label_sets.append(
            {
                "__name__": names[i % len(names)],
                "cluster": f"cluster-{i % 22:03d}",
                "namespace": f"ns-{i % 20}",
                "pod": f"app-{i // 10}",
                "container": f"c{i % 3}",
                "instance": f"10.0.{(i // 250) % 256}.{i % 250}:9100",
                "job": "kubernetes-pods",
            }
        )
    values = [rnd.random() * 1000 for _ in range(series)]
    out = []
    for start in range(0, series, batch):
        chunk = label_sets[start : start + batch]
        per_round = []
        for r in range(rounds):
            ts = base_ms + r * 15_000 + rnd.randrange(1000)
            payload = [(labels, [(ts, values[start + j] + r)]) for j, labels in enumerate(chunk)]
            per_round.append(bytes(cramjam.snappy.compress_raw(encode_write_request(payload))))
        out.append(per_round)
    return out


# -- the load generator (separate process) ----------------------------------------------


async def _send_all(spec: dict[str, Any]) -> dict[str, Any]:
    with open(spec["bodies"], "rb") as f:
        bodies: list[list[bytes]] = pickle.load(f)
    order = [(i, r) for r in range(len(bodies[0])) for i in range(len(bodies))]
    start_index = spec.get("start", 0)
    limit = spec.get("limit")  # send at most this many requests (cold phase)
    headers = "".join(f"{k}: {v}\r\n" for k, v in spec["headers"].items())
    path, host, port = spec["path"], spec["host"], spec["port"]
    heads = {}
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    refused: list[float] = []
    sent_samples = 0
    counter = start_index
    rate = spec.get("rate")
    duration = spec["duration"]
    t0 = time.perf_counter()
    stop_at = t0 + duration

    advance_ms = spec.get("advance_ms", 0)

    def request_for(k: int) -> tuple[bytes, bytes, int]:
        i, r = order[k % len(order)]
        body = bodies[i][r]
        if advance_ms and k >= len(order):
            body = _shift_collected_at(body, advance_ms * (k // len(order)))
        if len(body) not in heads:
            heads[len(body)] = (
                f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{headers}"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
        return heads[len(body)], body, spec["samples"][i]

    async def sender() -> None:
        nonlocal counter, sent_samples
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while True:
                k = counter
                counter += 1
                if limit is not None and k - start_index >= limit:
                    return
                scheduled = time.perf_counter()
                if rate:
                    scheduled = t0 + (k - start_index) / rate
                    delay = scheduled - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                if limit is None and time.perf_counter() >= stop_at:
                    return
                head, body, samples = request_for(k)
                writer.write(head)
                writer.write(body)
                await writer.drain()
                raw = await reader.readuntil(b"\r\n\r\n")
                status = int(raw[9:12])
                length = 0
                for line in raw.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
                elapsed = time.perf_counter() - scheduled
                statuses[status] = statuses.get(status, 0) + 1
                if 200 <= status < 300:
                    latencies.append(elapsed)
                    sent_samples += samples
                else:
                    refused.append(elapsed)
        finally:
            writer.close()

    await asyncio.gather(*(sender() for _ in range(spec["senders"])))
    return {
        "elapsed": time.perf_counter() - t0,
        "statuses": statuses,
        "latencies": latencies,
        "refused_latencies": refused,
        "samples": sent_samples,
        "next": counter,  # where the next run continues (later timestamps)
    }


_COLLECTED_AT = b'"collected_at":"'


def _shift_collected_at(body: bytes, ms: int) -> bytes:
    """The same HakonGo payload, collected `ms` later."""
    start = body.index(_COLLECTED_AT) + len(_COLLECTED_AT)
    end = body.index(b'"', start)
    at = datetime.fromisoformat(body[start:end].decode().replace("Z", "+00:00"))
    shifted = (at + timedelta(milliseconds=ms)).isoformat().replace("+00:00", "Z")
    return body[:start] + shifted.encode() + body[end:]


def loadgen_main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    print(json.dumps(asyncio.run(_send_all(spec))))


def run_load(spec: dict[str, Any], workdir: Path) -> dict[str, Any]:
    path = workdir / "spec.json"
    path.write_text(json.dumps(spec))
    done = subprocess.run(
        [sys.executable, __file__, "loadgen", str(path)], capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(done.stderr)
    return json.loads(done.stdout)


# -- measuring the server -----------------------------------------------------------------


def _tree(pid: int) -> list[int]:
    """The process and its descendants (Hakon's decode workers are children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            children = (task / "children").read_text().split()
            todo.extend(int(c) for c in children)
    return out


def cpu_seconds(pid: int) -> float:
    """CPU time of the process tree (live children; decode workers live as long as it)."""
    total = 0.0
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def rss_mb(pid: int, tree: bool = True) -> float:
    """Resident size of the process (and, with `tree`, its children: decode workers and
    a block writer while one runs)."""
    total = 0.0
    for p in _tree(pid) if tree else [pid]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except FileNotFoundError:  # a child that just exited
            continue
    return total


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measured(pid: int, spec: dict[str, Any], workdir: Path) -> dict[str, Any]:
    cpu0 = cpu_seconds(pid)
    result = run_load(spec, workdir)
    result["server_cpu"] = cpu_seconds(pid) - cpu0
    result["rate"] = result["samples"] / result["elapsed"]
    return result


def line(label: str, r: dict[str, Any]) -> str:
    cpu_per_m = r["server_cpu"] / (r["samples"] / 1e6) if r["samples"] else float("nan")
    others = {k: v for k, v in r["statuses"].items() if not k.startswith("2")}
    p50, p99 = pct(r["latencies"], 0.5) * 1e3, pct(r["latencies"], 0.99) * 1e3
    return (
        f"{label:<40} {r['rate'] / 1e6:6.2f} M samples/s  p50 {p50:7.1f} ms"
        f"  p99 {p99:7.1f} ms  server CPU {cpu_per_m:5.2f} s/M samples"
        + (f"  non-2xx {others}" if others else "")
    )


# -- the run --------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--senders", default="1,4,16")
    ap.add_argument("--clusters", type=int, default=22)
    ap.add_argument("--pods", type=int, default=500)
    ap.add_argument("--rw-batch", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--overload-senders", type=int, default=256)
    ap.add_argument("--no-vm", action="store_true")
    ap.add_argument("--fresh", action="store_true", help="HakonGo timestamps advance each cycle")
    ap.add_argument("--hakon-args", default="", help="extra `hakon serve` flags, space-separated")
    args = ap.parse_args()
    senders = [int(s) for s in args.senders.split(",")]

    with tempfile.TemporaryDirectory(prefix="hakon-bench-ingest-") as tmp:
        work = Path(tmp)
        base_ms = int(time.time() * 1000) - 3_600_000
        t = time.perf_counter()
        hg_base = base_ms - (11 * 3_600_000 if args.fresh else 0)  # room to advance
        hg = hakongo_bodies(args.clusters, args.pods, args.rounds, hg_base)
        hg_samples = [_count_hakongo(b[0]) for b in hg]
        n_series = sum(hg_samples)
        rw = remote_write_bodies(n_series, args.rw_batch, args.rounds, base_ms)
        rw_samples = [min(args.rw_batch, n_series - i * args.rw_batch) for i in range(len(rw))]
        with open(work / "hakongo.pkl", "wb") as f:
            pickle.dump(hg, f)
        with open(work / "rw.pkl", "wb") as f:
            pickle.dump(rw, f)
        print(
            f"workload: {n_series} series; HakonGo {len(hg)} clusters x {args.pods} pods "
            f"({statistics.mean(len(b[0]) for b in hg) / 1024:.0f} KB, "
            f"{statistics.mean(hg_samples):.0f} samples per request); remote_write "
            f"{len(rw)} requests of {args.rw_batch} series "
            f"({statistics.mean(len(b[0]) for b in rw) / 1024:.0f} KB snappy); "
            f"prepared in {time.perf_counter() - t:.1f} s"
        )
        print(
            f"machine: {os.cpu_count()} cores; load generator: 1 process, asyncio sockets; "
            "server CPU includes its decode workers"
        )

        decode_only(hg, rw)
        data = work / "hakon"
        flags = ["--ingest-rate-limit-rps", "0", "--rate-limit-rps", "0", *args.hakon_args.split()]
        hakon = HakonProcess(data, *flags).start()
        pid = hakon.proc.pid  # type: ignore[union-attr]
        token, _ = TokenAuthority(read_secret(data)).mint(
            subject="bench", scopes=["metrics:write"], ttl_seconds=86_400
        )
        auth = {"Authorization": f"Bearer {token}"}
        hg_spec = {
            "bodies": str(work / "hakongo.pkl"),
            "samples": hg_samples,
            "host": "127.0.0.1",
            "port": hakon.port,
            "path": "/api/v1/hakongo/pods",
            "headers": {**auth, "Content-Type": "application/json"},
            "advance_ms": args.rounds * 15_000 if args.fresh else 0,
        }
        hg_next = 0

        def hakongo_run(**run: Any) -> dict[str, Any]:
            """A HakonGo run continuing where the last one stopped (new timestamps)."""
            nonlocal hg_next
            r = measured(pid, {**hg_spec, "start": hg_next, **run}, work)
            hg_next = r["next"]
            return r

        try:
            # Cold: every cluster's first payload, every series new.
            cold = hakongo_run(senders=4, duration=600, limit=len(hg))
            print(
                f"first payloads (all series new, 4 senders): {cold['samples']} series in "
                f"{cold['elapsed']:.2f} s = {cold['samples'] / cold['elapsed'] / 1e3:.0f} k new "
                f"series/s; p50 {pct(cold['latencies'], 0.5) * 1e3:.0f} ms, "
                f"statuses {cold['statuses']}"
            )
            best_hg = None
            for n in senders:
                r = hakongo_run(senders=n, duration=args.duration)
                print(line(f"HakonGo pods, {n} senders", r))
                if best_hg is None or r["rate"] > best_hg["rate"]:
                    best_hg = r
            assert best_hg is not None
            req_rate = 0.8 * (sum(best_hg["statuses"].values()) / best_hg["elapsed"])
            paced = hakongo_run(senders=16, duration=args.duration, rate=req_rate)
            print(line(f"HakonGo at 80% ({req_rate:.0f} req/s)", paced))
            rss_before, own_before = rss_mb(pid), rss_mb(pid, tree=False)
            over = hakongo_run(senders=args.overload_senders, duration=args.duration)
            print(
                line(f"overload, {args.overload_senders} senders", over)
                + f"\n{'':<40} refusals p50 {pct(over['refused_latencies'], 0.5) * 1e3:.1f} ms"
                f" p99 {pct(over['refused_latencies'], 0.99) * 1e3:.1f} ms; RSS "
                f"{rss_before:.0f} -> {rss_mb(pid):.0f} MB with children, server process "
                f"{own_before:.0f} -> {rss_mb(pid, tree=False):.0f} MB"
            )
        finally:
            hakon.stop()
        compare_remote_write(work, rw, rw_samples, senders, args)


def compare_remote_write(
    work: Path, rw: list[list[bytes]], rw_samples: list[int], senders: list[int], args: Any
) -> None:
    """remote_write on a fresh Hakon and, when installed, a fresh VictoriaMetrics beside
    it, measured alternately (Hakon, VictoriaMetrics, VictoriaMetrics, Hakon at each
    concurrency): both start empty and see the same phases of this shared machine."""
    data = work / "hakon-rw"
    flags = ["--ingest-rate-limit-rps", "0", "--rate-limit-rps", "0", *args.hakon_args.split()]
    hakon = HakonProcess(data, *flags).start()
    vm = None if args.no_vm else start_victoria(work)
    try:
        token, _ = TokenAuthority(read_secret(data)).mint(
            subject="bench", scopes=["metrics:write"], ttl_seconds=86_400
        )
        headers = {
            "Content-Type": "application/x-protobuf",
            "Content-Encoding": "snappy",
            "X-Prometheus-Remote-Write-Version": "0.1.0",
        }
        base = {"bodies": str(work / "rw.pkl"), "samples": rw_samples, "host": "127.0.0.1"}
        servers = {
            "Hakon": (
                hakon.proc.pid,  # type: ignore[union-attr]
                {
                    **base,
                    "port": hakon.port,
                    "path": "/api/v1/write",
                    "headers": {**headers, "Authorization": f"Bearer {token}"},
                },
            )
        }
        if vm is not None:
            servers["VictoriaMetrics"] = (
                vm[0].pid,
                {**base, "port": vm[1], "path": "/api/v1/write", "headers": headers},
            )
        else:
            print("victoria-metrics not installed (or --no-vm): no comparison")
        # A first pass registers the series on each server; then both settle (indexing).
        for _, spec in servers.values():
            run_load({**spec, "senders": 4, "duration": 600, "limit": len(rw)}, work)
        time.sleep(3)
        alternating = ("Hakon", "VictoriaMetrics", "VictoriaMetrics", "Hakon")
        order = [name for name in alternating if name in servers]
        for n in senders:
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
            for name in order:
                pid, spec = servers[name]
                runs[name].append(
                    measured(pid, {**spec, "senders": n, "duration": args.duration}, work)
                )
            merged = {name: combined(rs) for name, rs in runs.items()}
            for name, r in merged.items():
                print(line(f"remote_write {name}, {n}", r))
            if len(merged) == 2:
                ratio = merged["Hakon"]["rate"] / merged["VictoriaMetrics"]["rate"]
                print(f"{'':<40} Hakon/VictoriaMetrics samples/s = {ratio:.2f}")
    finally:
        hakon.stop()
        if vm is not None:
            vm[0].terminate()
            vm[0].wait(timeout=30)


def combined(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Runs of one server as one: rate over their total time, latencies pooled."""
    statuses: dict[str, int] = {}
    for r in runs:
        for k, v in r["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
    samples, elapsed = sum(r["samples"] for r in runs), sum(r["elapsed"] for r in runs)
    return {
        "samples": samples,
        "elapsed": elapsed,
        "rate": samples / elapsed,
        "server_cpu": sum(r["server_cpu"] for r in runs),
        "statuses": statuses,
        "latencies": [x for r in runs for x in r["latencies"]],
    }


def decode_only(hg: list[list[bytes]], rw: list[list[bytes]], seconds: float = 3.0) -> None:
    """Decoding alone, in this process on one core, warm caches: the ceiling of the format."""
    from hakon.ingest.decoding import Decoders
    from hakon.ingest.limits import IngestLimits

    decoders = Decoders(IngestLimits())
    for fmt, bodies, encoding in (("hakongo/pods", hg, ""), ("remote_write", rw, "snappy")):
        flat = [b for per_round in bodies for b in per_round[:2]]
        for body in flat:  # first sight: every series registered
            decoders.decode(fmt, _undo(body, encoding), ())
        samples, started, i = 0, time.perf_counter(), 0
        while time.perf_counter() - started < seconds:
            _, batch = decoders.decode(fmt, _undo(flat[i % len(flat)], encoding), ())
            samples += len(batch)
            i += 1
        rate = samples / (time.perf_counter() - started)
        print(f"decode only, {fmt:<30} {rate / 1e6:6.2f} M samples/s (one core, in process)")


def _undo(body: bytes, encoding: str) -> bytes:
    return bytes(cramjam.snappy.decompress_raw(body)) if encoding else body


def _count_hakongo(body: bytes) -> int:
    payload = json.loads(body)
    return sum(5 + 2 * len(r["containers"]) for r in payload["resources"])


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "loadgen":
        loadgen_main(sys.argv[2])
    else:
        main()
