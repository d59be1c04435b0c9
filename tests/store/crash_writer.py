"""Appends numbered batches forever, printing `ack N` once each is durable.

Run by test_crash.py, which kills it with SIGKILL at a random moment. A tiny
head limit and a fast maintenance loop make flushes and compactions run all
the time, so the kill often lands in the middle of one.
"""

import sys
import time
from pathlib import Path

from hakon.store.catalog import Catalog
from hakon.store.engine import Store, StoreOptions
from hakon.store.interface import SampleBatch

SERIES = 20
PER_BATCH = 50


def batch(n: int, base: int) -> SampleBatch:
    """SERIES steady series, plus one series new in every batch: its labels reach
    the catalog only after the WAL, so kills land between the two as well."""
    idx = [i % SERIES for i in range(PER_BATCH - 1)] + [SERIES]
    ts = [base + n * 1000 + i for i in range(PER_BATCH)]
    vals = [float(n * PER_BATCH + i) for i in range(PER_BATCH)]
    labels = [{"__name__": "crash", "s": str(i)} for i in range(SERIES)]
    labels.append({"__name__": "crash", "batch": str(n)})
    return SampleBatch.from_series(labels, idx, ts, vals)


def main() -> None:
    data_dir, first, base = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    options = StoreOptions(head_max_samples=1000, maintenance_interval_s=0.02,
                           compaction_min_blocks=3)  # fmt: skip
    store = Store(data_dir, Catalog.open_in(data_dir), options).open()
    print("ready", flush=True)
    n = first
    while True:
        store.append(batch(n, base))
        print(f"ack {n}", flush=True)
        n += 1
        time.sleep(0.001)


if __name__ == "__main__":
    main()
