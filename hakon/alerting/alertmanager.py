"""Push alerts to Alertmanagers the way Prometheus does: `POST /api/v2/alerts`.

Firing alerts are (re)sent at most every `resend_s` with an `endsAt` far
enough ahead that a missed evaluation does not resolve them; a resolved alert
is sent once with its real `endsAt`. Sending runs on its own thread from a
bounded queue, so an unreachable Alertmanager never delays evaluation (a
full queue drops the oldest batch: the next evaluation resends what fires).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from typing import Any

import httpx

log = logging.getLogger(__name__)


class AlertmanagerSender:
    def __init__(self, urls: tuple[str, ...], timeout_s: float = 10.0) -> None:
        self.urls = [u.rstrip("/") + "/api/v2/alerts" for u in urls]
        self._queue: queue.Queue[list[dict[str, Any]] | None] = queue.Queue(maxsize=100)
        self._client = httpx.Client(timeout=timeout_s)
        self._thread = threading.Thread(target=self._run, name="hakon-alertmanager", daemon=True)
        self.sent = 0

    def start(self) -> AlertmanagerSender:
        if self.urls:
            self._thread.start()
        return self

    def send(self, alerts: list[dict[str, Any]]) -> None:
        if not self.urls or not alerts:
            return
        try:
            self._queue.put_nowait(alerts)
        except queue.Full:
            with contextlib.suppress(queue.Empty):
                self._queue.get_nowait()  # drop the oldest: the next evaluation resends
            self._queue.put_nowait(alerts)

    def _run(self) -> None:
        while True:
            alerts = self._queue.get()
            if alerts is None:
                return
            for url in self.urls:
                try:
                    response = self._client.post(url, json=alerts)
                    if response.status_code >= 300:
                        log.warning("alertmanager %s answered %d", url, response.status_code)
                    else:
                        self.sent += len(alerts)
                except httpx.HTTPError as exc:
                    log.warning("alertmanager %s unreachable: %s", url, exc)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=15)
        self._client.close()
