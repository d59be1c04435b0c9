"""A deterministic data set for comparing Hakon's PromQL with Prometheus's.

Samples every 15 s with a per-series phase and jitter whose millisecond part
is never zero: no sample lies on a whole second, so none sits exactly on a
range or lookback boundary of a whole-second query (where Prometheus 2.42,
closed on the left, and Prometheus 3 / Hakon, open on the left, differ).
Counters start far above zero, so the zero-point clamp of `rate`, whose order
also changed between 2.x and 3, never decides a result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INTERVAL_MS = 15_000


@dataclass
class Series:
    labels: dict[str, str]
    ts: np.ndarray  # int64 ms
    values: np.ndarray


def _times(rng: np.random.Generator, start_ms: int, end_ms: int) -> np.ndarray:
    phase = int(rng.integers(0, 14)) * 1000 + int(rng.integers(101, 700))
    ts = np.arange(start_ms + phase, end_ms, INTERVAL_MS, dtype=np.int64)
    return ts + rng.integers(0, 250, len(ts))


def build(start_ms: int, end_ms: int, seed: int = 7) -> list[Series]:
    rng = np.random.default_rng(seed)
    out: list[Series] = []
    instances = ["i1", "i2", "i3"]
    for job in ("api", "web"):
        for inst in instances:
            for method in ("GET", "POST"):
                for code in ("200", "500"):
                    ts = _times(rng, start_ms, end_ms)
                    steps = rng.uniform(0, 40 if code == "200" else 3, len(ts))
                    values = 1000 + rng.uniform(0, 5000) + np.cumsum(np.round(steps))
                    if rng.random() < 0.3:  # a counter reset somewhere in the middle
                        at = int(rng.integers(len(ts) // 4, 3 * len(ts) // 4))
                        values[at:] -= values[at] - rng.uniform(0, 50)
                        values[at:] = np.round(values[at:])
                    labels = {"__name__": "http_requests_total", "job": job, "instance": inst}
                    labels |= {"method": method, "code": code}
                    out.append(Series(labels, ts, values))
            ts = _times(rng, start_ms, end_ms)
            up = (rng.random(len(ts)) > 0.05).astype(float)
            out.append(Series({"__name__": "up", "job": job, "instance": inst}, ts, up))
    for zone in ("z1", "z2", "z3"):
        for inst in instances[:2]:
            ts = _times(rng, start_ms, end_ms)
            walk = 40 + np.cumsum(rng.normal(0, 0.3, len(ts)))
            labels = {"__name__": "node_temperature_celsius", "instance": inst, "zone": zone}
            out.append(Series(labels, ts, np.round(walk, 3)))
    bounds = ["0.05", "0.1", "0.25", "0.5", "1", "+Inf"]
    for job in ("api", "web"):
        ts = _times(rng, start_ms, end_ms)
        per_step = rng.poisson(20, (len(ts), len(bounds))).astype(float)
        cumulative_le = np.cumsum(per_step, axis=1)  # buckets are cumulative in le
        counts = 500 + np.cumsum(cumulative_le, axis=0)
        for b, le in enumerate(bounds):
            labels = {"__name__": "request_duration_seconds_bucket", "job": job, "le": le}
            out.append(Series(labels, ts, counts[:, b]))
        total = counts[:, -1]
        out.append(Series({"__name__": "request_duration_seconds_count", "job": job}, ts, total))
        sums = 100 + np.cumsum(rng.uniform(1, 8, len(ts)))
        out.append(Series({"__name__": "request_duration_seconds_sum", "job": job}, ts, sums))
    # One series that starts late and one that stops early: lookback and extrapolation edges.
    middle = start_ms + (end_ms - start_ms) // 3
    ts = _times(rng, middle, end_ms)
    out.append(
        Series(
            {"__name__": "late_total", "job": "api"},
            ts,
            5000 + np.cumsum(rng.uniform(0, 9, len(ts))),
        )
    )
    ts = _times(rng, start_ms, end_ms - (end_ms - start_ms) // 3)
    out.append(Series({"__name__": "gone_gauge", "job": "api"}, ts, rng.uniform(0, 100, len(ts))))
    return out


def _labels_text(labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return labels["__name__"] + "{" + inner + "}"


def openmetrics(series: list[Series]) -> str:
    """All samples in time order (promtool appends per series in order), ending `# EOF`."""
    rows = []
    for s in series:
        name = _labels_text(s.labels)
        for t, v in zip(s.ts.tolist(), s.values.tolist(), strict=True):
            rows.append((t, f"{name} {v!r} {t / 1000:.3f}"))
    rows.sort(key=lambda r: r[0])
    return "\n".join(line for _, line in rows) + "\n# EOF\n"


def exposition_chunks(series: list[Series], lines_per_chunk: int = 50_000) -> list[str]:
    """The same samples as Prometheus text lines with millisecond timestamps, for Hakon."""
    lines = []
    for s in series:
        name = _labels_text(s.labels)
        lines.extend(
            f"{name} {v!r} {t}" for t, v in zip(s.ts.tolist(), s.values.tolist(), strict=True)
        )
    return [
        "\n".join(lines[i : i + lines_per_chunk]) + "\n"
        for i in range(0, len(lines), lines_per_chunk)
    ]
