"""Node heartbeats and the offline sweep.

Edge metrics arrive often, so a heartbeat only changes the node in memory; a
sweeper thread persists the changed nodes in one transaction every few seconds
and marks a node `offline` (emitting `node.offline`) once its last heartbeat —
or, for a node that never sent one, its registration — is older than
`node_offline_after`. A heartbeat from an offline node makes it active again.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from hakon.registry.resources import Record, Registry, now_ms
from hakon.timefmt import rfc3339

log = logging.getLogger(__name__)

WATCHED = ("registered", "active")  # inactive and maintenance nodes are not expected to beat


class Heartbeats:
    def __init__(self, registry: Registry, offline_after_s: float) -> None:
        self.registry = registry
        self.offline_after_ms = int(offline_after_s * 1000)
        self.every_s = max(0.2, min(5.0, offline_after_s / 4))
        self._dirty: dict[str, Record] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hakon-heartbeats", daemon=True)

    def beat(self, node_id: str, at_ms: int | None = None) -> None:
        """Record a heartbeat of `node_id` if it is a registered node."""
        registry = self.registry
        node = registry.find("node", node_id)
        if node is None:
            return
        changes: dict[str, object] = {"last_heartbeat": rfc3339(at_ms or now_ms())}
        if node.state.get("status") in ("registered", "offline"):
            changes["status"] = "active"
        record = registry.set_state("node", node_id, changes, persist=False)
        with self._lock:
            self._dirty[node_id] = record

    def flush(self) -> None:
        with self._lock:
            dirty, self._dirty = list(self._dirty.values()), {}
        self.registry.save_states(dirty)

    def sweep(self, now: int | None = None) -> list[str]:
        """Persist changed heartbeats and mark stale nodes offline; the ids marked."""
        now = now or now_ms()
        self.flush()
        marked = []
        for node in self.registry.all("node"):
            if node.state.get("status") not in WATCHED:
                continue
            last = node.state.get("last_heartbeat")
            since = _ms(last) if last else node.created_ms
            if now - since > self.offline_after_ms:
                self.registry.set_state("node", node.id, {"status": "offline"}, event="offline")
                marked.append(node.id)
        return marked

    def start(self) -> Heartbeats:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.flush()

    def sweep_quietly(self) -> None:
        try:
            self.sweep()
        except Exception:  # the sweeper must outlive one bad pass
            log.exception("node heartbeat sweep failed")

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.sweep_quietly()


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
