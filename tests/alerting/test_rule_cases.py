"""Data-driven rule tests in the spirit of `promtool test rules`.

Each `cases/*.yaml` gives input series (promqltest value notation), a rule
file under `rules:`, and expectations: `alert_rule_test` lists the alerts
firing at an evaluation time (like promtool), `state_test` an alert's state,
`notifications` when alerts fired or resolved, and `record_test` a PromQL
query over what recording rules and ALERTS wrote back. Groups are evaluated
at every multiple of their interval from 0, against the real store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from hakon.alerting.evaluator import GroupState, evaluation_times
from hakon.alerting.rules import parse_rules
from hakon.query.engine import Engine
from hakon.store.catalog import Catalog
from hakon.store.engine import Store, StoreOptions
from hakon.store.interface import RAW, SampleBatch
from tests.query.promqltest import MISSING, expand_values, parse_duration, parse_labels

CASES = sorted((Path(__file__).parent / "cases").glob("*.yaml"))
FOREVER = 10**14


def _store(path: Path) -> Store:
    options = StoreOptions(
        retention_ms={RAW: FOREVER, 300_000: FOREVER, 3_600_000: FOREVER},
        maintenance_interval_s=3600,
    )
    return Store(path, Catalog.open_in(path), options).open()


def _load(store: Store, case: dict[str, Any]) -> None:
    interval = parse_duration(str(case.get("interval", "1m")))
    labels, index, ts, values = [], [], [], []
    for i, series in enumerate(case.get("input_series", [])):
        labels.append(parse_labels(series["series"]))
        for k, v in enumerate(expand_values(str(series["values"]).split())):
            if v is not MISSING:
                index.append(i)
                ts.append(k * interval)
                values.append(v)
    if index:
        store.append(SampleBatch.from_series(labels, index, ts, values))


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_rule_case(path: Path, tmp_path: Path) -> None:
    case = yaml.safe_load(path.read_text())
    store = _store(tmp_path / "data")
    try:
        _load(store, case)
        restore = bool(case.get("restore"))  # evaluate as the first run after a restart
        rule_groups = parse_rules(yaml.safe_dump(case["rules"]), path.name)
        groups = [GroupState(g, restore=restore) for g in rule_groups]
        engine = Engine(store)
        checks = [*case.get("alert_rule_test", []), *case.get("state_test", []),
                  *case.get("record_test", [])]  # fmt: skip
        end = max(parse_duration(str(c["eval_time"])) for c in checks)
        fired: list[tuple[int, str, dict[str, str]]] = []
        resolved: list[tuple[int, str, dict[str, str]]] = []
        by_time: dict[int, list[dict[str, Any]]] = {}
        for c in checks:
            by_time.setdefault(parse_duration(str(c["eval_time"])), []).append(c)
        begin = parse_duration(str(case.get("start", "0")))  # e.g. the restart
        times = sorted(
            {t for g in groups for t in evaluation_times(g.group.interval_ms, begin, end)}
        )
        for t in times:
            for g in groups:
                if t % g.group.interval_ms:
                    continue
                outcome = g.evaluate(engine, t, store.append)
                for rule_state in g.rules:
                    assert rule_state.health != "err", f"{path.name} @ {t}: {rule_state.last_error}"
                batch = outcome.batch()
                if batch is not None:
                    store.append(batch)
                fired += [(t, dict(a.labels)["alertname"], dict(a.labels)) for a in outcome.fired]
                resolved += [
                    (t, dict(a.labels)["alertname"], dict(a.labels)) for a in outcome.resolved
                ]
            for check in by_time.get(t, []):
                _check(path.name, t, check, groups, engine)
        for expected in case.get("notifications", []):
            when = parse_duration(str(expected["time"]))
            events = fired if expected["event"] == "firing" else resolved
            got = [
                labels for t, name, labels in events if t == when and name == expected["alertname"]
            ]
            assert got == [expected.get("labels", got[0] if got else {})], (
                f"{path.name}: {expected} not among {events}"
            )
        want_counts = case.get("notification_counts")
        if want_counts:
            assert {"firing": len(fired), "resolved": len(resolved)} == want_counts
    finally:
        store.close()


def _check(
    name: str, t: int, check: dict[str, Any], groups: list[GroupState], engine: Engine
) -> None:
    where = f"{name} @ {check['eval_time']}"
    if "expr" in check:  # record_test
        result = engine.instant(check["expr"], t).value
        got = {
            tuple(sorted(result.labels[r])): float(result.values[r, 0])  # type: ignore[union-attr]
            for r in np.flatnonzero(result.present[:, 0])  # type: ignore[union-attr]
        }
        want = {
            tuple(sorted(parse_labels(s["labels"]).items())): float(s["value"])
            for s in check.get("exp_samples", [])
        }
        assert got == pytest.approx(want), f"{where}: {got} != {want}"
        return
    alerts = [
        (rule, alert)
        for g in groups
        for rule, alert in g.alerts()
        if rule.name == check["alertname"]
    ]
    if "state" in check:  # state_test
        states = sorted(a.state for _, a in alerts if a.state != "inactive") or ["absent"]
        assert states == [check["state"]], f"{where}: states {states}"
        return
    firing = sorted(
        (
            {k: v for k, v in a.labels if k != "alertname"},
            a.annotations,
        )
        for _, a in alerts
        if a.state == "firing"
    )  # type: ignore[type-var]
    want = sorted(
        (
            {str(k): str(v) for k, v in (e.get("exp_labels") or {}).items()},
            {str(k): str(v) for k, v in (e.get("exp_annotations") or {}).items()},
        )
        for e in check.get("exp_alerts") or []
    )  # type: ignore[type-var]
    assert firing == want, f"{where}: firing {firing} != {want}"
