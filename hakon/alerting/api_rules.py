"""Alert rules managed through `/api/v1/alert-rules` (seed 002's shape), kept in the catalog.

Each rule is checked exactly as a rule file would be (it is rendered as one
and parsed by `rules.parse_rules`), so the API and files accept the same
rules. Rules are grouped by their `group` (default "api"); all rules of a
group share one evaluation interval.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import yaml

from hakon.alerting.rules import Group, RuleFileError, parse_rules
from hakon.errors import Conflict, InvalidRequest, NotFound
from hakon.store.catalog import Catalog

SOURCE = "api"
SCHEMA = [
    """CREATE TABLE IF NOT EXISTS alert_rules (
        id VARCHAR PRIMARY KEY, name VARCHAR NOT NULL UNIQUE, description VARCHAR NOT NULL,
        expression VARCHAR NOT NULL, duration VARCHAR NOT NULL, severity VARCHAR NOT NULL,
        labels VARCHAR NOT NULL, annotations VARCHAR NOT NULL, group_name VARCHAR NOT NULL,
        interval VARCHAR NOT NULL, created_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL)""",
]
FIELDS = ("name", "description", "expression", "duration", "severity", "labels", "annotations",
          "group", "interval")  # fmt: skip


def _group_yaml(rules: list[dict[str, Any]]) -> str:
    """The rules as a rule file, grouped; each rule's severity and description land in
    its labels and annotations, as an operator would write them."""
    groups: dict[str, dict[str, Any]] = {}
    for r in rules:
        group = groups.setdefault(r["group"], {"name": r["group"], "interval": r["interval"],
                                               "rules": []})  # fmt: skip
        if group["interval"] != r["interval"]:
            raise InvalidRequest(
                f"group {r['group']!r} evaluates every {group['interval']}; "
                f"rule {r['name']!r} asks for {r['interval']}",
                field="interval",
            )
        labels = dict(r["labels"])
        if r["severity"]:
            labels.setdefault("severity", r["severity"])
        annotations = dict(r["annotations"])
        if r["description"]:
            annotations.setdefault("description", r["description"])
        group["rules"].append({
            "alert": r["name"], "expr": r["expression"], "for": r["duration"],
            "labels": labels, "annotations": annotations,
        })  # fmt: skip
    return yaml.safe_dump({"groups": list(groups.values())}, sort_keys=False)


class ApiRules:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        catalog.ensure_schema(SCHEMA)

    def groups(self) -> list[Group]:
        rules = self.all()
        return parse_rules(_group_yaml(rules), SOURCE) if rules else []

    def all(self) -> list[dict[str, Any]]:
        rows = self.catalog.fetchall("SELECT * FROM alert_rules ORDER BY created_ms, id")
        return self.catalog.readable("alert_rules", rows, _row)

    def get(self, rule_id: str) -> dict[str, Any]:
        rows = self.catalog.fetchall("SELECT * FROM alert_rules WHERE id = ?", [rule_id])
        if not rows:
            raise NotFound(f"no alert rule {rule_id!r}")
        return _row(rows[0])

    def _check(self, rule: dict[str, Any], replacing: str | None = None) -> None:
        others = [r for r in self.all() if r["id"] != replacing]
        if any(r["name"] == rule["name"] for r in others):
            raise Conflict(
                f"an alert rule named {rule['name']!r} exists", details={"field": "name"}
            )
        try:
            parse_rules(_group_yaml([*others, rule]), SOURCE)
        except RuleFileError as exc:
            problem = exc.problems[0].split(": ", 1)[-1]
            field = next((f for f in ("expr", "for", "labels", "annotations") if f in problem),
                         "expression")  # fmt: skip
            names = {"expr": "expression", "for": "duration"}
            raise InvalidRequest(
                problem, field=names.get(field, field), details={"problems": exc.problems}
            ) from None

    def create(self, fields: dict[str, Any]) -> dict[str, Any]:
        now = int(time.time() * 1000)
        rule = {"id": "ar_" + uuid.uuid4().hex[:16], **fields, "created_ms": now, "updated_ms": now}
        self._check(rule)
        self.catalog.execute(
            "INSERT INTO alert_rules VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", _values(rule)
        )
        return self.get(rule["id"])

    def update(self, rule_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        rule = {**self.get(rule_id), **changes, "updated_ms": int(time.time() * 1000)}
        self._check(rule, replacing=rule_id)
        values = _values(rule)
        self.catalog.execute(
            "UPDATE alert_rules SET name = ?, description = ?, expression = ?, duration = ?, "
            "severity = ?, labels = ?, annotations = ?, group_name = ?, interval = ?, "
            "created_ms = ?, updated_ms = ? WHERE id = ?",
            [*values[1:], rule_id],
        )
        return self.get(rule_id)

    def delete(self, rule_id: str) -> None:
        self.get(rule_id)
        self.catalog.execute("DELETE FROM alert_rules WHERE id = ?", [rule_id])


def _values(r: dict[str, Any]) -> list[Any]:
    return [r["id"], r["name"], r["description"], r["expression"], r["duration"], r["severity"],
            json.dumps(r["labels"]), json.dumps(r["annotations"]), r["group"], r["interval"],
            r["created_ms"], r["updated_ms"]]  # fmt: skip


def _row(row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "id": row[0], "name": row[1], "description": row[2], "expression": row[3],
        "duration": row[4], "severity": row[5], "labels": json.loads(row[6]),
        "annotations": json.loads(row[7]), "group": row[8], "interval": row[9],
        "created_ms": row[10], "updated_ms": row[11],
    }  # fmt: skip
