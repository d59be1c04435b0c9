"""`hakon query`: run PromQL against a running Hakon and print a readable table.

It asks the server's Prometheus API (the data dir belongs to the server while
it runs), so what it prints is exactly what Grafana would get.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from typing import Any

from hakon.errors import InvalidRequest
from hakon.query.timeparse import parse_duration_ms, parse_time_ms


def resolve_time(text: str, now_s: float, field: str) -> float:
    """RFC 3339, Unix seconds, `now`, or `now-1h` / `now+5m`."""
    text = text.strip()
    if text.startswith("now"):
        rest = text[3:]
        if not rest:
            return now_s
        if rest[0] not in "+-":
            raise InvalidRequest(f"cannot parse {text!r} as a time", field=field)
        offset = parse_duration_ms(rest[1:], field) / 1000
        return now_s + offset if rest[0] == "+" else now_s - offset
    return parse_time_ms(text, field) / 1000


def fetch(url: str, token: str | None, path: str, params: dict[str, str]) -> dict[str, Any]:
    request = urllib.request.Request(
        url.rstrip("/") + "/prometheus/api/v1/" + path,
        data=urllib.parse.urlencode(params).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"}
        | ({"Authorization": f"Bearer {token}"} if token else {}),
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            body: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read())
        except ValueError:
            body = {"status": "error", "error": f"HTTP {exc.code}"}
    return body


def _labels(metric: dict[str, str]) -> str:
    name = metric.get("__name__", "")
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
    return f"{name}{{{inner}}}" if inner or not name else name


def _when(t: float) -> str:
    ms = round(t * 1000)
    stamp = datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return stamp + (f".{ms % 1000:03d}" if ms % 1000 else "") + "Z"


def table(data: dict[str, Any]) -> str:
    kind, result = data["resultType"], data["result"]
    if kind in ("scalar", "string"):
        return f"{result[1]}    @ {_when(float(result[0]))}"
    rows: list[tuple[str, str, str]] = []
    for series in result:
        name = _labels(series["metric"])
        points = series.get("values") or [series["value"]]
        for i, (t, v) in enumerate(points):
            rows.append((name if i == 0 else "", _when(float(t)), v))
    if not rows:
        return "(no data)"
    width = max(len("SERIES"), *(len(r[0]) for r in rows))
    lines = [f"{'SERIES':<{width}}  {'TIME':<24}  VALUE"]
    lines += [f"{s:<{width}}  {t:<24}  {v}" for s, t, v in rows]
    return "\n".join(lines)


def run(args: Any) -> int:
    """Entry point for `hakon query`; returns the process exit status."""
    import sys

    now = time.time()
    try:
        if args.start or args.end:
            start = resolve_time(args.start or "now-1h", now, "start")
            end = resolve_time(args.end or "now", now, "end")
            if args.step:
                step = parse_duration_ms(args.step, "step") / 1000
            else:
                step = max(1.0, math.ceil((end - start) / 250))
            path = "query_range"
            params = {"query": args.expr, "start": repr(start), "end": repr(end)}
            params["step"] = repr(step)
        else:
            at = resolve_time(args.time or "now", now, "time")
            path, params = "query", {"query": args.expr, "time": repr(at)}
    except InvalidRequest as exc:
        print(f"hakon: {exc.message}", file=sys.stderr)
        return 2
    try:
        body = fetch(args.url, args.token, path, params)
    except (urllib.error.URLError, OSError) as exc:
        print(f"hakon: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 1
    if body.get("status") != "success":
        kind = body.get("errorType", "error")
        print(f"hakon: {kind}: {body.get('error', body)}", file=sys.stderr)
        return 1
    for warning in body.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    print(table(body["data"]))
    return 0
