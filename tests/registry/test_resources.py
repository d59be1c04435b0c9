"""The generic resource mechanism on a real catalog file: round trips, persistence,
versions, selectors and sorting, independent of HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hakon.errors import Conflict, InvalidRequest, NotFound
from hakon.registry.edge import NODE
from hakon.registry.fleets import FLEET, INSTANCE
from hakon.registry.resources import (
    Registry,
    matches,
    page_of,
    parse_if_match,
    parse_selector,
    parse_sort,
    public,
)
from hakon.store.catalog import Catalog

SERVER_FIELDS = {"id", "status", "resource_version", "created_at", "updated_at",
                 "last_heartbeat"}  # fmt: skip

names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,30}", fullmatch=True)
text = st.text(max_size=40)
tags = st.dictionaries(st.text(min_size=1, max_size=20), text, max_size=5)
fleets = st.fixed_dictionaries(
    {"name": names, "capacity": st.integers(1, 100_000)},
    optional={"description": text, "instance_type": text.map(lambda t: t[:128]), "tags": tags},
)
quantities = st.sampled_from(["4", "500m", "8Gi", "1.5", "100M", "2e3"])
nodes = st.fixed_dictionaries(
    {"name": names, "address": st.from_regex(r"[a-z0-9.]{1,40}", fullmatch=True)},
    optional={
        "capabilities": st.lists(text, max_size=5),
        "resources": st.fixed_dictionaries(
            {}, optional={"cpu": quantities, "memory": quantities, "storage": quantities}
        ),
        "labels": tags,
    },
)


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(Catalog(tmp_path / "catalog.duckdb"), [FLEET, INSTANCE, NODE])


def _defaults(kind: str) -> dict[str, Any]:
    return {"fleet": {"description": "", "instance_type": "", "tags": {}},
            "node": {"capabilities": [], "resources": {}, "labels": {}}}[kind]  # fmt: skip


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=st.one_of(fleets.map(lambda s: ("fleet", s)), nodes.map(lambda s: ("node", s))))
def test_what_is_created_is_read_back(registry: Registry, spec: tuple[str, dict[str, Any]]) -> None:
    kind, sent = spec
    sent = {**sent, "name": f"{sent['name']}-{len(registry.all(kind))}"}
    record = registry.create(kind, sent)
    shown = public(registry.get(kind, record.id))
    assert {k: v for k, v in shown.items() if k not in SERVER_FIELDS} == {
        **_defaults(kind),
        **sent,
    }


def test_records_survive_reopening_the_catalog(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.duckdb")
    first = Registry(catalog, [FLEET, INSTANCE])
    fleet = first.create("fleet", {"name": "kept", "capacity": 2, "tags": {"a": "b"}})
    first.update("fleet", fleet.id, {"capacity": 3})
    inst = first.create("instance", {"name": "i", "fleet_id": fleet.id})
    first.set_state("instance", inst.id, {"status": "running"})
    gone = first.create("fleet", {"name": "gone", "capacity": 1})
    first.delete("fleet", gone.id)
    catalog.close()
    again = Registry(Catalog(tmp_path / "catalog.duckdb"), [FLEET, INSTANCE])
    assert public(again.get("fleet", fleet.id)) == public(first.get("fleet", fleet.id))
    assert again.get("fleet", fleet.id).version == 2
    assert again.get("instance", inst.id).state["status"] == "running"
    with pytest.raises(NotFound):
        again.get("fleet", gone.id)


def test_a_refused_write_changes_nothing(registry: Registry) -> None:
    fleet = registry.create("fleet", {"name": "f", "capacity": 1})
    registry.create("instance", {"name": "i", "fleet_id": fleet.id})
    before = public(registry.get("fleet", fleet.id))
    with pytest.raises(Conflict):
        registry.update("fleet", fleet.id, {"capacity": 0 + 0 or 1, "name": "f"},
                        expected_version=7)  # fmt: skip
    with pytest.raises(InvalidRequest) as bad:
        registry.update("fleet", fleet.id, {"capacity": "many"})
    assert bad.value.details["field"] == "capacity"
    with pytest.raises(Conflict):
        registry.delete("fleet", fleet.id)
    assert public(registry.get("fleet", fleet.id)) == before
    unchanged = registry.update("fleet", fleet.id, {"capacity": 1})
    assert unchanged.version == 1  # no change, no new version


def test_events_are_published_after_each_change(tmp_path: Path) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    registry = Registry(Catalog(tmp_path / "c.duckdb"), [FLEET, INSTANCE, NODE],
                        lambda e, d: events.append((e, d)))  # fmt: skip
    fleet = registry.create("fleet", {"name": "f", "capacity": 1})
    registry.update("fleet", fleet.id, {"capacity": 2})
    node = registry.create("node", {"name": "n", "address": "h"})
    registry.delete("node", node.id)
    with pytest.raises(Conflict):
        registry.create("fleet", {"name": "f", "capacity": 1})
    assert [e for e, _ in events] == ["fleet.created", "fleet.updated", "node.registered",
                                      "node.deleted"]  # fmt: skip
    assert events[1][1]["fleet_id"] == fleet.id and events[1][1]["capacity"] == 2


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("env=prod", {"env": "prod"}, True),
        ("env=prod", {"env": "dev"}, False),
        ("env==prod", {"env": "prod"}, True),
        ("env!=prod", {}, True),
        ("env!=prod", {"env": "prod"}, False),
        ("gpu", {"gpu": ""}, True),
        ("gpu", {}, False),
        ("!gpu", {}, True),
        ("env=prod, team=api", {"env": "prod", "team": "api"}, True),
        ("env=prod,team=api", {"env": "prod"}, False),
        ("", {"anything": "x"}, True),
        ("env=", {"env": ""}, True),
    ],
)
def test_label_selectors(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert matches(parse_selector(selector), labels) is expected


@pytest.mark.parametrize("bad", ["=prod", "!", "a b=c", "!=x"])
def test_bad_selectors_name_the_parameter(bad: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        parse_selector(bad)
    assert err.value.details["field"] == "labels"


@pytest.mark.parametrize(
    ("text", "expected"),
    [(None, ("created_at", False)), ("name", ("name", False)), ("-name", ("name", True)),
     ("updated_at:desc", ("updated_at", True)), ("status:asc", ("status", False))],
)  # fmt: skip
def test_sort_parameter(text: str | None, expected: tuple[str, bool]) -> None:
    assert parse_sort(text) == expected


def test_pages_and_if_match() -> None:
    items = list(range(45))
    assert page_of(items, 3, 20) == (items[40:], {"total": 45, "page": 3, "limit": 20,
                                                   "pages": 3})  # fmt: skip
    assert page_of(items, 4, 20)[0] == []
    assert page_of([], 1, 20)[1]["pages"] == 0
    assert [parse_if_match(h) for h in ('"3"', 'W/"4"', "5", "*", None)] == [3, 4, 5, None, None]
    with pytest.raises(InvalidRequest):
        parse_if_match('"abc"')


def test_a_renamed_resource_frees_its_old_name(registry: Registry) -> None:
    fleet = registry.create("fleet", {"name": "old", "capacity": 1})
    registry.update("fleet", fleet.id, {"name": "new"})
    registry.create("fleet", {"name": "old", "capacity": 1})  # free again
    with pytest.raises(Conflict):
        registry.create("fleet", {"name": "new", "capacity": 1})
    registry.delete("fleet", fleet.id)
    registry.create("fleet", {"name": "new", "capacity": 1})
