"""A real Prometheus scrapes Hakon's /metrics and remote-writes what it scraped into Hakon.

Needs Debian's `prometheus` package (CI installs it; set HAKON_REQUIRE_PEERS=1
to make its absence a failure rather than a skip).
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from peers import PROMETHEUS, PrometheusProcess
from serverproc import HakonProcess

from hakon.auth.secret import read_secret
from hakon.auth.tokens import TokenAuthority
from hakon.store.catalog import Catalog
from hakon.store.engine import Store
from hakon.store.labels import Matcher

pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="Debian package prometheus missing")

CONFIG = """
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: hakon
    static_configs:
      - targets: ["127.0.0.1:{hakon_port}"]
remote_write:
  - url: http://127.0.0.1:{hakon_port}/api/v1/write
    authorization:
      credentials: {token}
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
"""


def _mint(data: Path, scope: str) -> str:
    token, _ = TokenAuthority(read_secret(data)).mint(
        subject="prometheus", scopes=[scope], ttl_seconds=3600
    )
    return token


def test_prometheus_remote_write_lands_in_hakon(tmp_path: Path) -> None:
    data = tmp_path / "hakon"
    hakon = HakonProcess(data).start()
    config = CONFIG.format(hakon_port=hakon.port, token=_mint(data, "metrics:write"))
    prom = PrometheusProcess(tmp_path, config).start()
    admin = {"Authorization": f"Bearer {_mint(data, 'admin')}"}
    try:
        deadline = time.monotonic() + 60
        series = 0
        while time.monotonic() < deadline:
            stats = httpx.get(hakon.url + "/api/v1/admin/storage", headers=admin).json()
            series = stats["series"]
            if series >= 20 and stats["samples"] >= 3 * series:
                break
            time.sleep(0.5)
        assert series >= 20, prom.log.read_text()[-3000:]
    finally:
        prom.stop()
        hakon.stop()

    catalog = Catalog.open_in(data)
    store = Store(data, catalog).open()
    try:
        up = store.select([Matcher("__name__", "=", "up"), Matcher("job", "=", "hakon")])
        assert len(up) == 1
        labels = dict(next(iter(up.values())))
        assert labels == {"__name__": "up", "job": "hakon", "instance": f"127.0.0.1:{hakon.port}"}
        samples = store.read(np.array(list(up)), 0, 2**62)
        assert len(samples) >= 2 and set(samples.values.tolist()) == {1.0}
        assert np.all(np.diff(samples.timestamps) > 0)
        requests = store.select(
            [
                Matcher("__name__", "=", "hakon_http_requests_total"),
                Matcher("route", "=", "/metrics"),
            ]
        )
        assert requests, "Hakon's own request counter was scraped and written back"
        counts = store.read(np.array(list(requests)), 0, 2**62)
        assert counts.values.max() >= 2  # a counter that grew scrape after scrape
    finally:
        store.close()
        catalog.close()
