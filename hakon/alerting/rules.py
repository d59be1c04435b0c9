"""Prometheus rule files: parsed, checked the way `promtool check rules` checks them.

A file holds `groups:`, each with a `name`, an optional `interval` and `limit`,
and `rules`: alerting rules (`alert`, `expr`, `for`, `keep_firing_for`,
`labels`, `annotations`) and recording rules (`record`, `expr`, `labels`).
Every problem found is reported with its file, group and rule, and a file
with any problem loads nothing.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hakon.alerting.templates import Template, TemplateError
from hakon.errors import InvalidRequest
from hakon.query.engine import parse
from hakon.query.timeparse import parse_duration_ms

METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
GROUP_KEYS = {"name", "interval", "limit", "rules", "query_offset"}
RULE_KEYS = {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
DEFAULT_INTERVAL_MS = 60_000


@dataclass(frozen=True)
class Rule:
    name: str  # the alert name, or the recorded metric name
    expr: str
    kind: str  # "alert" or "record"
    for_ms: int = 0
    keep_firing_for_ms: int = 0
    labels: dict[str, Template] = field(default_factory=dict)
    annotations: dict[str, Template] = field(default_factory=dict)


@dataclass(frozen=True)
class Group:
    name: str
    file: str
    interval_ms: int
    rules: tuple[Rule, ...]
    limit: int = 0


class RuleFileError(ValueError):
    """Every problem of one or more rule files, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def expand_paths(patterns: list[str]) -> list[str]:
    """Rule file paths from globs, sorted; a pattern matching nothing is an error."""
    out: list[str] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern))
        if not matches:
            raise RuleFileError([f"{pattern}: no rule file matches"])
        out.extend(matches)
    return out


def load_files(patterns: list[str]) -> list[Group]:
    problems: list[str] = []
    groups: list[Group] = []
    for path in expand_paths(patterns):
        try:
            groups.extend(load_file(path))
        except RuleFileError as exc:
            problems.extend(exc.problems)
    if problems:
        raise RuleFileError(problems)
    return groups


def load_file(path: str) -> list[Group]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise RuleFileError([f"{path}: {exc.strerror}"]) from None
    return parse_rules(text, path)


def parse_rules(text: str, source: str) -> list[Group]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RuleFileError([f"{source}: not valid YAML: {exc}"]) from None
    if doc is None:
        return []
    if not isinstance(doc, dict) or set(doc) - {"groups"}:
        raise RuleFileError([f"{source}: a rule file is a mapping with one key, groups"])
    problems: list[str] = []
    groups: list[Group] = []
    seen: set[str] = set()
    for i, raw in enumerate(doc.get("groups") or []):
        where = f"{source}: group {i + 1}"
        if not isinstance(raw, dict):
            problems.append(f"{where}: a group must be a mapping")
            continue
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            problems.append(f"{where}: groupname must not be empty")
            continue
        where = f"{source}: group {name!r}"
        if name in seen:
            problems.append(f"{where}: groupname must be unique within a file")
        seen.add(name)
        unknown = set(raw) - GROUP_KEYS
        if unknown:
            problems.append(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        interval = _duration(raw.get("interval"), f"{where}: interval", problems)
        rules = []
        for j, rule in enumerate(raw.get("rules") or []):
            parsed = _parse_rule(rule, f"{where}, rule {j + 1}", problems)
            if parsed is not None:
                rules.append(parsed)
        limit = raw.get("limit", 0)
        if not isinstance(limit, int) or limit < 0:
            problems.append(f"{where}: limit must be a non-negative integer")
            limit = 0
        groups.append(Group(name, source, interval or DEFAULT_INTERVAL_MS, tuple(rules), limit))
    if problems:
        raise RuleFileError(problems)
    return groups


def _duration(value: Any, where: str, problems: list[str]) -> int:
    if value is None:
        return 0
    try:
        ms = parse_duration_ms(str(value), "duration")
    except InvalidRequest:
        problems.append(f"{where}: {value!r} is not a duration")
        return 0
    if ms < 0:
        problems.append(f"{where}: must not be negative")
    return ms


def _parse_rule(raw: Any, where: str, problems: list[str]) -> Rule | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: a rule must be a mapping")
        return None
    unknown = set(raw) - RULE_KEYS
    if unknown:
        problems.append(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    alert, record = raw.get("alert"), raw.get("record")
    if bool(alert) == bool(record):
        problems.append(f"{where}: one of 'record' or 'alert' must be set, not both")
        return None
    kind = "alert" if alert else "record"
    name = str(alert or record)
    where = f"{where} ({kind} {name!r})"
    if kind == "record":
        if not METRIC_NAME.match(name):
            problems.append(f"{where}: invalid recording rule name {name!r}")
        for key in ("for", "keep_firing_for", "annotations"):
            if key in raw:
                problems.append(f"{where}: invalid field '{key}' in recording rule")
    expr = raw.get("expr")
    if not isinstance(expr, str) or not expr.strip():
        problems.append(f"{where}: field 'expr' must be set in rule")
        return None
    try:
        parse(expr)
    except InvalidRequest as exc:
        problems.append(f"{where}: could not parse expression: {exc.message}")
    labels = _templates(raw.get("labels"), f"{where}: labels", problems, names=True)
    annotations = _templates(raw.get("annotations"), f"{where}: annotations", problems)
    return Rule(
        name=name,
        expr=expr,
        kind=kind,
        for_ms=_duration(raw.get("for"), f"{where}: for", problems),
        keep_firing_for_ms=_duration(
            raw.get("keep_firing_for"), f"{where}: keep_firing_for", problems
        ),
        labels=labels,
        annotations=annotations,
    )


def _templates(
    raw: Any, where: str, problems: list[str], names: bool = False
) -> dict[str, Template]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a mapping")
        return {}
    out: dict[str, Template] = {}
    for key, value in raw.items():
        key = str(key)
        if names and (not LABEL_NAME.match(key) or key == "__name__"):
            problems.append(f"{where}: invalid label name {key!r}")
            continue
        try:
            out[key] = Template(str(value))
        except TemplateError as exc:
            problems.append(f"{where}: {key}: {exc}")
    return out
