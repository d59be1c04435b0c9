"""Real peers for compatibility tests: Debian's Prometheus, started on a free loopback port.

Tests that need one skip when it is not installed, unless HAKON_REQUIRE_PEERS=1
(as `.ci/run` sets), which makes its absence a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
from serverproc import free_port

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
REQUIRED = os.environ.get("HAKON_REQUIRE_PEERS") == "1"
if REQUIRED and (PROMETHEUS is None or PROMTOOL is None):
    raise RuntimeError("prometheus and promtool are required (apt-get install prometheus)")


class PeerProcess:
    """A peer binary on a free loopback port with its own workdir; ready when `ready_path`
    answers 200. Subclasses give the command line."""

    name = "peer"
    ready_path = "/-/ready"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.log = workdir / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 60.0) -> PeerProcess:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n" + self.log.read_text())
            try:
                if httpx.get(self.url + self.ready_path, timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not become ready:\n" + self.log.read_text())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> PeerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class PrometheusProcess(PeerProcess):
    """`prometheus` with a data dir of its own; `config` is the YAML text of its config."""

    name = "prometheus"

    def __init__(self, workdir: Path, config: str = "global: {}\n", *extra: str) -> None:
        assert PROMETHEUS is not None
        super().__init__(workdir)
        self.data = workdir / "tsdb"
        self.config = workdir / "prometheus.yml"
        self.config.write_text(config)
        self.extra = list(extra)

    def command(self) -> list[str]:
        assert PROMETHEUS is not None
        return [
            PROMETHEUS,
            f"--config.file={self.config}",
            f"--storage.tsdb.path={self.data}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=3650d",
            *self.extra,
        ]


def create_blocks_from_openmetrics(text_file: Path, tsdb: Path) -> None:
    """Load an OpenMetrics file (ending in `# EOF`) into `tsdb` as blocks, with promtool."""
    assert PROMTOOL is not None
    tsdb.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(text_file), str(tsdb)],
        check=True,
        capture_output=True,
    )


ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
if REQUIRED and ALERTMANAGER is None:
    raise RuntimeError("alertmanager is required (apt-get install prometheus-alertmanager)")

ALERTMANAGER_CONFIG = """
route:
  receiver: blackhole
receivers:
  - name: blackhole
"""


class AlertmanagerProcess(PeerProcess):
    """Debian's Alertmanager with a data dir of its own and clustering off."""

    name = "alertmanager"

    def __init__(self, workdir: Path) -> None:
        assert ALERTMANAGER is not None
        super().__init__(workdir)
        self.config = workdir / "alertmanager.yml"
        self.config.write_text(ALERTMANAGER_CONFIG)

    def command(self) -> list[str]:
        assert ALERTMANAGER is not None
        return [
            ALERTMANAGER,
            f"--config.file={self.config}",
            f"--storage.path={self.workdir / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",
        ]
