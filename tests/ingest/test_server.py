"""Ingest against a real `hakon serve`: binding, limits, atomicity, durability, overload."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from serverproc import HakonProcess

from hakon.auth.secret import read_secret
from hakon.auth.tokens import TokenAuthority
from hakon.errors import Unavailable
from hakon.ingest.limits import IngestLimits
from hakon.ingest.service import Ingest
from hakon.store.catalog import Catalog
from hakon.store.engine import Store, StoreOptions
from hakon.store.interface import SampleBatch


def _pods(cluster: str, n: int, **extra: object) -> dict:
    return {
        "cluster_id": cluster,
        "context": {"name": cluster, "provider": {"name": "aws", "region": "eu-west-1"}},
        "collected_at": datetime.now(UTC).isoformat(),
        "resources": [
            {"namespace": "ns", "name": f"p{i}", "cpu_usage_cores": 0.1 * i, "restarts_total": i}
            for i in range(n)
        ],
        **extra,
    }


def _token(data_dir: Path, **binding: str) -> dict[str, str]:
    token, _ = TokenAuthority(read_secret(data_dir)).mint(
        subject="agent", scopes=["metrics:write"], ttl_seconds=600, **binding
    )
    return {"Authorization": f"Bearer {token}"}


def _stored_samples(proc: HakonProcess) -> int:
    token, _ = TokenAuthority(read_secret(proc.data_dir)).mint(
        subject="admin", scopes=["admin"], ttl_seconds=600
    )
    admin = {"Authorization": f"Bearer {token}"}
    return httpx.get(proc.url + "/api/v1/admin/storage", headers=admin).json()["samples"]


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("ingest") / "data"
    proc = HakonProcess(data, "--ingest-max-body-bytes", "65536").start()
    try:
        yield proc
    finally:
        proc.stop()


def test_a_cluster_bound_token_writes_only_its_cluster(small: HakonProcess) -> None:
    url = small.url + "/api/v1/hakongo/pods"
    bound = _token(small.data_dir, cluster_id="c-a")
    assert httpx.post(url, json=_pods("c-a", 2), headers=bound).status_code == 200
    denied = httpx.post(url, json=_pods("c-b", 2), headers=bound)
    assert denied.status_code == 403 and denied.json()["error"]["details"]["field"] == "cluster_id"
    for route in (
        "/api/v1/write",
        "/api/v1/import/prometheus",
        "/write",
        "/api/v1/metrics/nodes/x",
    ):
        assert httpx.post(small.url + route, content=b"m 1", headers=bound).status_code == 403


def test_a_node_bound_token_writes_only_its_node(small: HakonProcess) -> None:
    bound = _token(small.data_dir, node_id="edge-1")
    body = {"timestamp": datetime.now(UTC).isoformat(), "cpu_usage": 12.5}
    ok = httpx.post(small.url + "/api/v1/metrics/nodes/edge-1", json=body, headers=bound)
    assert ok.status_code == 200 and ok.json()["success"] is True
    other = httpx.post(small.url + "/api/v1/metrics/nodes/edge-2", json=body, headers=bound)
    assert other.status_code == 403
    pods = httpx.post(small.url + "/api/v1/hakongo/pods", json=_pods("c-a", 1), headers=bound)
    assert pods.status_code == 403


def test_oversized_bodies_get_413_declared_or_streamed(small: HakonProcess) -> None:
    headers = {**_token(small.data_dir), "content-type": "text/plain"}
    before = _stored_samples(small)
    body = b"".join(b"m_%d 1\n" % i for i in range(20_000))  # > 64 KiB
    declared = httpx.post(small.url + "/api/v1/import/prometheus", content=body, headers=headers)
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"

    def chunks():  # no Content-Length: the bound applies while reading
        for i in range(0, len(body), 4096):
            yield body[i : i + 4096]

    streamed = httpx.post(
        small.url + "/api/v1/import/prometheus", content=chunks(), headers=headers
    )
    assert streamed.status_code == 413
    bomb = gzip.compress(body)  # under the wire limit; inflated size has its own limit
    assert len(bomb) < 65536
    inflated = httpx.post(
        small.url + "/api/v1/import/prometheus",
        content=bomb,
        headers={**headers, "content-encoding": "gzip"},
    )
    assert inflated.status_code == 204
    assert _stored_samples(small) == before + 20_000


def test_a_request_with_a_bad_last_resource_leaves_no_trace(small: HakonProcess) -> None:
    headers = _token(small.data_dir)
    payload = _pods("c-atomic", 50)
    payload["resources"][-1]["memory_working_set_bytes"] = "lots"
    before = _stored_samples(small)
    response = httpx.post(small.url + "/api/v1/hakongo/pods", json=payload, headers=headers)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["details"]["field"] == "resources[49].memory_working_set_bytes"
    assert _stored_samples(small) == before


def _children(pid: int) -> list[int]:
    return [
        int(c)
        for task in Path(f"/proc/{pid}/task").glob("*")
        for c in (task / "children").read_text().split()
    ]


def test_acknowledged_samples_survive_kill_9(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc = HakonProcess(data).start()
    headers = _token(data)
    accepted = 0
    for batch in range(5):
        lines = "".join(f"cpu,host=h{batch} v{i}={i}\n" for i in range(100))
        r = httpx.post(proc.url + "/write", content=lines, headers=headers)
        assert r.status_code == 204
        accepted += 100
        r = httpx.post(
            proc.url + "/api/v1/hakongo/pods", json=_pods(f"c{batch}", 10), headers=headers
        )
        accepted += r.json()["accepted_samples"]
    workers = _children(proc.proc.pid)  # type: ignore[union-attr]
    assert workers, "large bodies are decoded in worker processes"
    proc.stop(signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(Path(f"/proc/{w}").exists() for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(Path(f"/proc/{w}").exists() for w in workers), "workers outlived the server"
    restarted = HakonProcess(data).start()
    try:
        assert _stored_samples(restarted) == accepted
    finally:
        restarted.stop()


def test_past_the_pending_bound_writes_are_refused_at_once(tmp_path: Path) -> None:
    catalog = Catalog.open_in(tmp_path)
    store = Store(tmp_path, catalog).open()
    try:
        ingest = Ingest(store, IngestLimits(), max_pending_samples=1000)
        now = int(time.time() * 1000)

        def batch(n: int, at: int = now) -> SampleBatch:
            labels = [{"__name__": "m", "i": str(i)} for i in range(n)]
            return SampleBatch.from_series(labels, np.arange(n), [at] * n, np.ones(n))

        async def three_at_once() -> list[object]:
            return await asyncio.gather(
                *(ingest.append(batch(600)) for _ in range(3)), return_exceptions=True
            )

        outcomes = asyncio.run(three_at_once())
        refused = [o for o in outcomes if isinstance(o, Unavailable)]
        assert len(refused) == 2 and outcomes[0] is None
        assert refused[0].retry_after == 1
        assert ingest.pending_samples == 0
        asyncio.run(ingest.append(batch(600, now + 1)))  # once drained, writes go through again
        assert store.stats()["samples"] == 1200  # the admitted batch and the later one
    finally:
        store.close()
        catalog.close()


def test_writes_are_refused_while_flushes_are_behind(tmp_path: Path) -> None:
    """Three heads' worth of samples not yet written to blocks: new writes are refused
    (memory stays bounded when flushes fall behind) until a flush catches up."""
    catalog = Catalog.open_in(tmp_path)
    options = StoreOptions(head_max_samples=100, maintenance_interval_s=3600)  # no auto flush
    store = Store(tmp_path, catalog, options).open()
    try:
        ingest = Ingest(store, IngestLimits(), max_pending_samples=10**6)
        now = int(time.time() * 1000)
        labels = [{"__name__": "m", "i": str(i)} for i in range(299)]
        store.append(SampleBatch.from_series(labels, np.arange(299), [now] * 299, np.ones(299)))
        ingest.check_capacity()  # 299 < 300: still admitted
        store.append(SampleBatch.from_series(labels[:1], [0], [now + 1], [2.0]))
        with pytest.raises(Unavailable) as refused:
            ingest.check_capacity()
        assert refused.value.details == {"unflushed_samples": 300, "limit": 300}
        assert refused.value.retry_after == 5
        store.flush()
        assert store.unflushed_samples() == 0
        ingest.check_capacity()
    finally:
        store.close()
        catalog.close()


def test_overload_is_a_503_with_retry_after_over_http(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with HakonProcess(data, "--ingest-max-pending-samples", "1000") as proc:
        headers = _token(data)

        async def flood() -> list[int]:
            async with httpx.AsyncClient(base_url=proc.url, headers=headers) as client:
                responses = await asyncio.gather(
                    *(
                        client.post("/api/v1/hakongo/pods", json=_pods(f"c{i}", 200))
                        for i in range(16)
                    )
                )
            for r in responses:
                if r.status_code == 503:
                    assert r.headers["retry-after"] == "1"
                    assert r.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
            return [r.status_code for r in responses]

        statuses = asyncio.run(flood())
        assert set(statuses) <= {200, 503} and 200 in statuses
        accepted = statuses.count(200) * 400
        assert _stored_samples(proc) == accepted


def test_json_error_bodies_name_the_field(small: HakonProcess) -> None:
    headers = _token(small.data_dir)
    body = json.dumps(_pods("c-x", 1) | {"collected_at": "yesterday"})
    r = httpx.post(
        small.url + "/api/v1/hakongo/nodes",
        content=body,
        headers={**headers, "content-type": "application/json"},
    )
    assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "collected_at"


def test_past_the_request_bound_ingest_refuses_before_reading(tmp_path: Path) -> None:
    catalog = Catalog.open_in(tmp_path)
    store = Store(tmp_path, catalog).open()
    try:
        ingest = Ingest(store, IngestLimits(), max_pending_samples=10**6, max_concurrent_requests=2)
        with ingest.request(), ingest.request():
            with pytest.raises(Unavailable) as refused, ingest.request():
                pass
            assert refused.value.details == {"active_requests": 2, "limit": 2}
        with ingest.request():  # slots come back when requests end, failed or not
            pass
    finally:
        store.close()
        catalog.close()


def test_a_worker_decoded_series_without_labels_heals_on_retry(tmp_path: Path) -> None:
    from hakon.ingest.decoding import Decoding

    catalog = Catalog.open_in(tmp_path)
    store = Store(tmp_path, catalog).open()
    dec = Decoding(IngestLimits(), 1, store.index.__contains__)
    dec.INLINE_BYTES = 0
    try:
        body = json.dumps(_pods("c-heal", 3)).encode()

        async def decode_and_append() -> None:
            _, batch = await dec.decode("hakongo/pods", body, "", ())
            await asyncio.wrap_future(store.submit(batch))

        async def scenario() -> None:
            nonlocal body
            dec._texts.clear()  # nothing known yet: the first decode reports every label
            await decode_and_append()
            assert store.stats()["series"] == 6
            # This process loses the labels of a series the store never registered (here:
            # a new pod) while the worker still has them cached: refused once, then healed.
            body = json.dumps(_pods("c-heal", 4)).encode()
            await dec.decode("hakongo/pods", body, "", ())  # the worker caches pod p3
            dec._texts.clear()
            with pytest.raises(Unavailable):
                await decode_and_append()
            await decode_and_append()  # the worker started afresh and re-reported
            assert store.stats()["series"] == 8
            await dec.detach()

        asyncio.run(scenario())
    finally:
        dec.close()
        store.close()
        catalog.close()


def test_a_killed_decode_worker_costs_at_most_one_retry(tmp_path: Path) -> None:
    from hakon.ingest.decoding import Decoding

    dec = Decoding(IngestLimits(), 1, lambda sid: False)
    dec.INLINE_BYTES = 0
    body = json.dumps(_pods("c-kill", 3)).encode()

    async def decode_after_kill() -> list[Any]:
        _, first = await dec.decode("hakongo/pods", body, "", ())
        (worker,) = dec.workers
        os.kill(worker.proc.pid, signal.SIGKILL)
        outcomes: list[Any] = [first]
        for _ in range(2):  # refused with a retry hint at most once (if caught mid-call)
            try:
                outcomes.append((await dec.decode("hakongo/pods", body, "", ()))[1])
                break
            except Unavailable as exc:
                outcomes.append(exc)
        assert dec.workers[0] is not worker
        await dec.detach()
        return outcomes

    try:
        first, *retries, again = asyncio.run(decode_after_kill())
        assert len(retries) <= 1 and all(isinstance(r, Unavailable) for r in retries)
        assert np.array_equal(np.sort(again.sample_series), np.sort(first.sample_series))
        assert again.series_labels[0] == first.series_labels[0]  # labels reported again
    finally:
        dec.close()


def test_a_decode_worker_answers_concurrent_requests_in_order(tmp_path: Path) -> None:
    """Many requests in flight on one worker socket: each gets its own answer."""
    from hakon.ingest.decoding import Decoding

    dec = Decoding(IngestLimits(), 1, lambda sid: False)
    dec.INLINE_BYTES = 0
    bodies = [json.dumps(_pods(f"c-{i}", 1 + i % 7)).encode() for i in range(40)]

    async def all_at_once() -> list[Any]:
        results = await asyncio.gather(
            *(dec.decode("hakongo/pods", b, "", ()) for b in bodies), return_exceptions=True
        )
        await dec.detach()
        return results

    try:
        results = asyncio.run(all_at_once())
        for i, result in enumerate(results):
            assert not isinstance(result, BaseException), result
            _, batch = result
            clusters = {dict(labels)["cluster_id"] for labels in batch.series_labels}
            assert clusters == {f"c-{i}"} and len(batch) == 2 * (1 + i % 7)
    finally:
        dec.close()


def test_a_trickling_body_gets_408_and_frees_its_slot(tmp_path: Path) -> None:
    import socket

    data = tmp_path / "data"
    flags = ("--ingest-body-timeout", "1s", "--ingest-max-concurrent-requests", "1")
    with HakonProcess(data, *flags) as proc:
        token = _token(data)["Authorization"]
        with socket.create_connection(("127.0.0.1", proc.port)) as slow:
            slow.sendall(
                b"POST /write HTTP/1.1\r\nHost: x\r\nAuthorization: "
                + token.encode()
                + b"\r\nContent-Length: 1000\r\n\r\nm v=1\n"
            )
            slow.settimeout(10)
            started = time.monotonic()
            reply = b""
            while b"}}" not in reply:  # headers, then the JSON error body
                chunk = slow.recv(4096)
                if not chunk:
                    break
                reply += chunk
            assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
            assert b"REQUEST_TIMEOUT" in reply and time.monotonic() - started < 5
        # the slot is free again: a normal write goes through
        ok = httpx.post(proc.url + "/write", content=b"m v=1\n", headers=_token(data))
        assert ok.status_code == 204
