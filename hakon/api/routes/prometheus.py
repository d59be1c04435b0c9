"""The Prometheus HTTP API under `/prometheus/api/v1/`: what Grafana's data source calls.

Parameters come from the query string or a form-encoded POST body, as in
Prometheus; every answer, errors included, has Prometheus's envelope
(`status`, `data`, `errorType`, `error`, `warnings`). Queries run in a worker
thread so a long one never stalls ingest on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import parse_qsl

import numpy as np
import promql_parser as pp
from fastapi import APIRouter, Depends, Request, Response
from fastapi.routing import APIRoute

from hakon import __version__
from hakon.api.auth import require, runtime_of
from hakon.api.errors import prometheus_error_response
from hakon.errors import HakonError, InvalidRequest, PayloadTooLarge
from hakon.query.engine import Result, parse, selector_matchers
from hakon.query.functions import LABEL_NAME
from hakon.query.render import (
    instant_vector_json,
    matrix_json,
    ordered_rows,
    raw_matrix_json,
    scalar_json,
    string_json,
)
from hakon.query.service import QueryService
from hakon.query.timeparse import MAX_TIME_MS, MIN_TIME_MS, parse_duration_ms, parse_time_ms
from hakon.query.values import RangeSamples, Scalar, String, Vector
from hakon.store.labels import Matcher

log = logging.getLogger(__name__)
MAX_FORM_BYTES = 1 << 20
# Reported in buildinfo: the Prometheus API and PromQL semantics Hakon follows.
COMPATIBLE_PROMETHEUS = "3.0.0"


class PrometheusRoute(APIRoute):
    """Renders every Hakon error in Prometheus's error envelope."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except HakonError as exc:
                return prometheus_error_response(exc)
            except Exception:
                log.exception("unhandled error in %s %s", request.method, request.url.path)
                return prometheus_error_response(HakonError("internal server error"))

        return route


router = APIRouter(
    prefix="/prometheus/api/v1",
    tags=["prometheus"],
    route_class=PrometheusRoute,
    dependencies=[Depends(require("metrics:read"))],
)


def _param_doc(
    name: str, description: str, required: bool = False, many: bool = False
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if many:
        schema = {"type": "array", "items": {"type": "string"}}
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }


def _doc(*params: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI for a form POST: the GET operation's parameters as form fields."""
    properties = {p["name"]: p["schema"] for p in params}
    return {
        "requestBody": {
            "required": False,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {"type": "object", "properties": properties}
                }
            },
        },
    }


P_QUERY = _param_doc("query", "PromQL expression.", required=True)
P_TIME = _param_doc("time", "Evaluation time: RFC 3339 or Unix seconds. Default: now.")
P_START = _param_doc("start", "Start time: RFC 3339 or Unix seconds.")
P_END = _param_doc("end", "End time: RFC 3339 or Unix seconds.")
P_STEP = _param_doc("step", "Resolution step: a duration (15s, 1m) or seconds.", required=True)
P_TIMEOUT = _param_doc("timeout", "Evaluation timeout; can only shorten query_timeout.")
P_LIMIT = _param_doc("limit", "Maximum number of returned series (or names); 0 means no limit.")
P_MATCH = _param_doc("match[]", "Series selector; repeatable.", many=True)


def get_and_post(path: str, summary: str, *params: dict[str, Any]) -> Callable[[Any], Any]:
    """Register one handler for GET (query string) and POST (form body), as Prometheus does."""
    name = path.strip("/").replace("/", "_")

    def register(fn: Any) -> Any:
        router.get(path, summary=summary, operation_id=f"prometheus_{name}_get",
                   openapi_extra={"parameters": list(params)})(fn)  # fmt: skip
        router.post(path, summary=summary + " (form POST)", operation_id=f"prometheus_{name}_post",
                    openapi_extra=_doc(*params))(fn)  # fmt: skip
        return fn

    return register


