"""Rule evaluation with Prometheus's semantics: alert states, `for`, `keep_firing_for`,
templated labels and annotations, ALERTS / ALERTS_FOR_STATE and recorded series.

One `GroupState` per rule group keeps its rules' active alerts between
evaluations. `evaluate(t)` runs every rule at time `t` against the query
engine and returns what changed (alerts that started firing or resolved, for
the notifier) and the samples to write back (recorded series, ALERTS,
ALERTS_FOR_STATE, and staleness markers for ALERTS series that ended).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from hakon.alerting.rules import Group, Rule
from hakon.errors import HakonError
from hakon.query.engine import Engine
from hakon.query.values import STALE_NAN_BITS, escape
from hakon.store.interface import SampleBatch
from hakon.store.labels import METRIC_NAME, Labels

RESOLVED_RETENTION_MS = 15 * 60_000  # resolved alerts stay listed (and notifiable) this long
STALE = float(np.array([STALE_NAN_BITS], dtype=np.uint64).view(np.float64)[0])


@dataclass
class Alert:
    labels: Labels  # sorted, with alertname
    annotations: dict[str, str]
    value: float
    active_at_ms: int
    state: str = "pending"  # pending, firing, inactive (resolved)
    fired_at_ms: int | None = None
    resolved_at_ms: int | None = None
    keep_firing_since_ms: int | None = None
    was_firing: bool = False  # restored as firing: its firing was already announced
    sent_ms: int | None = None  # last pushed to Alertmanager
    notified_ms: int | None = None  # last announced to webhooks (for repeats)


@dataclass
class RuleState:
    rule: Rule
    active: dict[Labels, Alert] = field(default_factory=dict)
    # True until the first evaluation after a start: new alerts then take back the
    # activeAt their ALERTS_FOR_STATE series recorded (Prometheus's for-state restore).
    restoring: bool = False
    health: str = "unknown"  # ok, err, unknown
    last_error: str = ""
    last_evaluation_ms: int | None = None
    evaluation_seconds: float = 0.0


@dataclass
class Outcome:
    """What one group evaluation produced."""

    fired: list[Alert] = field(default_factory=list)
    resolved: list[Alert] = field(default_factory=list)
    samples: list[tuple[Labels, float]] = field(default_factory=list)
    time_ms: int = 0

    def batch(self) -> SampleBatch | None:
        if not self.samples:
            return None
        labels = [dict(ls) for ls, _ in self.samples]
        return SampleBatch.from_series(
            labels,
            np.arange(len(labels)),
            np.full(len(labels), self.time_ms, dtype=np.int64),
            np.array([v for _, v in self.samples]),
        )


class GroupState:
    def __init__(self, group: Group, restore: bool = False) -> None:
        self.group = group
        self.rules = [RuleState(r, restoring=restore and r.kind == "alert") for r in group.rules]
        self._alert_series: set[Labels] = set()
        self.last_evaluation_ms: int | None = None
        self.evaluation_seconds = 0.0

    def adopt(self, previous: GroupState) -> None:
        """Keep alert state across a reload for rules that did not change."""
        old = {(s.rule.name, s.rule.expr, s.rule.kind): s for s in previous.rules}
        for state in self.rules:
            match = old.get((state.rule.name, state.rule.expr, state.rule.kind))
            if match is not None:
                state.active = match.active
                state.restoring = match.restoring
        self._alert_series = previous._alert_series

    def evaluate(
        self, engine: Engine, t_ms: int, write: Callable[[SampleBatch], None] | None = None
    ) -> Outcome:
        """Evaluate every rule at `t_ms`. With `write`, each recording rule's result is
        written before the next rule runs, so later rules see it (as in Prometheus);
        the ALERTS series are left in the outcome for the caller to write."""
        started = time.perf_counter()
        outcome = Outcome(time_ms=t_ms)
        for state in self.rules:
            rule_started = time.perf_counter()
            try:
                if state.rule.kind == "alert":
                    _evaluate_alert(state, engine, t_ms, outcome)
                else:
                    recorded = Outcome(time_ms=t_ms)
                    _evaluate_record(state, engine, t_ms, recorded)
                    batch = recorded.batch()
                    if write is not None and batch is not None:
                        write(batch)
                    elif batch is not None:
                        outcome.samples.extend(recorded.samples)
                state.health, state.last_error = "ok", ""
            except HakonError as exc:
                state.health, state.last_error = "err", exc.message
            state.last_evaluation_ms = t_ms
            state.evaluation_seconds = time.perf_counter() - rule_started
        self._alert_series_samples(outcome)
        self.last_evaluation_ms = t_ms
        self.evaluation_seconds = time.perf_counter() - started
        return outcome

    def _alert_series_samples(self, outcome: Outcome) -> None:
        current: set[Labels] = set()
        for state in self.rules:
            for alert in state.active.values():
                if alert.state == "inactive":
                    continue
                alerts = _with(alert.labels, METRIC_NAME, "ALERTS")
                alerts = _with(alerts, "alertstate", alert.state)
                for_state = _with(alert.labels, METRIC_NAME, "ALERTS_FOR_STATE")
                outcome.samples.append((alerts, 1.0))
                outcome.samples.append((for_state, alert.active_at_ms / 1000.0))
                current.update((alerts, for_state))
        for gone in self._alert_series - current:
            outcome.samples.append((gone, STALE))  # the series ended, as Prometheus marks it
        self._alert_series = current

    def alerts(self) -> list[tuple[Rule, Alert]]:
        return [(s.rule, a) for s in self.rules for a in s.active.values()]


def _with(labels: Labels, name: str, value: str) -> Labels:
    return tuple(sorted({**dict(labels), name: value}.items()))


def _evaluate_alert(state: RuleState, engine: Engine, t_ms: int, outcome: Outcome) -> None:
    rule = state.rule
    seen: dict[Labels, tuple[dict[str, str], float]] = {}
    for labels, value in engine.instant_rows(rule.expr, t_ms):
        labels.pop(METRIC_NAME, None)
        extra = {k: tpl.render(labels, value) for k, tpl in rule.labels.items()}
        final = {**labels, **{k: v for k, v in extra.items() if v}, "alertname": rule.name}
        for k, v in extra.items():
            if not v:
                final.pop(k, None)
        key = tuple(sorted(final.items()))
        if key in seen:
            raise HakonError(
                "vector contains metrics with the same labelset after applying alert labels"
            )
        annotations = {k: tpl.render(labels, value) for k, tpl in rule.annotations.items()}
        seen[key] = (annotations, value)
    for key, (annotations, value) in seen.items():
        alert = state.active.get(key)
        if alert is not None and alert.state != "inactive":
            alert.value, alert.annotations = value, annotations
            alert.keep_firing_since_ms = None
        else:
            alert = state.active[key] = Alert(key, annotations, value, active_at_ms=t_ms)
            if state.restoring:
                _restore(alert, engine, t_ms)
    state.restoring = False
    for key, alert in list(state.active.items()):
        if key in seen:
            if alert.state == "pending" and t_ms - alert.active_at_ms >= rule.for_ms:
                alert.state, alert.fired_at_ms = "firing", t_ms
                if not alert.was_firing:
                    outcome.fired.append(alert)
            continue
        if alert.state == "pending" or (
            alert.resolved_at_ms is not None and t_ms - alert.resolved_at_ms > RESOLVED_RETENTION_MS
        ):
            del state.active[key]
            continue
        if alert.state == "firing":
            if rule.keep_firing_for_ms > 0:
                if alert.keep_firing_since_ms is None:
                    alert.keep_firing_since_ms = t_ms
                if t_ms - alert.keep_firing_since_ms < rule.keep_firing_for_ms:
                    continue
            alert.state, alert.resolved_at_ms = "inactive", t_ms
            outcome.resolved.append(alert)


OUTAGE_TOLERANCE_MS = 3_600_000  # how old a for-state may be and still be restored


def _selector(name: str, labels: Labels, extra: str = "") -> str:
    inner = ", ".join(f'{k}="{escape(v)}"' for k, v in labels)
    return f"{name}{{{inner}{', ' + extra if extra else ''}}}"


def _restore(alert: Alert, engine: Engine, t_ms: int) -> None:
    """Take back the alert's activeAt from ALERTS_FOR_STATE written before a restart,
    and whether it was firing (so its firing is not announced twice)."""
    window = f"[{OUTAGE_TOLERANCE_MS // 1000}s]"
    before = t_ms - 1  # this evaluation has written nothing yet
    for_state = engine.instant_rows(
        f"last_over_time({_selector('ALERTS_FOR_STATE', alert.labels)}{window})", before
    )
    if not for_state:
        return
    active_at_ms = round(for_state[0][1] * 1000)
    if 0 < active_at_ms <= t_ms:
        alert.active_at_ms = active_at_ms
    firing = _selector("ALERTS", alert.labels, 'alertstate="firing"')
    alert.was_firing = bool(engine.instant_rows(f"last_over_time({firing}{window})", before))
    if alert.was_firing:
        alert.notified_ms = t_ms  # announced before the restart; repeats count from now


def _evaluate_record(state: RuleState, engine: Engine, t_ms: int, outcome: Outcome) -> None:
    rule = state.rule
    out: dict[Labels, float] = {}
    for labels, value in engine.instant_rows(rule.expr, t_ms):
        labels[METRIC_NAME] = rule.name
        for k, tpl in rule.labels.items():
            rendered = tpl.render(labels, value)
            if rendered:
                labels[k] = rendered
            else:
                labels.pop(k, None)
        key = tuple(sorted(labels.items()))
        if key in out:
            raise HakonError(
                "vector contains metrics with the same labelset after applying rule labels"
            )
        out[key] = value
    outcome.samples.extend(out.items())


def evaluation_times(interval_ms: int, start_ms: int, end_ms: int) -> Sequence[int]:
    """The aligned evaluation times (multiples of the interval) in [start, end]."""
    first = -(-start_ms // interval_ms) * interval_ms
    return range(first, end_ms + 1, interval_ms)
