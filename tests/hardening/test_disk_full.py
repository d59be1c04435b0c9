"""A full disk during ingest: requests fail with 507, nothing acknowledged is lost
(not even to kill -9 afterwards), and ingest works again once space returns.

The data dir lives on its own small tmpfs (mounting needs root, as CI has)."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from serverproc import HakonProcess

SERIES_PER_BATCH = 2000


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(disk)],
                             capture_output=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _batch(k: int, ts_ms: int) -> str:
    return "".join(
        f'disk_fill{{batch="{k}",i="{i}",pad="{"x" * 40}"}} {i} {ts_ms}\n'
        for i in range(SERIES_PER_BATCH)
    )


def _counts(api: httpx.Client, at_s: float) -> dict[str, int]:
    query = {"query": "count by (batch) (disk_fill)", "time": at_s}
    body = api.get("/prometheus/api/v1/query", params=query).json()
    return {r["metric"]["batch"]: int(float(r["value"][1])) for r in body["data"]["result"]}


def test_a_full_disk_refuses_writes_loses_nothing_and_recovers(small_disk: Path) -> None:
    data = small_disk / "data"
    args = ("--wal-segment-bytes", "1048576", "--rate-limit-rps", "0",
            "--ingest-rate-limit-rps", "0")  # fmt: skip
    server = HakonProcess(data, *args).start()
    headers = {"Authorization": f"Bearer {server.admin_token()}"}
    ts_ms = int(time.time() * 1000) - 60_000
    acked: list[int] = []
    statuses: list[int] = []
    try:
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as api:
            for k in range(400):
                response = api.post("/api/v1/import/prometheus", content=_batch(k, ts_ms))
                statuses.append(response.status_code)
                if response.status_code == 204:
                    acked.append(k)
                    continue
                assert response.status_code == 507, response.text + server.output[-3000:]
                assert response.json()["error"]["code"] == "INSUFFICIENT_STORAGE"
                if statuses.count(507) >= 3:
                    break
            assert 507 in statuses, "the disk never filled"
            assert acked, "nothing was written before the disk filled"
            assert api.get("/health").status_code == 200  # still serving
            counts = _counts(api, ts_ms / 1000)
            assert all(counts.get(str(k)) == SERIES_PER_BATCH for k in acked)
            # Space returns: the same server takes writes again.
            subprocess.run(["mount", "-o", "remount,size=256m", str(small_disk)], check=True)
            deadline = time.monotonic() + 30
            while True:
                response = api.post("/api/v1/import/prometheus", content=_batch(999, ts_ms))
                if response.status_code == 204 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert response.status_code == 204, response.text
            acked.append(999)
        server.stop(signal.SIGKILL)
        server = HakonProcess(data, *args).start()
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as api:
            counts = _counts(api, ts_ms / 1000)
            missing = [k for k in acked if counts.get(str(k)) != SERIES_PER_BATCH]
            assert not missing, f"acknowledged batches lost: {missing[:10]}"
    finally:
        server.stop()
