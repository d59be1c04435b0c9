"""Webhook receivers that hang, reset connections or answer 500 do not hold up
evaluation or a healthy receiver; their deliveries are retried and then recorded
as failed."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from alerting.receiver import Receiver
from serverproc import HakonProcess, wait_for

RULES = """
groups:
  - name: faults
    interval: 1s
    rules:
      - alert: Hot
        expr: temp_celsius > 30
"""


class RawListener:
    """Accepts connections and then either holds them silently or resets them."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.held: list[socket.socket] = []
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            if self.mode == "hang":
                self.held.append(conn)
            else:  # RST instead of FIN
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[HakonProcess]:
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES)
    with HakonProcess(tmp_path / "data", "--rules", str(rules), "--webhook-give-up", "6s") as proc:
        yield proc


def test_misbehaving_receivers_hold_up_nothing(server: HakonProcess) -> None:
    hang, reset = RawListener("hang"), RawListener("reset")
    failing, healthy = Receiver(fail=10**9), Receiver()
    try:
        headers = {"Authorization": f"Bearer {server.admin_token()}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as api:
            hooks = {}
            for name, url in (("hang", hang.url), ("reset", reset.url),
                              ("failing", failing.url), ("healthy", healthy.url)):  # fmt: skip
                created = api.post("/api/v1/webhooks",
                                   json={"url": url, "events": ["alert.firing"]})  # fmt: skip
                hooks[name] = created.json()["id"]
            body = f'temp_celsius{{room="lab"}} 35 {int(time.time() * 1000)}\n'
            assert api.post("/api/v1/import/prometheus", content=body).status_code == 204
            started = time.monotonic()
            wait_for(lambda: healthy.events("alert.firing"), timeout=15)
            assert time.monotonic() - started < 8, "the healthy receiver waited on the others"

            def last_evaluation() -> str:
                groups = api.get("/prometheus/api/v1/rules").json()["data"]["groups"]
                return str(groups[0]["lastEvaluation"])

            first = last_evaluation()
            wait_for(lambda: last_evaluation() != first, timeout=10)  # evaluation goes on

            def outcome(name: str) -> dict | None:  # type: ignore[type-arg]
                found = api.get(f"/api/v1/webhooks/{hooks[name]}/deliveries").json()
                rows = found["deliveries"]
                return rows[0] if rows and rows[0]["status"] == "failed" else None

            for name in ("hang", "reset", "failing"):
                failed = wait_for(lambda n=name: outcome(n), timeout=40)
                assert failed["attempts"] >= 1 and failed["error"], (name, failed)
            assert outcome("reset")["attempts"] > 1  # type: ignore[index]  # retried
            assert outcome("failing")["attempts"] > 1  # type: ignore[index]
            assert failing.attempts > 1 and reset.accepted > 1 and hang.accepted >= 1
            assert api.get("/health").status_code == 200
    finally:
        for r in (hang, reset, failing, healthy):
            r.close()
