"""Revoked token ids, checked on every request and persisted through a store.

The set lives in memory (a dict lookup per request); every revocation is
written through to durable storage before it is acknowledged, and entries are
dropped once the token would have expired anyway.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from hakon.store.catalog import Catalog


class RevocationStore(Protocol):
    def load_revocations(self) -> dict[str, int]:
        """All persisted revocations: token id -> expiry (unix seconds)."""

    def save_revocation(self, token_id: str, expires_at: int) -> None:
        """Persist one revocation durably before returning."""

    def prune_revocations(self, now: int) -> None:
        """Forget revocations of tokens that expired before `now`."""


class RevocationList:
    def __init__(self, store: RevocationStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        now = int(time.time())
        store.prune_revocations(now)
        self._revoked = {k: v for k, v in store.load_revocations().items() if v >= now}

    def is_revoked(self, token_id: str) -> bool:
        return token_id in self._revoked

    def revoke(self, token_id: str, expires_at: int) -> None:
        with self._lock:
            if token_id in self._revoked:
                return
            self._store.save_revocation(token_id, expires_at)
            self._revoked[token_id] = expires_at

    def __len__(self) -> int:
        return len(self._revoked)


class CatalogRevocationStore:
    """Revocations kept in the catalog's `revoked_tokens` table."""

    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS revoked_tokens ("
        " token_id VARCHAR PRIMARY KEY, expires_at BIGINT NOT NULL, revoked_at BIGINT NOT NULL)",
    )

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        catalog.ensure_schema(self.SCHEMA)

    def load_revocations(self) -> dict[str, int]:
        rows = self._catalog.fetchall("SELECT token_id, expires_at FROM revoked_tokens")
        return {token_id: expires_at for token_id, expires_at in rows}

    def save_revocation(self, token_id: str, expires_at: int) -> None:
        self._catalog.execute(
            "INSERT OR IGNORE INTO revoked_tokens VALUES (?, ?, ?)",
            [token_id, expires_at, int(time.time())],
        )

    def prune_revocations(self, now: int) -> None:
        self._catalog.execute("DELETE FROM revoked_tokens WHERE expires_at < ?", [now])
