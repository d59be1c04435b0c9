"""The series registry of a decode worker: ids and keys kept, labels only reported."""

from __future__ import annotations

import dataclasses
import json

from hakon.ingest.collectors import COLLECTORS
from hakon.ingest.hakongo import HakonGoDecoder
from hakon.ingest.limits import IngestLimits
from hakon.ingest.series import SeriesRegistry
from hakon.store.labels import canonical, encode_labels, series_id


def test_a_worker_registry_reports_labels_and_keeps_only_ids() -> None:
    registry = SeriesRegistry(dataclasses.replace(IngestLimits(), series_cache_size=4))
    registry.keeps_labels = False
    journal: dict = {}
    registry.journal = journal
    first = [{"__name__": "up", "pod": f"p{i}"} for i in range(3)]
    ids = [registry.register(labels, "here", key=f"k{i}") for i, labels in enumerate(first)]
    assert ids == [series_id(canonical(labels)) for labels in first]
    assert journal == {
        sid: encode_labels(canonical(labels)) for sid, labels in zip(ids, first, strict=True)
    }
    assert registry.labels_by_id == {} and registry.ids == {f"k{i}": ids[i] for i in range(3)}
    # The bound still counts what was remembered: the fourth and fifth start afresh.
    registry.register({"__name__": "up", "pod": "p3"}, "here", key="k3")
    assert registry.generation == 0
    registry.register({"__name__": "up", "pod": "p4"}, "here", key="k4")
    assert registry.generation == 1 and registry.ids == {"k4": registry.ids["k4"]}


def test_a_registry_in_this_process_keeps_labels_for_its_batches() -> None:
    registry = SeriesRegistry(IngestLimits())
    sid = registry.register({"__name__": "up", "pod": "a"}, "here")
    assert registry.labels_of(sid) == (("__name__", "up"), ("pod", "a"))


def test_a_worker_reports_hakongo_series_as_the_texts_their_labels_encode_to() -> None:
    """The HakonGo decoder composes a worker's texts from cached pieces; they must be
    `encode_labels` of the labels a decoder in this process gives the same ids (escapes,
    non-ASCII values, containers and state series included)."""
    pods = next(c for c in COLLECTORS if c.path == "pods")
    body = json.dumps(
        {
            "cluster_id": 'c"1\\',
            "context": {"name": "ünï", "provider": {"name": "aws", "region": "eu\u2028"}},
            "collected_at": "2026-11-27T12:00:00Z",
            "resources": [
                {
                    "name": f"p{i}",
                    "namespace": "ns\t",
                    "node": "n1",
                    "phase": "Running",
                    "cpu_usage_cores": i,
                    "containers": [{"name": "app", "memory_working_set_bytes": i}],
                }
                for i in range(3)
            ],
        }
    ).encode()
    here = HakonGoDecoder(pods, IngestLimits())
    _, batch = here.decode(body)
    want = {
        int(sid): encode_labels(batch.series_labels[i])
        for i, sid in enumerate(batch.series_ids.tolist())
    }
    worker = HakonGoDecoder(pods, IngestLimits())
    worker.registry.keeps_labels = False
    journal: dict[int, bytes] = {}
    worker.registry.journal = journal
    _, reported = worker.decode(body)
    assert reported.series_ids.tolist() == batch.series_ids.tolist()
    assert journal == want and len(want) > 10
