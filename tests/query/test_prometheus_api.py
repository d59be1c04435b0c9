"""The Prometheus HTTP API on a real server: shapes, parameters, errors, as Grafana calls it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from serverproc import HakonProcess

NOW_S = int(time.time()) // 60 * 60 - 600  # a whole minute, ten minutes ago
T0 = NOW_S - 3600  # data: one hour at 15 s


@pytest.fixture(scope="module")
def api(server: HakonProcess) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {server.admin_token()}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        lines = []
        for k in range(241):
            t_ms = (T0 + 15 * k) * 1000
            for pod, ns, rate in (("a", "default", 1.0), ("b", "default", 2.0), ("c", "kube", 0.5)):
                lines.append(
                    f'cpu_seconds_total{{namespace="{ns}",pod="{pod}"}} {rate * 15 * k} {t_ms}'
                )
            lines.append(f'temp_celsius{{room="hall"}} {20 + (k % 4)} {t_ms}')
        r = client.post(
            "/api/v1/import/prometheus",
            content="\n".join(lines) + "\n",
            headers={"Content-Type": "text/plain"},
        )
        assert r.status_code == 204, r.text
        yield client


def prom(client: httpx.Client, path: str, method: str = "GET", **params: Any) -> httpx.Response:
    if method == "GET":
        return client.get("/prometheus/api/v1" + path, params=params)
    return client.post("/prometheus/api/v1" + path, data=params)


def test_instant_query_vector_shape(api: httpx.Client) -> None:
    r = prom(api, "/query", query="sum by (namespace) (rate(cpu_seconds_total[5m]))", time=NOW_S)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "success"
    assert body["data"]["resultType"] == "vector"
    got = {s["metric"]["namespace"]: s["value"] for s in body["data"]["result"]}
    assert set(got) == {"default", "kube"}
    assert all(t == NOW_S for t, _ in got.values())
    # Prometheus's own float arithmetic: 3 * (300 / 285) / 300 * 285 is 2.9999999999999996.
    assert float(got["default"][1]) == pytest.approx(3, rel=1e-12)
    assert float(got["kube"][1]) == pytest.approx(0.5, rel=1e-12)


def test_form_post_equals_get(api: httpx.Client) -> None:
    params = {"query": "rate(cpu_seconds_total{pod='b'}[1m])", "time": str(NOW_S)}
    assert prom(api, "/query", "POST", **params).json() == prom(api, "/query", **params).json()


def test_range_query_matrix_shape_and_rfc3339_times(api: httpx.Client) -> None:
    start = datetime.fromtimestamp(NOW_S - 120, UTC).isoformat().replace("+00:00", "Z")
    r = prom(api, "/query_range", query="temp_celsius", start=start, end=NOW_S, step="1m")
    body = r.json()
    assert body["data"]["resultType"] == "matrix"
    (series,) = body["data"]["result"]
    assert series["metric"] == {"__name__": "temp_celsius", "room": "hall"}
    times = [p[0] for p in series["values"]]
    assert times == [NOW_S - 120, NOW_S - 60, NOW_S]
    assert all(isinstance(p[1], str) for p in series["values"])


def test_scalar_and_string_results(api: httpx.Client) -> None:
    body = prom(api, "/query", query="1 + 2.5", time="1700000000.5").json()
    assert body["data"] == {"resultType": "scalar", "result": [1700000000.5, "3.5"]}
    body = prom(api, "/query", query='"hello"', time=NOW_S).json()
    assert body["data"] == {"resultType": "string", "result": [NOW_S, "hello"]}


def test_range_selector_as_instant_query_returns_raw_samples(api: httpx.Client) -> None:
    body = prom(api, "/query", query="temp_celsius[1m]", time=NOW_S).json()
    assert body["data"]["resultType"] == "matrix"
    (series,) = body["data"]["result"]
    assert [p[0] for p in series["values"]] == [NOW_S - 45, NOW_S - 30, NOW_S - 15, NOW_S]


@pytest.mark.parametrize(
    ("path", "params", "status", "error_type", "fragment"),
    [
        ("/query", {"query": "sum(", "time": "1"}, 400, "bad_data", "cannot parse"),
        ("/query", {}, 400, "bad_data", '"query"'),
        ("/query", {"query": "up", "time": "yesterday"}, 400, "bad_data", '"time"'),
        (
            "/query_range",
            {"query": "up", "start": "0", "end": "100000", "step": "1"},
            400,
            "bad_data",
            "11,000 points",
        ),
        (
            "/query_range",
            {"query": "up", "start": "10", "end": "0", "step": "1"},
            400,
            "bad_data",
            "end timestamp",
        ),
        (
            "/query_range",
            {"query": "up", "start": "0", "end": "10", "step": "0"},
            400,
            "bad_data",
            "step",
        ),
        (
            "/query_range",
            {"query": "up[5m]", "start": "0", "end": "10", "step": "1"},
            400,
            "bad_data",
            "range vector",
        ),
        (
            "/query",
            {"query": "cpu_seconds_total + on() cpu_seconds_total", "time": str(NOW_S)},
            422,
            "execution",
            "duplicate series",
        ),
        ("/query", {"query": "histogram_count(up)", "time": "1"}, 400, "bad_data", "not supported"),
        ("/series", {}, 400, "bad_data", "match[]"),
        ("/series", {"match[]": "sum(up)"}, 400, "bad_data", "series selector"),
        ("/query", {"query": "up", "timeout": "-1s"}, 400, "bad_data", "timeout"),
        ("/labels", {"limit": "x"}, 400, "bad_data", "limit"),
    ],
)
def test_errors_have_prometheus_shape(
    api: httpx.Client,
    path: str,
    params: dict[str, str],
    status: int,
    error_type: str,
    fragment: str,
) -> None:
    r = prom(api, path, **params)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == "error"
    assert body["errorType"] == error_type
    assert fragment in body["error"]


def test_unauthenticated_gets_prometheus_shaped_401(server: HakonProcess) -> None:
    r = httpx.get(server.url + "/prometheus/api/v1/query", params={"query": "up"})
    assert r.status_code == 401
    assert r.json()["status"] == "error"


def test_series_labels_and_values(api: httpx.Client) -> None:
    body = prom(api, "/series", **{"match[]": 'cpu_seconds_total{namespace="kube"}'}).json()
    assert body["data"] == [{"__name__": "cpu_seconds_total", "namespace": "kube", "pod": "c"}]
    r = api.post(
        "/prometheus/api/v1/series",
        data={"match[]": ["temp_celsius", 'cpu_seconds_total{pod="a"}']},
    )
    assert len(r.json()["data"]) == 2
    names = prom(api, "/labels").json()["data"]
    assert {"__name__", "namespace", "pod", "room"} <= set(names)
    scoped = prom(api, "/labels", **{"match[]": "temp_celsius"}).json()["data"]
    assert scoped == ["__name__", "room"]
    values = prom(api, "/label/__name__/values").json()["data"]
    assert {"cpu_seconds_total", "temp_celsius"} <= set(values)
    pods = prom(api, "/label/pod/values", **{"match[]": 'cpu_seconds_total{namespace="default"}'})
    assert pods.json()["data"] == ["a", "b"]
    limited = prom(api, "/label/pod/values", limit="1").json()
    assert limited["data"] == ["a"] and limited["warnings"]


def test_query_limit_truncates_with_a_warning(api: httpx.Client) -> None:
    body = prom(api, "/query", query="cpu_seconds_total", time=NOW_S, limit="2").json()
    assert len(body["data"]["result"]) == 2
    assert "truncated" in body["warnings"][0]


def test_buildinfo_metadata_format_query_rules_alerts(api: httpx.Client) -> None:
    info = prom(api, "/status/buildinfo").json()["data"]
    assert info["version"].startswith("3.")
    assert prom(api, "/metadata").json() == {"status": "success", "data": {}}
    pretty = prom(api, "/format_query", query="sum(rate(foo[5m]))by(job)").json()["data"]
    assert pretty == "sum by (job) (rate(foo[5m]))"
    assert prom(api, "/rules").json()["data"] == {"groups": []}
    assert prom(api, "/alerts").json()["data"] == {"alerts": []}
    assert prom(api, "/query_exemplars", query="up", start="0", end="1").json()["data"] == []


def _cli(server: HakonProcess, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "hakon", "query", *args, "--url", server.url]
    cmd += ["--token", server.admin_token()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_cli_query_prints_tables(api: httpx.Client, server: HakonProcess) -> None:
    instant = _cli(server, "temp_celsius", "--time", str(NOW_S))
    assert instant.returncode == 0, instant.stderr
    header, row = instant.stdout.splitlines()
    assert header.split() == ["SERIES", "TIME", "VALUE"]
    expected_value = str(20 + (240 % 4))
    assert row.split() == ['temp_celsius{room="hall"}', _iso(NOW_S), expected_value]
    ranged = _cli(server, "sum(temp_celsius)", "--start", str(NOW_S - 120), "--end", str(NOW_S),
                  "--step", "1m")  # fmt: skip
    assert ranged.returncode == 0, ranged.stderr
    lines = ranged.stdout.splitlines()[1:]
    assert [line.split()[-2] for line in lines] == [
        _iso(NOW_S - 120),
        _iso(NOW_S - 60),
        _iso(NOW_S),
    ]
    bad = _cli(server, "sum(")
    assert bad.returncode == 1 and "bad_data" in bad.stderr


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# Grafana's Prometheus data source, call by call, with the parameters it sends
# (health check, metric browser, query builder, dashboards, Explore).
GRAFANA_CALLS = [
    ("GET", "/query", {"query": "1+1", "time": f"{NOW_S}.123"}, "scalar"),  # Save & test
    ("GET", "/status/buildinfo", {}, "version"),
    ("GET", "/label/__name__/values", {"start": str(T0), "end": str(NOW_S)}, "temp_celsius"),
    ("GET", "/labels", {"start": str(T0), "end": str(NOW_S)}, "namespace"),
    ("POST", "/labels", {"match[]": "cpu_seconds_total", "start": str(T0), "end": str(NOW_S)},
     "pod"),
    ("GET", "/label/pod/values",
     {"match[]": 'cpu_seconds_total{namespace="kube"}', "start": str(T0), "end": str(NOW_S)}, "c"),
    ("GET", "/series", {"match[]": "temp_celsius", "start": str(T0), "end": str(NOW_S)}, "hall"),
    ("GET", "/metadata", {}, None),
    ("GET", "/metadata", {"metric": "cpu_seconds_total", "limit": "1"}, None),
    ("POST", "/query_range",
     {"query": "sum by (pod) (rate(cpu_seconds_total[1m]))", "start": str(NOW_S - 1800),
      "end": str(NOW_S), "step": "30"}, "matrix"),
    ("POST", "/query", {"query": "topk(2, cpu_seconds_total)", "time": str(NOW_S)}, "vector"),
    ("GET", "/query_exemplars",
     {"query": "cpu_seconds_total", "start": str(NOW_S - 600), "end": str(NOW_S)}, None),
    ("GET", "/format_query", {"query": "sum(rate(x[5m]))by(a)"}, "sum by (a)"),
    ("GET", "/rules", {}, None),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "params", "expect"), GRAFANA_CALLS)
def test_every_grafana_call_answers(
    api: httpx.Client, method: str, path: str, params: dict[str, str], expect: str | None
) -> None:
    r = prom(api, path, method, **params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "success"
    if expect is not None:
        assert expect in r.text
