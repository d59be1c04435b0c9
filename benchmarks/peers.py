"""Peers the benchmarks compare with: Debian's VictoriaMetrics and Prometheus, on loopback.

Each starts on a free port with a data dir under the benchmark's workdir and
returns `(process, port)`, or None when the package is not installed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

_TESTS = str(Path(__file__).resolve().parent.parent / "tests")
if _TESTS not in sys.path:
    sys.path.append(_TESTS)  # appended: benchmarks/store.py must win over tests/store
from serverproc import free_port  # noqa: E402


def _wait(proc: subprocess.Popen[bytes], url: str, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    return False


def start_victoria(workdir: Path, *extra: str) -> tuple[subprocess.Popen[bytes], int] | None:
    binary = shutil.which("victoria-metrics")
    if binary is None:
        return None
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"-storageDataPath={workdir / 'vm'}",
            f"-httpListenAddr=127.0.0.1:{port}",
            "-retentionPeriod=10y",
            "-loggerLevel=ERROR",
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return (proc, port) if _wait(proc, f"http://127.0.0.1:{port}/health") else None


def start_prometheus(workdir: Path, *extra: str) -> tuple[subprocess.Popen[bytes], int] | None:
    binary = shutil.which("prometheus")
    if binary is None:
        return None
    port = free_port()
    (workdir / "prometheus.yml").write_text("global: {}\n")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'prometheus'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=30d",
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return (proc, port) if _wait(proc, f"http://127.0.0.1:{port}/-/ready") else None
