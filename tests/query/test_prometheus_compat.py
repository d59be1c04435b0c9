"""Hakon's PromQL against a real Prometheus: same data, same queries, equal answers.

The data set (`compat_data.py`) goes into Prometheus through
`promtool tsdb create-blocks-from openmetrics` and into Hakon through its
text import. Every query in `compat_queries.txt` runs as instant queries at
several times and as a range query on both; the results must have the same
label sets, timestamps, and values within 1e-9 relative.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from peers import PROMETHEUS, PROMTOOL, PrometheusProcess, create_blocks_from_openmetrics
from serverproc import HakonProcess

from tests.query import compat_data

pytestmark = pytest.mark.skipif(
    PROMETHEUS is None or PROMTOOL is None, reason="Debian package prometheus missing"
)

QUERIES = [
    line.strip()
    for line in (Path(__file__).parent / "compat_queries.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]
HOUR_MS = 3_600_000
# Two hours of data ending an hour ago, on whole minutes.
END_MS = (int(time.time()) // 3600 - 1) * HOUR_MS
START_MS = END_MS - 2 * HOUR_MS
INSTANT_TIMES_S = [
    (START_MS + 3 * 60_000) // 1000,  # early: short series, partial windows
    (START_MS + 61 * 60_000) // 1000,
    (END_MS - 60_000) // 1000,
    (END_MS + 4 * 60_000) // 1000,  # after the data: the lookback's tail
]
RANGE = {
    "start": (START_MS + 30 * 60_000) // 1000,
    "end": (END_MS + 6 * 60_000) // 1000,
    "step": "60",
}


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    work = tmp_path_factory.mktemp("compat")
    series = compat_data.build(START_MS, END_MS)
    om = work / "data.om"
    om.write_text(compat_data.openmetrics(series))
    prom_dir = work / "prometheus"
    prom_dir.mkdir()
    create_blocks_from_openmetrics(om, prom_dir / "tsdb")
    hakon = HakonProcess(work / "hakon", "--rate-limit-rps", "0").start()
    prometheus = PrometheusProcess(prom_dir).start()
    try:
        headers = {"Authorization": f"Bearer {hakon.admin_token()}"}
        with (
            httpx.Client(base_url=hakon.url + "/prometheus", headers=headers, timeout=60) as h,
            httpx.Client(base_url=prometheus.url, timeout=60) as p,
        ):
            for chunk in compat_data.exposition_chunks(series):
                r = h.post(
                    hakon.url + "/api/v1/import/prometheus",
                    content=chunk,
                    headers={"Content-Type": "text/plain"},
                )
                assert r.status_code == 204, r.text
            yield h, p
    finally:
        prometheus.stop()
        hakon.stop()


def _number(text: str) -> float:
    return float(text.replace("+Inf", "inf").replace("-Inf", "-inf"))


def _close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if a == b:
        return True
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b))


def _normalize(data: dict[str, Any]) -> tuple[str, Any]:
    kind = data["resultType"]
    result = data["result"]
    if kind in ("scalar", "string"):
        return kind, [result]
    out = []
    for s in result:
        points = s.get("values") or [s["value"]]
        out.append((sorted(s["metric"].items()), points))
    out.sort(key=lambda s: s[0])
    return kind, out


def _points(body: dict[str, Any]) -> int:
    if body.get("status") != "success":
        return 0
    data = body["data"]
    if data["resultType"] in ("scalar", "string"):
        return 1
    return sum(len(s.get("values") or [s["value"]]) for s in data["result"])


def _compare(query: str, where: str, ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    if theirs["status"] != "success":
        return [f"{where}: Prometheus failed: {theirs}"] if ours["status"] == "success" else []
    if ours["status"] != "success":
        return [f"{where}: Hakon failed: {ours.get('error')}"]
    kind_o, got = _normalize(ours["data"])
    kind_t, want = _normalize(theirs["data"])
    if kind_o != kind_t:
        return [f"{where}: result type {kind_o} != {kind_t}"]
    if kind_o in ("scalar", "string"):
        got = [([], got)]
        want = [([], want)]
    ours_labels, their_labels = [g[0] for g in got], [w[0] for w in want]
    if ours_labels != their_labels:
        return [f"{where}: label sets differ\n  hakon: {ours_labels}\n  prom:  {their_labels}"]
    problems = []
    for (labels, gp), (_, wp) in zip(got, want, strict=True):
        if [p[0] for p in gp] != [p[0] for p in wp]:
            problems.append(f"{where}: {labels}: timestamps differ: {len(gp)} vs {len(wp)} points")
            continue
        for (t, gv), (_, wv) in zip(gp, wp, strict=True):
            ok = gv == wv if kind_o == "string" else _close(_number(gv), _number(wv))
            if not ok:
                problems.append(f"{where}: {labels} at {t}: hakon {gv} != prometheus {wv}")
                break
    return problems


@pytest.mark.parametrize("query", QUERIES)
def test_same_answers_as_prometheus(peers: tuple[httpx.Client, httpx.Client], query: str) -> None:
    hakon, prometheus = peers
    problems: list[str] = []
    compared = 0
    for t in INSTANT_TIMES_S:
        params = {"query": query, "time": str(t)}
        ours = hakon.get("/api/v1/query", params=params).json()
        theirs = prometheus.get("/api/v1/query", params=params).json()
        problems += _compare(query, f"instant at {t}", ours, theirs)
        compared += _points(theirs)
    params = {"query": query, **{k: str(v) for k, v in RANGE.items()}}
    ours = hakon.get("/api/v1/query_range", params=params).json()
    theirs = prometheus.get("/api/v1/query_range", params=params).json()
    problems += _compare(query, "range", ours, theirs)
    compared += _points(theirs)
    assert not problems, "\n".join(problems[:10])
    # An empty answer on both sides proves nothing: every query must yield data somewhere.
    assert compared > 0, f"{query!r} returned nothing from Prometheus; fix the query or the data"