class Params:
    """The request's parameters: query string and form body, like Prometheus's `r.Form`."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = pairs

    @classmethod
    async def of(cls, request: Request) -> Params:
        pairs = list(request.query_params.multi_items())
        if request.method == "POST":
            media = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if media == "application/x-www-form-urlencoded":
                body = b""
                async for chunk in request.stream():
                    body += chunk
                    if len(body) > MAX_FORM_BYTES:
                        raise PayloadTooLarge(f"form body over {MAX_FORM_BYTES} bytes")
                try:
                    pairs = parse_qsl(body.decode(), keep_blank_values=True) + pairs
                except UnicodeDecodeError:
                    raise InvalidRequest("form body is not UTF-8", field="body") from None
        return cls(pairs)

    def get(self, name: str) -> str | None:
        for k, v in self.pairs:
            if k == name:
                return v
        return None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.pairs if k == name]

    def required(self, name: str) -> str:
        value = self.get(name)
        if value is None or value == "":
            raise InvalidRequest(f'invalid parameter "{name}": missing', field=name)
        return value

    def time(self, name: str, default: int) -> int:
        value = self.get(name)
        return default if value in (None, "") else parse_time_ms(value, name)

    def timeout(self) -> float | None:
        value = self.get("timeout")
        if value in (None, ""):
            return None
        ms = parse_duration_ms(value, "timeout")
        if ms <= 0:
            raise InvalidRequest('invalid parameter "timeout": must be positive', field="timeout")
        return ms / 1000.0

    def limit(self) -> int:
        value = self.get("limit")
        if value in (None, ""):
            return 0
        try:
            limit = int(value)
        except ValueError:
            raise InvalidRequest(
                f'invalid parameter "limit": cannot parse "{value}"', field="limit"
            ) from None
        if limit < 0:
            raise InvalidRequest(
                'invalid parameter "limit": must be a non-negative integer', field="limit"
            )
        return limit


def success(data_json: str, warnings: list[str] | None = None) -> Response:
    body = '{"status":"success","data":' + data_json
    if warnings:
        body += ',"warnings":' + json.dumps(warnings)
    return Response(body + "}", media_type="application/json")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _limit_rows(vector: Vector, rows: list[int], limit: int, warnings: list[str]) -> list[int]:
    if limit and len(rows) > limit:
        warnings.append(f"results truncated due to limit of {limit} series")
        return rows[:limit]
    return rows


def render_instant(result: Result, time_ms: int, limit: int, warnings: list[str]) -> str:
    value = result.value
    if isinstance(value, Vector):
        rows = _limit_rows(value, ordered_rows(value, result.order), limit, warnings)
        picked = Vector([value.labels[r] for r in rows], value.values[rows], value.present[rows])
        return '{"resultType":"vector","result":' + instant_vector_json(picked, time_ms) + "}"
    if isinstance(value, Scalar):
        return '{"resultType":"scalar","result":' + scalar_json(value, time_ms) + "}"
    if isinstance(value, String):
        return '{"resultType":"string","result":' + string_json(value, time_ms) + "}"
    assert isinstance(value, RangeSamples)
    series = [
        (
            ls,
            value.ts[value.offsets[i] : value.offsets[i + 1]],
            value.values[value.offsets[i] : value.offsets[i + 1]],
        )
        for i, ls in enumerate(value.labels)
    ]
    series.sort(key=lambda s: s[0])
    if limit and len(series) > limit:
        warnings.append(f"results truncated due to limit of {limit} series")
        series = series[:limit]
    return '{"resultType":"matrix","result":' + raw_matrix_json(series) + "}"


def render_range(result: Result, limit: int, warnings: list[str]) -> str:
    value = result.value
    assert isinstance(value, Vector)
    alive = np.flatnonzero(value.present.any(axis=1)).tolist()
    rows = sorted(alive, key=lambda r: value.labels[r])
    rows = _limit_rows(value, rows, limit, warnings)
    picked = Vector([value.labels[r] for r in rows], value.values[rows], value.present[rows])
    return '{"resultType":"matrix","result":' + matrix_json(picked, result.steps) + "}"


@get_and_post("/query", "Instant query", P_QUERY, P_TIME, P_TIMEOUT, P_LIMIT)
async def query(request: Request) -> Response:
    params = await Params.of(request)
    text = params.required("query")
    at = params.time("time", _now_ms())
    timeout, limit = params.timeout(), params.limit()
    service = runtime_of(request).query
    warnings: list[str] = []

    def answer() -> str:  # evaluate and render in one trip to a worker thread
        return render_instant(service.instant(text, at, timeout), at, limit, warnings)

    return success(await _run_query(service, text, 1, answer), warnings)


@get_and_post("/query_range", "Range query", P_QUERY, P_START, P_END, P_STEP, P_TIMEOUT, P_LIMIT)
async def query_range(request: Request) -> Response:
    params = await Params.of(request)
    text = params.required("query")
    start = parse_time_ms(params.required("start"), "start")
    end = parse_time_ms(params.required("end"), "end")
    step = parse_duration_ms(params.required("step"), "step")
    timeout, limit = params.timeout(), params.limit()
    service = runtime_of(request).query
    warnings: list[str] = []

    def answer() -> str:
        return render_range(service.range(text, start, end, step, timeout), limit, warnings)

    steps = max(1, (end - start) // step + 1) if step > 0 else 1
    return success(await _run_query(service, text, steps, answer), warnings)


async def _run_query(
    service: QueryService, text: str, steps: int, answer: Callable[[], str]
) -> str:
    """Small queries (a dashboard's single series) answer on the event loop; anything
    bigger in a worker thread, so it never holds up ingest."""
    if service.is_small(text, steps):
        return answer()
    return await asyncio.to_thread(answer)


def _selectors(texts: list[str]) -> list[list[Matcher]]:
    out = []
    for text in texts:
        expr = parse(text)
        if not isinstance(expr, pp.VectorSelector):
            raise InvalidRequest(
                f'invalid parameter "match[]": {text} is not a series selector', field="match[]"
            )
        out.append(selector_matchers(expr))
    return out


def _select(request: Request, texts: list[str]) -> dict[int, Any]:
    store = runtime_of(request).store
    found: dict[int, Any] = {}
    for matchers in _selectors(texts):
        found.update(store.select(matchers))
    return found


@get_and_post("/series", "Series matching selectors", P_MATCH, P_START, P_END, P_LIMIT)
async def series(request: Request) -> Response:
    params = await Params.of(request)
    texts = params.all("match[]")
    if not texts:
        raise InvalidRequest("no match[] parameter provided", field="match[]")
    _check_range(params)
    limit = params.limit()
    found = await asyncio.to_thread(_select, request, texts)
    label_sets = sorted(found.values())
    warnings: list[str] = []
    if limit and len(label_sets) > limit:
        label_sets = label_sets[:limit]
        warnings.append(f"results truncated due to limit of {limit} series")
    data = "[" + ",".join(json.dumps(dict(ls), ensure_ascii=False) for ls in label_sets) + "]"
    return success(data, warnings)


def _check_range(params: Params) -> None:
    start = params.time("start", MIN_TIME_MS)
    end = params.time("end", MAX_TIME_MS)
    if end < start:
        raise InvalidRequest(
            'invalid parameter "end": end timestamp must not be before start time', field="end"
        )


def _names_or_values(values: list[str], limit: int) -> Response:
    warnings: list[str] = []
    if limit and len(values) > limit:
        values = values[:limit]
        warnings.append(f"results truncated due to limit of {limit} values")
    return success(json.dumps(values, ensure_ascii=False), warnings)


@get_and_post("/labels", "Label names", P_MATCH, P_START, P_END, P_LIMIT)
async def labels(request: Request) -> Response:
    params = await Params.of(request)
    _check_range(params)
    texts = params.all("match[]")
    store = runtime_of(request).store

    def names() -> list[str]:
        if not texts:
            return store.label_names()
        found = _select(request, texts)
        return sorted({name for ls in found.values() for name, _ in ls})

    return _names_or_values(await asyncio.to_thread(names), params.limit())


@router.get(
    "/label/{name}/values",
    summary="Values of one label",
    openapi_extra={"parameters": [P_MATCH, P_START, P_END, P_LIMIT]},
)
async def label_values(request: Request, name: str) -> Response:
    params = await Params.of(request)
    _check_range(params)
    if name != "__name__" and not LABEL_NAME.match(name):
        raise InvalidRequest(f"invalid label name: {name!r}", field="name")
    texts = params.all("match[]")
    store = runtime_of(request).store

    def values() -> list[str]:
        if not texts:
            return store.label_values(name)
        found = _select(request, texts)
        return sorted({v for ls in found.values() for n, v in ls if n == name})

    return _names_or_values(await asyncio.to_thread(values), params.limit())


@router.get(
    "/metadata",
    summary="Metric metadata (type, help, unit)",
    openapi_extra={"parameters": [_param_doc("metric", "Only this metric."), P_LIMIT]},
)
async def metadata(request: Request) -> Response:
    # Hakon keeps no per-metric type or help text (remote_write metadata is not
    # stored), so, like a Prometheus that has scraped nothing, it reports none.
    return success("{}")


@router.get(
    "/query_exemplars",
    summary="Exemplars (none are stored)",
    openapi_extra={"parameters": [P_QUERY, P_START, P_END]},
)
async def query_exemplars(request: Request) -> Response:
    params = await Params.of(request)
    parse(params.required("query"))
    return success("[]")


@router.get("/status/buildinfo", summary="Build information")
async def buildinfo() -> Response:
    data = {
        "version": COMPATIBLE_PROMETHEUS,
        "revision": f"hakon-{__version__}",
        "branch": "hakon",
        "buildUser": "hakon",
        "buildDate": "",
        "goVersion": "",
        "application": "hakon",
        "hakonVersion": __version__,
    }
    return success(json.dumps(data))


@get_and_post("/format_query", "Pretty-print a PromQL expression", P_QUERY)
async def format_query(request: Request) -> Response:
    params = await Params.of(request)
    expr = parse(params.required("query"))
    return success(json.dumps(expr.prettify()))


@router.get(
    "/rules",
    summary="Alerting and recording rules, with health and last evaluation",
    openapi_extra={"parameters": [_param_doc("type", "alert or record: only those rules.")]},
)
async def rules(request: Request) -> Response:
    params = await Params.of(request)
    kind = params.get("type")
    if kind not in (None, "", "alert", "record"):
        raise InvalidRequest('invalid parameter "type": must be alert or record', field="type")
    data = runtime_of(request).rules.rules_data(kind or None)
    return success(json.dumps(data, ensure_ascii=False))


@router.get("/alerts", summary="Active (pending and firing) alerts")
async def alerts(request: Request) -> Response:
    return success(json.dumps(runtime_of(request).rules.alerts_data(), ensure_ascii=False))
