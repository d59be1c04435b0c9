"""Admin storage routes over HTTP, against a real server whose store has data."""

from __future__ import annotations

import time

import httpx

from hakon.auth.secret import read_secret
from hakon.auth.tokens import TokenAuthority


def test_storage_report_and_flush(tmp_path) -> None:
    import numpy as np
    from serverproc import HakonProcess

    from hakon.store.catalog import Catalog
    from hakon.store.engine import Store
    from hakon.store.interface import SampleBatch

    data = tmp_path / "data"
    # Samples written by an earlier process sit in the WAL; the server replays them.
    catalog = Catalog.open_in(data)
    store = Store(data, catalog).open()
    now = int(time.time() * 1000)
    labels = [{"__name__": "up", "pod": f"p{i}"} for i in range(5)]
    store.append(SampleBatch.from_series(labels, np.arange(5), [now - 60_000] * 5, [1.0] * 5))
    store.close()
    catalog.close()

    with HakonProcess(data) as proc:
        admin = proc.admin_token()
        auth = {"Authorization": f"Bearer {admin}"}
        stats = httpx.get(proc.url + "/api/v1/admin/storage", headers=auth).json()
        assert stats["series"] == 5 and stats["head_samples"] == 5 and stats["samples"] == 5
        assert stats["wal_replayed_samples"] == 5 and stats["blocks"] == 0
        flushed = httpx.post(proc.url + "/api/v1/admin/flush", headers=auth).json()
        assert flushed["flushed_samples"] == 5 and flushed["merges"] == 0
        after = flushed["storage"]
        assert after["head_samples"] == 0 and after["blocks"] == 1 and after["samples"] == 5
        assert after["block_bytes"] > 0 and after["rollup_bytes"] > 0
        reader, _ = TokenAuthority(read_secret(data)).mint(
            subject="r", scopes=["metrics:read"], ttl_seconds=60
        )
        denied = httpx.post(
            proc.url + "/api/v1/admin/flush", headers={"Authorization": f"Bearer {reader}"}
        )
        assert denied.status_code == 403
