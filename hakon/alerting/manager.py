"""Scheduled evaluation of the loaded rule groups, and what they show.

APScheduler runs each group as its own job at its interval, at aligned times
(multiples of the interval since the epoch, as evaluation timestamps too).
A group's job never overlaps itself (a slow group skips a tick rather than
piling up) and groups run in a thread pool, so a slow or failing group does
not delay the others. Reloading keeps the alert state of unchanged rules.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import xxhash
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from hakon.alerting.alertmanager import AlertmanagerSender
from hakon.alerting.api_rules import ApiRules
from hakon.alerting.evaluator import Alert, GroupState
from hakon.alerting.notifier import Notifier, alert_payload, am_alert
from hakon.alerting.rules import Rule, load_files
from hakon.query.engine import Engine
from hakon.query.render import format_value
from hakon.store.engine import Store
from hakon.store.labels import Labels, encode
from hakon.timefmt import rfc3339_ms

log = logging.getLogger(__name__)


def iso_time(ms: int | None) -> str:
    return "0001-01-01T00:00:00Z" if ms is None else rfc3339_ms(ms)


class RuleManager:
    def __init__(
        self,
        store: Store,
        engine: Engine,
        patterns: tuple[str, ...],
        notifier: Notifier | None = None,
        alertmanager: AlertmanagerSender | None = None,
        api_rules: ApiRules | None = None,
        group_by: tuple[str, ...] = ("alertname",),
        repeat_ms: int = 4 * 3_600_000,
    ) -> None:
        self.group_by = group_by
        self.repeat_ms = repeat_ms
        self.api_rules = api_rules
        self.notifier = notifier
        self.alertmanager = alertmanager
        self.store = store
        self.engine = engine
        self.patterns = patterns
        self.groups: dict[tuple[str, str], GroupState] = {}
        self._loaded = False
        self._lock = threading.Lock()
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(4)}, timezone="UTC"
        )

    def load(self) -> None:
        """(Re)load the rule files; on any problem the running rules stay as they were."""
        groups = load_files(list(self.patterns)) if self.patterns else []
        if self.api_rules is not None:
            groups += self.api_rules.groups()
        with self._lock:
            starting = not self._loaded
            self._loaded = True
            fresh: dict[tuple[str, str], GroupState] = {}
            for group in groups:
                state = GroupState(group, restore=starting)
                previous = self.groups.get((group.file, group.name))
                if previous is not None:
                    state.adopt(previous)
                fresh[(group.file, group.name)] = state
            self.groups = fresh
        if self._scheduler.running:
            self._schedule()
        log.info("loaded %d rule groups from %s", len(groups), ", ".join(self.patterns) or "-")

    def start(self) -> None:
        self._schedule()
        self._scheduler.start()

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)

    def _schedule(self) -> None:
        self._scheduler.remove_all_jobs()
        now = time.time()
        for key, state in self.groups.items():
            interval = state.group.interval_ms / 1000
            first = (now // interval + 1) * interval  # the next aligned time
            self._scheduler.add_job(
                self.evaluate_group,
                IntervalTrigger(seconds=interval, start_date=_utc(first), timezone="UTC"),
                args=[key],
                id=f"{key[0]}::{key[1]}",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(interval)),
            )

    def evaluate_group(self, key: tuple[str, str], t_ms: int | None = None) -> None:
        state = self.groups.get(key)
        if state is None:
            return
        interval = state.group.interval_ms
        if t_ms is None:
            t_ms = int(time.time() * 1000) // interval * interval
        try:
            outcome = state.evaluate(self.engine, t_ms, self.store.append)
            batch = outcome.batch()
            if batch is not None:
                self.store.append(batch)
            repeats = [
                a
                for _, a in state.alerts()
                if a.state == "firing"
                and a.notified_ms is not None
                and t_ms - a.notified_ms >= self.repeat_ms
            ]
            self._notify("alert.firing", [*outcome.fired, *repeats], t_ms)
            self._notify("alert.resolved", outcome.resolved, t_ms)
            if self.alertmanager is not None:
                self._push(state, outcome.resolved, t_ms)
        except Exception:  # one group's failure must not stop the scheduler
            log.exception("evaluating rule group %s failed", key[1])

    RESEND_MS = 60_000  # Prometheus's --rules.alert.resend-delay

    def _push(self, state: GroupState, resolved: list[Alert], t_ms: int) -> None:
        """Firing alerts, at most once a minute each, and the just-resolved ones."""
        interval = state.group.interval_ms
        ends_ahead = 4 * max(interval, self.RESEND_MS)
        batch = []
        for _, alert in state.alerts():
            if alert.state == "firing" and (
                alert.sent_ms is None or t_ms - alert.sent_ms >= self.RESEND_MS
            ):
                batch.append(_am_alert(alert, alert.fired_at_ms or t_ms, t_ms + ends_ahead))
                alert.sent_ms = t_ms
        for alert in resolved:
            batch.append(_am_alert(alert, alert.fired_at_ms or t_ms, alert.resolved_at_ms or t_ms))
        assert self.alertmanager is not None
        self.alertmanager.send(batch)

    def _notify(self, event: str, alerts: list[Alert], t_ms: int) -> None:
        """One notification per group of alerts (grouped by the `group_by` labels)."""
        if not alerts:
            return
        firing = event == "alert.firing"
        groups: dict[tuple[tuple[str, str], ...], list[Alert]] = {}
        for alert in alerts:
            labels = dict(alert.labels)
            log.info("%s: %s", event, labels)
            key = tuple((k, labels.get(k, "")) for k in self.group_by)
            groups.setdefault(key, []).append(alert)
            if firing:
                alert.notified_ms = t_ms
        if self.notifier is None:
            return
        status = "firing" if firing else "resolved"
        for key, members in groups.items():
            listed = [
                am_alert(
                    dict(a.labels),
                    a.annotations,
                    status,
                    a.fired_at_ms or a.active_at_ms,
                    None if firing else a.resolved_at_ms,
                    fingerprint(a.labels),
                )
                for a in members
            ]
            self.notifier.publish(event, alert_payload(dict(key), listed, status))

    # -- Prometheus API shapes ----------------------------------------------------------

    def rules_data(self, kind: str | None = None) -> dict[str, Any]:
        groups = []
        for state in list(self.groups.values()):
            rules = []
            for rs in state.rules:
                if kind == "alert" and rs.rule.kind != "alert":
                    continue
                if kind == "record" and rs.rule.kind != "record":
                    continue
                rules.append(_rule_json(rs.rule, rs))
            groups.append(
                {
                    "name": state.group.name,
                    "file": state.group.file,
                    "interval": state.group.interval_ms / 1000,
                    "limit": state.group.limit,
                    "rules": rules,
                    "evaluationTime": state.evaluation_seconds,
                    "lastEvaluation": iso_time(state.last_evaluation_ms),
                }
            )
        return {"groups": groups}

    def alerts(self) -> list[tuple[Rule, Alert]]:
        return [pair for state in list(self.groups.values()) for pair in state.alerts()]

    def alerts_data(self) -> dict[str, Any]:
        return {
            "alerts": [
                _alert_json(alert) for _, alert in self.alerts() if alert.state != "inactive"
            ]
        }


def _utc(seconds: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, UTC)


def _alert_json(alert: Alert) -> dict[str, Any]:
    return {
        "labels": dict(alert.labels),
        "annotations": alert.annotations,
        "state": alert.state,
        "activeAt": iso_time(alert.active_at_ms),
        "value": format_value(alert.value),
    }


def _rule_json(rule: Rule, state: Any) -> dict[str, Any]:
    base = {
        "name": rule.name,
        "query": rule.expr,
        "labels": {k: t.text for k, t in rule.labels.items()},
        "health": state.health,
        "lastError": state.last_error,
        "evaluationTime": state.evaluation_seconds,
        "lastEvaluation": iso_time(state.last_evaluation_ms),
        "type": "alerting" if rule.kind == "alert" else "recording",
    }
    if rule.kind == "record":
        return base
    alerts = [a for a in state.active.values() if a.state != "inactive"]
    rule_state = "firing" if any(a.state == "firing" for a in alerts) else (
        "pending" if alerts else "inactive"
    )  # fmt: skip
    return base | {
        "duration": rule.for_ms / 1000,
        "keepFiringFor": rule.keep_firing_for_ms / 1000,
        "annotations": {k: t.text for k, t in rule.annotations.items()},
        "alerts": [_alert_json(a) for a in alerts],
        "state": rule_state,
    }


def fingerprint(labels: Labels) -> str:
    """A stable id of an alert's label set (the same the alerts API shows)."""
    return xxhash.xxh64_hexdigest(encode(labels))


def _am_alert(alert: Alert, starts_ms: int, ends_ms: int) -> dict[str, Any]:
    return {
        "labels": dict(alert.labels),
        "annotations": alert.annotations,
        "startsAt": iso_time(starts_ms),
        "endsAt": iso_time(ends_ms),
        "generatorURL": "",
    }
