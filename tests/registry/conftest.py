"""One real server for the registry tests; short offline and keep-warm windows."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from serverproc import HakonProcess


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HakonProcess]:
    proc = HakonProcess(
        tmp_path_factory.mktemp("registry") / "data",
        "--node-offline-after", "2s",
        "--function-keep-warm", "2s",
        "--function-timeout", "1s",
    ).start()  # fmt: skip
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="package")
def api(server: HakonProcess) -> Iterator[httpx.Client]:
    with server.client(timeout=10) as client:
        yield client
