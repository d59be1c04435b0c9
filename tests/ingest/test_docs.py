"""docs/ingest.md stays true: its tables come from the collector table, its examples decode."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hakon.ingest.collectors import COLLECTORS, collectors_markdown
from hakon.ingest.edge import EdgeDecoder
from hakon.ingest.hakongo import decoders
from hakon.ingest.limits import IngestLimits

DOC = (Path(__file__).parents[2] / "docs" / "ingest.md").read_text()
EXAMPLE = re.compile(r"### Example: `(\w+)`\n\n```json\n(.*?)\n```", re.S)


def test_the_doc_carries_the_current_collector_tables() -> None:
    assert collectors_markdown() in DOC


@pytest.mark.parametrize("collector", [c.path for c in COLLECTORS])
def test_each_collector_has_a_complete_example_that_decodes(collector: str) -> None:
    examples = dict(EXAMPLE.findall(DOC))
    body = json.loads(examples[collector])
    body["collected_at"] = datetime.now(UTC).isoformat()
    kind = next(c.kind for c in COLLECTORS if c.path == collector)
    resource = body["resources"][0]
    assert all(n.field in resource for n in kind.numbers), "the example shows every number"
    assert all(s.field in resource for s in kind.states), "and every state"
    (cluster, context), batch = decoders(IngestLimits())[collector].decode(
        json.dumps(body).encode()
    )
    assert cluster == body["cluster_id"] and len(batch) > 0
    assert context["name"] == body["context"]["name"]
    names = {dict(batch.series_labels[i])["__name__"] for i in range(len(batch))}
    assert all(name.startswith(kind.prefix) or name.startswith("hakon_") for name in names)


def test_the_edge_example_decodes() -> None:
    block = DOC.split("## Edge node metrics", 1)[1].split("```json\n", 1)[1].split("\n```", 1)[0]
    body = json.loads(block)
    body["timestamp"] = datetime.now(UTC).isoformat()
    _, batch = EdgeDecoder(IngestLimits()).decode("edge-node-1", json.dumps(body).encode())
    assert len(batch) == 10  # 7 node figures, the heartbeat, 2 container figures
