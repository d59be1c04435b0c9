"""Webhooks and their deliveries: durable, signed, retried, never in evaluation's way.

`publish(event, data)` records one delivery per active webhook subscribed to
the event, in the catalog, before returning; a sender thread posts due
deliveries, retrying network errors, 5xx and 429 with exponential backoff and
jitter until `give_up_s` has passed. Pending deliveries survive a restart.

Bodies are seed 004's event envelope `{"id", "type", "data", "timestamp"}`,
or, for a webhook in `alertmanager` format, the bare Alertmanager webhook
payload. With a secret, `X-Hakon-Signature: sha256=<hex>` is the HMAC-SHA256
of `"<X-Hakon-Timestamp>.<body>"` (docs/alerting.md shows how to verify it).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import queue
import random
import socket
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from hakon.errors import InvalidRequest, NotFound
from hakon.store.catalog import Catalog
from hakon.timefmt import rfc3339_ms

log = logging.getLogger(__name__)

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS webhooks (
        id VARCHAR PRIMARY KEY, url VARCHAR NOT NULL, events VARCHAR NOT NULL,
        secret VARCHAR NOT NULL, active BOOLEAN NOT NULL, format VARCHAR NOT NULL,
        created_ms BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS webhook_deliveries (
        id VARCHAR PRIMARY KEY, webhook_id VARCHAR NOT NULL, event VARCHAR NOT NULL,
        body VARCHAR NOT NULL, status VARCHAR NOT NULL, attempts INTEGER NOT NULL,
        next_attempt_ms BIGINT NOT NULL, created_ms BIGINT NOT NULL,
        last_status INTEGER, last_error VARCHAR, latency_ms DOUBLE, done_ms BIGINT)""",
]
FORMATS = ("hakon", "alertmanager")


@dataclass(frozen=True)
class Webhook:
    id: str
    url: str
    events: tuple[str, ...]
    secret: str
    active: bool
    format: str
    created_ms: int

    def public(self) -> dict[str, Any]:
        """The webhook as the API shows it: the secret never leaves."""
        return {
            "id": self.id,
            "url": self.url,
            "events": list(self.events),
            "active": self.active,
            "format": self.format,
            "has_secret": bool(self.secret),
            "created_at": iso(self.created_ms),
        }


def iso(ms: int | None) -> str | None:
    return None if ms is None else rfc3339_ms(ms)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def _addresses(host: str) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        raise InvalidRequest(f"url host {host!r} does not resolve", field="url") from None
    return {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}


def check_url(url: str, allow_private: bool, server: tuple[str, int] | None = None) -> str:
    """Refuse what is not a receiver: non-HTTP URLs, private addresses unless allowed,
    and Hakon itself (`server`: its listen host and port), whose admin routes a
    webhook must never be able to call, whatever else is allowed."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest("url must be an http or https URL with a host", field="url")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise InvalidRequest("url has an invalid port", field="url") from None
    if server is not None and port == server[1]:
        addresses = _addresses(parts.hostname)
        own = {a for a in addresses if a.is_loopback or a.is_unspecified}
        if server[0] not in ("", "0.0.0.0", "::"):
            own |= addresses & _addresses(server[0])
        elif any(not a.is_loopback for a in addresses):
            own |= addresses & _local_addresses()
        if own:
            raise InvalidRequest("url points at this Hakon server itself", field="url")
    if not allow_private:
        for ip in _addresses(parts.hostname):
            if ip.is_private or ip.is_loopback or ip.is_link_local:
                raise InvalidRequest(
                    "url points at a private or loopback address (setting webhook_allow_private)",
                    field="url",
                )
    return url


def _local_addresses() -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """This machine's own addresses, as far as its hostname resolves (a wildcard bind)."""
    try:
        return _addresses(socket.gethostname())
    except InvalidRequest:
        return set()


