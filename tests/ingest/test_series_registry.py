"""The series registry of a decode worker: ids and keys kept, labels only reported."""

from __future__ import annotations

import dataclasses

from hakon.ingest.limits import IngestLimits
from hakon.ingest.series import SeriesRegistry
from hakon.store.labels import canonical, series_id


def test_a_worker_registry_reports_labels_and_keeps_only_ids() -> None:
    registry = SeriesRegistry(dataclasses.replace(IngestLimits(), series_cache_size=4))
    registry.keeps_labels = False
    journal: dict = {}
    registry.journal = journal
    first = [{"__name__": "up", "pod": f"p{i}"} for i in range(3)]
    ids = [registry.register(labels, "here", key=f"k{i}") for i, labels in enumerate(first)]
    assert ids == [series_id(canonical(labels)) for labels in first]
    assert journal == {sid: canonical(labels) for sid, labels in zip(ids, first, strict=True)}
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
