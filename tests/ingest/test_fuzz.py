"""Decoders never crash: arbitrary bytes or JSON yield a batch or a clean refusal."""

from __future__ import annotations

import contextlib
import json
import time

import cramjam
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hakon.errors import InvalidRequest, PayloadTooLarge
from hakon.ingest.body import decode_body
from hakon.ingest.edge import EdgeDecoder
from hakon.ingest.exposition import ExpositionDecoder
from hakon.ingest.hakongo import decoders
from hakon.ingest.influx import InfluxDecoder
from hakon.ingest.limits import IngestLimits
from hakon.ingest.remote_write import RemoteWriteDecoder, encode_write_request
from hakon.store.interface import SampleBatch
from hakon.store.labels import series_id

LIMITS = IngestLimits(max_samples=100_000)
HAKONGO = decoders(LIMITS)
EDGE = EdgeDecoder(LIMITS)
REMOTE = RemoteWriteDecoder(LIMITS)
TEXT = ExpositionDecoder(LIMITS)
INFLUX = InfluxDecoder(LIMITS)
REFUSALS = (InvalidRequest, PayloadTooLarge)
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=30,
)


def _consistent(batch: SampleBatch) -> None:
    n = len(batch.timestamps)
    assert len(batch.values) == n and len(batch.sample_series) == n
    assert batch.timestamps.dtype == np.int64 and batch.values.dtype == np.float64
    for i in range(len(batch.series_ids)):  # every id is the stable id of its labels
        assert series_id(batch.series_labels[i]) == batch.series_ids[i]


def _each_decoder(body: bytes) -> None:
    now = int(time.time() * 1000)
    calls = [
        *(lambda d=d: d.decode(body)[1] for d in HAKONGO.values()),
        lambda: EDGE.decode("n1", body)[1],
        lambda: REMOTE.decode(body),
        lambda: TEXT.decode(body, now),
        lambda: TEXT.decode(body, now, openmetrics=True),
        lambda: INFLUX.decode(body, "ns", "db", now),
    ]
    for call in calls:
        with contextlib.suppress(REFUSALS):
            _consistent(call())


@FUZZ
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_never_crash_a_decoder(body: bytes) -> None:
    _each_decoder(body)


@FUZZ
@given(json_values)
def test_arbitrary_json_never_crashes_a_decoder(value: object) -> None:
    _each_decoder(json.dumps(value).encode())


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(["cluster_id", "context", "collected_at", "resources"]),
        json_values,
        max_size=4,
    )
)
def test_envelope_shaped_json_never_crashes(value: dict[str, object]) -> None:
    _each_decoder(json.dumps(value).encode())


@FUZZ
@given(st.binary(max_size=512), st.sampled_from(["gzip", "snappy", "deflate", "identity"]))
def test_decompression_never_crashes(body: bytes, encoding: str) -> None:
    with contextlib.suppress(REFUSALS):
        decode_body(body, encoding, ("gzip", "snappy", "deflate"), 1 << 16)


@FUZZ
@given(st.binary(min_size=1, max_size=400))
def test_truncated_and_mutated_remote_write_never_crash(noise: bytes) -> None:
    now = int(time.time() * 1000)
    good = encode_write_request([({"__name__": "m", "a": "b"}, [(now, 1.0)])] * 3)
    for body in (good[: len(noise) % len(good)], good + noise, noise + good):
        with contextlib.suppress(REFUSALS):
            _consistent(REMOTE.decode(body))


label_text = st.text(st.characters(codec="utf-8"), max_size=12)


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.dictionaries(
                st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), label_text, max_size=4
            ),
            st.lists(st.floats(allow_nan=False), min_size=1, max_size=3),
        ),
        max_size=8,
    )
)
def test_remote_write_reads_back_what_was_sent(series: list) -> None:
    """Whatever Prometheus could send is decoded to exactly its samples."""
    now = int(time.time() * 1000)
    payload = []
    for i, (labels, values) in enumerate(series):
        labels = {**labels, "__name__": f"m{i}"}
        payload.append((labels, [(now - j * 1000, v) for j, v in enumerate(values)]))
    decoded = REMOTE.decode(encode_write_request(payload))
    got = sorted(
        (decoded.series_labels[i], int(decoded.timestamps[i]), float(decoded.values[i]))
        for i in range(len(decoded))
    )  # series_labels aligns with sample_series: the batch passes the sample ids themselves
    want = sorted(
        (tuple(sorted((k, v) for k, v in labels.items() if v)), t, v)
        for labels, samples in payload
        for t, v in samples
    )
    assert got == want


def test_snappy_bomb_is_refused_before_inflating() -> None:
    bomb = bytes(cramjam.snappy.compress_raw(b"\0" * (1 << 22)))
    try:
        decode_body(bomb, "snappy", ("snappy",), 1 << 20)
    except PayloadTooLarge:
        return
    raise AssertionError("a body inflating past the limit must be refused")
