"""The remote_write decoder's fast path agrees with a plain parse of every request."""

from __future__ import annotations

import time

import numpy as np
import pytest

from hakon.ingest.limits import IngestLimits
from hakon.ingest.remote_write import RemoteWriteDecoder, TimeSeries, encode_write_request

NOW = int(time.time() * 1000)


def _series(i: int, long: bool = False) -> dict[str, str]:
    labels = {"__name__": f"m_{i % 7}", "job": "j", "instance": f"host-{i}:9100"}
    if long:  # a label prefix past ByteKeyTable.MAX_KEY
        labels["description"] = "x" * 300
    return labels


def _request(rows: list[tuple[dict[str, str], int, float]]) -> bytes:
    return encode_write_request([(labels, [(t, v)]) for labels, t, v in rows])


def _decoded(decoder: RemoteWriteDecoder, body: bytes) -> list[tuple[tuple, int, float]]:
    batch = decoder.decode(body)
    return sorted(
        (tuple(batch.series_labels[i]), int(batch.timestamps[i]), float(batch.values[i]))
        for i in range(len(batch))
    )


def _expected(rows: list[tuple[dict[str, str], int, float]]) -> list[tuple[tuple, int, float]]:
    return sorted((tuple(sorted(labels.items())), t, v) for labels, t, v in rows)


def _rows(n: int, round_: int, long_every: int = 0) -> list[tuple[dict[str, str], int, float]]:
    return [
        (_series(i, long=bool(long_every) and i % long_every == 0), NOW - 1000 + round_, i * 0.5)
        for i in range(n)
    ]


@pytest.mark.parametrize("collide", [False, True])
def test_repeated_requests_decode_exactly(collide: bool) -> None:
    """New series, known series, long prefixes, zero values, repeats in one request;
    with every prefix hashing alike too (all but one go through the bytes dict)."""
    decoder = RemoteWriteDecoder(IngestLimits())
    if collide:
        table = decoder._prefixes
        table._hash = lambda words, lengths: np.full(len(lengths), 7, np.uint64)  # type: ignore[method-assign]
    for round_ in range(3):
        rows = _rows(300, round_, long_every=25)
        rows += rows[:5]  # the same series twice in one request (last write wins later)
        rows[7] = (rows[7][0], rows[7][1], 0.0)  # proto3 leaves a zero value out
        assert _decoded(decoder, _request(rows)) == _expected(rows)
    assert len(decoder._prefixes) == (1 if collide else 288)


def test_requests_with_metadata_take_the_joined_layout() -> None:
    """A WriteRequest carrying metadata (field 3) after its series still decodes."""
    decoder = RemoteWriteDecoder(IngestLimits())
    rows = _rows(50, 0)
    metadata = b"\x1a\x05\x08\x01\x12\x01m"  # MetricMetadata{type: COUNTER, family: "m"}
    for body in (_request(rows) + metadata, metadata + _request(rows)):
        assert _decoded(decoder, body) == _expected(rows)


def test_a_prefix_that_is_not_labels_only_takes_the_general_path() -> None:
    """A series whose bytes before the last sample hold another sample."""
    decoder = RemoteWriteDecoder(IngestLimits())
    ts = TimeSeries()
    ts.labels.add(name="__name__", value="two")
    ts.samples.add(timestamp=NOW - 2000, value=1.0)
    ts.samples.add(timestamp=NOW - 1000, value=2.0)
    raw = ts.SerializeToString()
    body = b"\x0a" + bytes([len(raw)]) + raw
    for _ in range(2):
        name = (("__name__", "two"),)
        assert _decoded(decoder, body) == [(name, NOW - 2000, 1.0), (name, NOW - 1000, 2.0)]
