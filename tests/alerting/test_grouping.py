"""Notifications group alerts by the `group_by` labels and repeat for alerts still firing."""

from __future__ import annotations

import time
from pathlib import Path

from serverproc import wait_for

from hakon.alerting.api_rules import ApiRules
from hakon.alerting.manager import RuleManager
from hakon.alerting.notifier import Notifier
from hakon.query.engine import Engine
from hakon.store.catalog import Catalog
from hakon.store.engine import Store
from hakon.store.interface import SampleBatch
from tests.alerting.receiver import Receiver


def test_alerts_group_into_one_notification_and_repeat(tmp_path: Path) -> None:
    catalog = Catalog.open_in(tmp_path)
    store = Store(tmp_path, catalog).open()
    notifier = Notifier(catalog).start()
    receiver = Receiver()
    try:
        now = int(time.time() * 1000) // 60_000 * 60_000
        labels = [{"__name__": "temp", "room": r} for r in ("a", "b", "c")]
        store.append(SampleBatch.from_series(labels, [0, 1, 2], [now - 5000] * 3, [35, 36, 20]))
        rules = ApiRules(catalog)
        rules.create({"name": "Hot", "description": "", "expression": "temp > 30",
                      "duration": "0s", "severity": "page", "labels": {}, "annotations": {},
                      "group": "g", "interval": "15s"})  # fmt: skip
        notifier.create(receiver.url, ["alert.firing"], "", True, "hakon")
        manager = RuleManager(
            store, Engine(store), (), notifier, None, rules, ("alertname",), 60_000
        )
        manager.load()
        (key,) = manager.groups
        manager.evaluate_group(key, now)
        (first,) = wait_for(lambda: receiver.events("alert.firing"))
        payload = first["data"]
        assert payload["groupLabels"] == {"alertname": "Hot"}
        assert sorted(a["labels"]["room"] for a in payload["alerts"]) == ["a", "b"]
        assert payload["commonLabels"] == {"alertname": "Hot", "severity": "page"}
        manager.evaluate_group(key, now + 30_000)  # within the repeat interval: nothing new
        manager.evaluate_group(key, now + 60_000)  # repeat interval over: announced again
        wait_for(lambda: len(receiver.events("alert.firing")) == 2)
        time.sleep(0.5)
        assert len(receiver.events("alert.firing")) == 2
    finally:
        receiver.close()
        notifier.stop()
        store.close()
        catalog.close()
