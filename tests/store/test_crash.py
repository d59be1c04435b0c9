"""kill -9 at random moments loses no acknowledged sample and needs no repair."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from hakon.store.catalog import Catalog
from hakon.store.engine import Store
from hakon.store.labels import Matcher

WRITER = Path(__file__).with_name("crash_writer.py")


def run_and_kill(data_dir: Path, first: int, base: int, seconds: float) -> list[int]:
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), str(data_dir), str(first), str(base)],
        stdout=subprocess.PIPE,
        text=True,
    )
    acked: list[int] = []
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("ack "):
            acked.append(int(line.split()[1]))
    proc.send_signal(signal.SIGKILL)
    for line in proc.stdout:  # acks printed before the kill still count
        if line.startswith("ack "):
            acked.append(int(line.split()[1]))
    proc.wait()
    proc.stdout.close()
    return acked


def test_sigkill_during_appends_flushes_and_compactions(tmp_path: Path) -> None:
    sys.path.insert(0, str(WRITER.parent))
    from crash_writer import PER_BATCH, batch

    rng = random.Random(7)
    base = int(time.time() * 1000) - 3_600_000
    acked: list[int] = []
    first = 0
    for _ in range(4):
        acked += run_and_kill(tmp_path, first, base, rng.uniform(0.8, 2.0))
        first = max(acked) + 1 if acked else first
        catalog = Catalog.open_in(tmp_path)
        store = Store(tmp_path, catalog).open()
        try:
            ids = np.array(list(store.select([Matcher("__name__", "=", "crash")])))
            got = store.read(ids, base, base + 10**9)
            have = {(s, t): v for s, t, v in zip(got.series.tolist(), got.timestamps.tolist(),
                                                 got.values.tolist(), strict=True)}  # fmt: skip
            assert len(have) == len(got)  # no duplicates
            for n in acked:
                b = batch(n, base)
                for s, t, v in zip(b.sample_series.tolist(), b.timestamps.tolist(),
                                   b.values.tolist(), strict=True):  # fmt: skip
                    assert have.get((s, t)) == v, f"acknowledged batch {n} lost"
            assert store.stats()["damaged"] == []
            assert store.stats()["blocks"] > 0  # kills landed among flushes
        finally:
            store.close()
            catalog.close()
    assert len(acked) > 100 and len(acked) * PER_BATCH > 5000
