"""A cluster's scrapes decoded one after another by one decoder (which remembers
the last scrape's resources and their rows) give what a fresh decoder gives
for each: resources reordered, added, dropped, repeated, and containers
renamed or moved between pods included."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hakon.errors import InvalidRequest
from hakon.ingest.collectors import COLLECTORS
from hakon.ingest.hakongo import HakonGoDecoder
from hakon.ingest.limits import IngestLimits

PODS = next(c for c in COLLECTORS if c.path == "pods")
NOW = "2026-11-27T12:00:00Z"

pod = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["a", "b", "c", "d"]),
        "namespace": st.sampled_from(["x", "y"]),
        "cpu_usage_cores": st.integers(0, 9),
        "containers": st.lists(
            st.fixed_dictionaries(
                {
                    "name": st.sampled_from(["app", "side"]),
                    "memory_working_set_bytes": st.integers(0, 99),
                }
            ),
            max_size=2,
        ),
    }
)


def _body(pods: list[dict[str, Any]]) -> bytes:
    return json.dumps(
        {
            "cluster_id": "c1",
            "context": {"name": "one"},
            "collected_at": NOW,
            "resources": [{**p, "node": "n1"} for p in pods],
        }
    ).encode()


def _outcome(decoder: HakonGoDecoder, body: bytes) -> Any:
    try:
        _, batch = decoder.decode(body)
    except InvalidRequest as exc:
        return ("error", exc.details.get("field"))
    labels = [batch.series_labels[i] for i in range(len(batch.series_ids))]
    by_series = {tuple(labels[i]): float(v) for i, v in enumerate(batch.values.tolist())}
    assert np.array_equal(batch.series_ids, batch.sample_series)
    return ("ok", by_series)


@settings(max_examples=150, deadline=None)
@given(scrapes=st.lists(st.lists(pod, max_size=5), min_size=1, max_size=6))
def test_a_cluster_decoded_scrape_after_scrape_matches_a_fresh_decoder(scrapes: list) -> None:
    limits = IngestLimits()
    long_lived = HakonGoDecoder(PODS, limits)
    for pods in scrapes:
        for repeat in range(2):  # the second time the resources match the last scrape's
            body = _body(pods)
            assert _outcome(long_lived, body) == _outcome(HakonGoDecoder(PODS, limits), body), (
                pods,
                repeat,
            )