class Notifier:
    def __init__(
        self,
        catalog: Catalog,
        *,
        allow_private: bool = True,
        server: tuple[str, int] | None = None,
        give_up_s: float = 3600.0,
        timeout_s: float = 10.0,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 300.0,
    ) -> None:
        self.catalog = catalog
        self.allow_private = allow_private
        self.server = server
        self.give_up_ms = int(give_up_s * 1000)
        self.timeout_s = timeout_s
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        catalog.ensure_schema(SCHEMA)
        self.all()  # a damaged row is reported at start, not at the first event
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hakon-notifier", daemon=True)
        self._pool = ThreadPoolExecutor(16, thread_name_prefix="hakon-webhook")
        self._results: queue.SimpleQueue[list[Any]] = queue.SimpleQueue()
        self._client = httpx.Client(timeout=timeout_s, follow_redirects=False)

    # -- webhooks --------------------------------------------------------------------

    def create(self, url: str, events: list[str], secret: str, active: bool, fmt: str) -> Webhook:
        hook = Webhook(
            "wh_" + uuid.uuid4().hex[:16],
            check_url(url, self.allow_private, self.server),
            tuple(_events(events)),
            secret,
            active,
            _format(fmt),
            int(time.time() * 1000),
        )
        self.catalog.execute(
            "INSERT INTO webhooks VALUES (?, ?, ?, ?, ?, ?, ?)",
            [hook.id, hook.url, json.dumps(hook.events), hook.secret, hook.active, hook.format,
             hook.created_ms],
        )  # fmt: skip
        return hook

    def get(self, hook_id: str) -> Webhook:
        rows = self.catalog.fetchall("SELECT * FROM webhooks WHERE id = ?", [hook_id])
        if not rows:
            raise NotFound(f"no webhook {hook_id!r}")
        return _webhook(rows[0])

    def all(self) -> list[Webhook]:
        rows = self.catalog.fetchall("SELECT * FROM webhooks ORDER BY created_ms, id")
        return self.catalog.readable("webhooks", rows, _webhook)

    def update(self, hook_id: str, changes: dict[str, Any]) -> Webhook:
        hook = self.get(hook_id)
        url = (
            check_url(changes["url"], self.allow_private, self.server)
            if "url" in changes
            else hook.url
        )
        events = tuple(_events(changes["events"])) if "events" in changes else hook.events
        secret = changes.get("secret", hook.secret)
        active = changes.get("active", hook.active)
        fmt = _format(changes["format"]) if "format" in changes else hook.format
        self.catalog.execute(
            "UPDATE webhooks SET url = ?, events = ?, secret = ?, active = ?, format = ? "
            "WHERE id = ?",
            [url, json.dumps(events), secret, active, fmt, hook_id],
        )
        return self.get(hook_id)

    def delete(self, hook_id: str) -> None:
        self.get(hook_id)
        with self.catalog.transaction() as con:
            con.execute("DELETE FROM webhooks WHERE id = ?", [hook_id])
            con.execute(
                "UPDATE webhook_deliveries SET status = 'failed', last_error = 'webhook deleted' "
                "WHERE webhook_id = ? AND status = 'pending'",
                [hook_id],
            )

    def deliveries(self, hook_id: str, limit: int = 50) -> list[dict[str, Any]]:
        self.get(hook_id)
        rows = self.catalog.fetchall(
            "SELECT id, event, status, attempts, last_status, last_error, latency_ms, "
            "created_ms, done_ms, next_attempt_ms FROM webhook_deliveries "
            "WHERE webhook_id = ? ORDER BY created_ms DESC, id LIMIT ?",
            [hook_id, limit],
        )
        return [
            {
                "id": r[0],
                "event": r[1],
                "status": r[2],
                "attempts": r[3],
                "response_status": r[4],
                "error": r[5],
                "latency_ms": r[6],
                "created_at": iso(r[7]),
                "finished_at": iso(r[8]),
                "next_attempt_at": iso(r[9]) if r[2] == "pending" else None,
            }
            for r in rows
        ]

    # -- publishing ------------------------------------------------------------------

    def publish(self, event: str, data: dict[str, Any], only: str | None = None) -> int:
        """Record a delivery for each active webhook subscribed to `event` (or just `only`)."""
        now = int(time.time() * 1000)
        envelope = {
            "id": "evt_" + uuid.uuid4().hex[:16],
            "type": event,
            "data": data,
            "timestamp": iso(now),
        }
        rows = []
        for hook in self.all():
            if only is not None and hook.id != only:
                continue
            if only is None and (not hook.active or event not in hook.events):
                continue
            # Alert events are Alertmanager webhook payloads; that format sends them bare.
            bare = hook.format == "alertmanager" and event.startswith("alert.")
            body = json.dumps(data if bare else envelope, separators=(",", ":"))
            rows.append(["dl_" + uuid.uuid4().hex[:16], hook.id, event, body, now, now])
        if rows:
            with self.catalog.transaction() as con:
                con.executemany(
                    "INSERT INTO webhook_deliveries (id, webhook_id, event, body, status, "
                    "attempts, next_attempt_ms, created_ms) "
                    "VALUES (?, ?, ?, ?, 'pending', 0, ?, ?)",
                    rows,
                )
            self._wake.set()
        return len(rows)

    # -- sending ---------------------------------------------------------------------

    def start(self) -> Notifier:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)
        self._pool.shutdown(wait=True)
        with contextlib.suppress(Exception):  # attempts that finished during shutdown
            self._commit_finished({})
        self._client.close()

    def _run(self) -> None:
        """Send due deliveries without waiting for slow ones: each attempt runs on the
        pool, results are committed in batches as they finish, and a webhook has at
        most PER_WEBHOOK attempts in flight, so a receiver that hangs holds up only
        its own deliveries."""
        inflight: dict[str, str] = {}  # delivery id -> webhook id
        while not self._stop.is_set():
            try:
                self._commit_finished(inflight)
                busy: dict[str, int] = {}
                for hook in inflight.values():
                    busy[hook] = busy.get(hook, 0) + 1
                due = self.catalog.fetchall(
                    "SELECT d.id, d.body, d.attempts, d.created_ms, d.event, w.url, w.secret, "
                    "w.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id "
                    "WHERE d.status = 'pending' AND d.next_attempt_ms <= ? "
                    "ORDER BY d.next_attempt_ms LIMIT ?",
                    [int(time.time() * 1000), 64 + len(inflight)],
                )
                for *row, hook in due:
                    if row[0] in inflight or busy.get(hook, 0) >= self.PER_WEBHOOK:
                        continue
                    busy[hook] = busy.get(hook, 0) + 1
                    inflight[row[0]] = hook
                    future = self._pool.submit(self._attempt, *row)
                    future.add_done_callback(self._finished)
                nxt = self.catalog.fetchall(
                    "SELECT min(next_attempt_ms) FROM webhook_deliveries WHERE status = 'pending'"
                )[0][0]
            except Exception:
                log.exception("webhook sender failed; retrying")
                nxt = None
            wait = 5.0 if nxt is None else max(0.0, nxt / 1000 - time.time())
            if inflight and wait <= 0:
                wait = 5.0  # everything due is in flight: a finishing attempt wakes us
            self._wake.wait(min(wait, 5.0))
            self._wake.clear()
        self._commit_finished(inflight)

    PER_WEBHOOK = 4

    def _finished(self, future: Future[list[Any]]) -> None:
        try:
            self._results.put(future.result())
        except Exception:  # _attempt catches HTTP errors; anything else is a bug
            log.exception("webhook attempt failed")
        self._wake.set()

    def _commit_finished(self, inflight: dict[str, str]) -> None:
        """Write the finished attempts' outcomes in one transaction."""
        results: list[list[Any]] = []
        while not self._results.empty():
            results.append(self._results.get_nowait())
        if not results:
            return
        try:
            with self.catalog.transaction() as con:
                con.executemany(
                    "UPDATE webhook_deliveries SET status = ?, attempts = ?, "
                    "next_attempt_ms = ?, last_status = ?, last_error = ?, "
                    "latency_ms = ?, done_ms = ? WHERE id = ?",
                    results,
                )
        except Exception:
            for values in results:  # kept for the next pass (e.g. once the disk has room)
                self._results.put(values)
            raise
        for values in results:
            inflight.pop(values[-1], None)

    def _attempt(
        self, delivery_id: str, body: str, attempts: int, created_ms: int, event: str, url: str,
        secret: str,
    ) -> list[Any]:  # fmt: skip
        """Send one delivery; returns its new row values (the caller writes them)."""
        raw = body.encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Hakon-Webhook",
            "X-Hakon-Event": event,
            "X-Hakon-Delivery": delivery_id,
            "X-Hakon-Timestamp": timestamp,
        }
        if secret:
            headers["X-Hakon-Signature"] = sign(secret, timestamp, raw)
        started = time.perf_counter()
        status: int | None = None
        error = ""
        try:
            status = self._client.post(url, content=raw, headers=headers).status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        latency = (time.perf_counter() - started) * 1000
        now = int(time.time() * 1000)
        attempts += 1
        if status is not None and 200 <= status < 300:
            outcome, nxt = "delivered", now
        elif (status is None or status >= 500 or status == 429) and (
            now - created_ms < self.give_up_ms
        ):
            outcome = "pending"
            delay = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempts - 1))
            nxt = now + int(delay * random.uniform(0.5, 1.0) * 1000)  # jittered
        else:
            outcome, nxt = "failed", now
            error = error or f"HTTP {status}"
        done = None if outcome == "pending" else now
        return [outcome, attempts, nxt, status, error or None, latency, done, delivery_id]


