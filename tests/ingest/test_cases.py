"""Data-driven ingest cases: each file under `cases/` is one request and its exact outcome.

A case names a route, headers, query parameters and a body; it expects either
the exact series and samples in storage afterwards, or the exact status, error
code and field (and then storage must be empty: a refused request writes
nothing). Each case runs through the whole app (routing, auth, body limits,
decoding, the store) against a fresh data dir; series and samples are read
back from the store.

Each case runs twice: decoded in the server process, and in a decode worker
process (the path large bodies take).

Bodies may hold time tokens, replaced before sending: {now_iso}, {now_s},
{now_ms}, {now_ns}, {past_ms} (a minute ago) and {future_ms} (a day ahead).
Expected sample times are "now", "past" or a number of ms.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cramjam
import httpx
import numpy as np
import pytest

from hakon.api.app import create_app
from hakon.config import Settings
from hakon.ingest.limits import IngestLimits
from hakon.ingest.remote_write import encode_write_request
from hakon.ingest.workers import WorkerProcess
from hakon.runtime import Runtime
from hakon.store.labels import Matcher, series_id

CASES = sorted((Path(__file__).parent / "cases").rglob("*.json"))


def _times() -> dict[str, int]:
    now_s = int(time.time()) - 5
    return {"now": now_s * 1000, "past": now_s * 1000 - 60_000, "future": now_s * 1000 + 86_400_000}


def _substitute(text: str, t: dict[str, int]) -> str:
    now_s = t["now"] // 1000
    iso = datetime.fromtimestamp(now_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        text.replace("{now_iso}", iso)
        .replace("{now_s}", str(now_s))
        .replace("{now_ms}", str(t["now"]))
        .replace("{now_ns}", str(t["now"] * 1_000_000))
        .replace("{past_ms}", str(t["past"]))
        .replace("{future_ms}", str(t["future"]))
    )


def _body(spec: Any, t: dict[str, int]) -> bytes:
    if isinstance(spec, str):
        return _substitute(spec, t).encode()
    if "json" in spec:
        return _substitute(json.dumps(spec["json"]), t).encode()
    if "remote_write" in spec:
        series = json.loads(_substitute(json.dumps(spec["remote_write"]), t))
        raw = encode_write_request(
            [(s["labels"], [(int(ts), float(v)) for ts, v in s["samples"]]) for s in series]
        )
        return bytes(cramjam.snappy.compress_raw(raw))
    if "base64" in spec:
        return base64.b64decode(spec["base64"])
    if "snappy" in spec:
        return bytes(cramjam.snappy.compress_raw(spec["snappy"].encode()))
    if "gzip" in spec:
        return gzip.compress(_substitute(spec["gzip"], t).encode())
    raise ValueError(f"unknown body spec {spec}")


def _time(value: Any, t: dict[str, int]) -> int:
    if value == "now_plus_500":
        return t["now"] + 500
    return t[value] if isinstance(value, str) else int(value)


def _value(value: Any, t: dict[str, int]) -> float:
    if value == "now_s":
        return t["now"] / 1000
    return float(value)  # also "nan", "inf", "-inf"


_POOL: dict[str, Any] = {}


@pytest.fixture(scope="module", autouse=True)
def _stop_shared_worker() -> Iterator[None]:
    yield
    if "worker" in _POOL:
        _POOL.pop("worker").stop()


def _shared_worker() -> WorkerProcess:
    """One decode worker shared by the cases that run through a worker process."""
    if "worker" not in _POOL:
        _POOL["worker"] = WorkerProcess(IngestLimits())
    return _POOL["worker"]


async def _run(
    case: dict[str, Any], data_dir: Path, in_worker: bool
) -> tuple[httpx.Response, Runtime]:
    settings = Settings.load(
        {"data_dir": str(data_dir), "no_auth": True, "ingest_decode_processes": 0}, {}
    )
    runtime, _ = Runtime.prepare(settings)
    await asyncio.to_thread(runtime.open)
    if in_worker:  # every body goes through the worker process, however small
        dec = runtime.ingest.decoding
        dec.workers, dec.processes, dec.INLINE_BYTES = [_shared_worker()], 1, 0
        _POOL["generation"] = dec._generation = _POOL.get("generation", 0) + 1  # a fresh store
    app = create_app(runtime)
    t = case["_times"]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hakon") as client:
        response = await client.post(
            case["route"],
            content=_body(case["body"], t),
            headers=case.get("headers", {}),
            params={k: _substitute(v, t) for k, v in case.get("params", {}).items()},
        )
    if in_worker:
        await runtime.ingest.decoding.detach()  # the shared worker outlives this loop
    return response, runtime


def _stored(runtime: Runtime) -> dict[tuple[tuple[str, str], ...], list[tuple[int, float]]]:
    store = runtime.store
    series = store.select([Matcher("__name__", "=~", ".+")])
    if not series:
        return {}
    for sid, labels in series.items():  # ids are the stable hash of the labels, whatever the format
        assert series_id(labels) == sid
    samples = store.read(np.array(list(series)), 0, 2**62)
    out: dict[tuple[tuple[str, str], ...], list[tuple[int, float]]] = {}
    for sid, ts, v in zip(
        samples.series.tolist(), samples.timestamps.tolist(), samples.values.tolist(), strict=True
    ):
        out.setdefault(series[sid], []).append((ts, v))
    return out


@pytest.mark.parametrize("in_worker", [False, True], ids=["inline", "worker"])
@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.stem}" for p in CASES])
def test_case(path: Path, in_worker: bool, tmp_path: Path) -> None:
    case = json.loads(path.read_text())
    case["_times"] = t = _times()
    response, runtime = asyncio.run(_run(case, tmp_path / "data", in_worker))
    try:
        stored = _stored(runtime)
        if "error" in case:
            want = case["error"]
            assert response.status_code == want["status"], response.text
            error = response.json()["error"]
            assert error["code"] == want["code"], error
            if "field" in want:
                assert error["details"].get("field") == want["field"], error
            for fragment in want.get("message_contains", []):
                assert fragment in error["message"], error
            assert stored == {}, "a refused request must write nothing"
        else:
            assert response.status_code == case.get("status", 204), response.text
            expected = {
                tuple(sorted(s["labels"].items())): sorted(
                    (_time(ts, t), _value(v, t)) for ts, v in s["samples"]
                )
                for s in case["expect"]
            }
            got = {k: sorted(v) for k, v in stored.items()}
            assert got.keys() == expected.keys(), (
                f"missing {sorted(expected.keys() - got.keys())}\n"
                f"unexpected {sorted(got.keys() - expected.keys())}"
            )
            for key, samples in expected.items():
                assert len(got[key]) == len(samples), key
                for (gt, gv), (et, ev) in zip(got[key], samples, strict=True):
                    assert gt == et and (gv == ev or (gv != gv and ev != ev)), (key, got[key])
            if "response" in case:
                body = response.json()
                for k, v in case["response"].items():
                    assert body[k] == v, body
    finally:
        if in_worker:
            runtime.ingest.decoding.workers = []  # shared: not the runtime's to shut down
        runtime.close()
