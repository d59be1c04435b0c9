from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from serverproc import HakonProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HakonProcess]:
    """One real `hakon serve` per test module, on a free loopback port."""
    data_dir = tmp_path_factory.mktemp("hakon") / "data"
    proc = HakonProcess(data_dir).start()
    try:
        yield proc
    finally:
        proc.stop()