def _events(events: list[str]) -> list[str]:
    if not isinstance(events, list) or not events:
        raise InvalidRequest("events must be a non-empty list of event types", field="events")
    for e in events:
        if not isinstance(e, str) or not e or len(e) > 128:
            raise InvalidRequest(f"invalid event type {e!r}", field="events")
    return sorted(set(events))


def _format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise InvalidRequest(f"format must be one of {', '.join(FORMATS)}", field="format")
    return fmt


def _webhook(row: tuple[Any, ...]) -> Webhook:
    return Webhook(row[0], row[1], tuple(json.loads(row[2])), row[3], bool(row[4]), row[5], row[6])


def am_alert(
    labels: dict[str, str],
    annotations: dict[str, str],
    status: str,
    starts_ms: int,
    ends_ms: int | None,
    fingerprint: str,
) -> dict[str, Any]:
    """One alert as an Alertmanager webhook payload lists it."""
    return {
        "status": status,
        "labels": labels,
        "annotations": annotations,
        "startsAt": iso(starts_ms),
        "endsAt": iso(ends_ms) if ends_ms is not None else "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": fingerprint,
    }


def alert_payload(
    group_labels: dict[str, str], alerts: list[dict[str, Any]], status: str
) -> dict[str, Any]:
    """An Alertmanager webhook payload (version 4) for one group of alerts."""

    def common(key: str) -> dict[str, str]:
        shared = dict(alerts[0][key]) if alerts else {}
        for alert in alerts[1:]:
            shared = {k: v for k, v in shared.items() if alert[key].get(k) == v}
        return shared

    key = ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(group_labels.items()))
    return {
        "version": "4",
        "groupKey": "{}:{" + key + "}",
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "hakon",
        "groupLabels": group_labels,
        "commonLabels": common("labels"),
        "commonAnnotations": common("annotations"),
        "externalURL": "",
        "alerts": alerts,
    }
