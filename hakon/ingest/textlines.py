"""What the two line-oriented formats (text exposition, Influx) share: lines in, a batch out."""

from __future__ import annotations

import numpy as np

from hakon.errors import InvalidRequest
from hakon.ingest.series import SeriesRegistry, check_times
from hakon.store.interface import SampleBatch


def text_lines(body: bytes) -> list[str]:
    """The body's lines; invalid UTF-8 is refused naming its line."""
    try:
        return body.decode("utf-8").split("\n")
    except UnicodeDecodeError as exc:
        bad = body[: exc.start].count(b"\n") + 1
        raise InvalidRequest(f"line {bad}: invalid UTF-8", field=f"line {bad}") from None


class LineSamples:
    """Samples gathered line by line, remembering each one's line for error messages."""

    def __init__(self, registry: SeriesRegistry) -> None:
        self.registry = registry
        self.ids: list[int] = []
        self.times: list[int] = []
        self.values: list[float] = []
        self.lines: list[int] = []

    def add(self, sid: int, ts_ms: int, value: float, line: int) -> None:
        self.ids.append(sid)
        self.times.append(ts_ms)
        self.values.append(value)
        self.lines.append(line)
        if len(self.ids) > self.registry.limits.max_samples:
            self.registry.limits.check_sample_count(len(self.ids))

    def batch(self) -> SampleBatch:
        ts = np.array(self.times, np.int64)
        check_times(ts, self.registry.limits, lambda i: f"line {self.lines[i]}")
        return self.registry.batch(np.array(self.ids, np.int64), ts, np.array(self.values))
