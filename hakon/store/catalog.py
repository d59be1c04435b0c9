"""The catalog: one DuckDB database file in the data dir.

It records small, durable facts (series, the block manifest, revoked tokens,
registry resources). DuckDB connections are not safe for concurrent use, so
the catalog is the single owner of its connection and serializes access with
a lock; writes commit (and DuckDB fsyncs its WAL) before the call returns.

Each module that keeps tables here declares its schema with `ensure_schema`,
so the catalog knows nothing of what the tables mean.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from hakon.errors import InsufficientStorage

CATALOG_FILE = "catalog.duckdb"
log = logging.getLogger(__name__)
Row = tuple[Any, ...]
T = TypeVar("T")


class Catalog:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._con = duckdb.connect(str(self.path))
        self._con.execute("SET threads TO 1")
        # Rows a loader could not read: skipped (the rest is served), reported by the
        # admin storage view and the log.
        self.damaged: list[dict[str, str]] = []

    @classmethod
    def open_in(cls, data_dir: Path) -> Catalog:
        return cls(Path(data_dir) / CATALOG_FILE)

    def ensure_schema(self, statements: Sequence[str]) -> None:
        """Run idempotent DDL (`CREATE TABLE IF NOT EXISTS ...`) in one transaction."""
        with self.transaction() as con:
            for statement in statements:
                con.execute(statement)

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        with self._lock, _disk_errors():
            self._con.execute(sql, params or [])

    def fetchall(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._con.execute(sql, params or []).fetchall()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._lock, _disk_errors():
            self._con.execute("BEGIN TRANSACTION")
            try:
                yield self._con
                self._con.execute("COMMIT")
            except BaseException:
                with suppress(duckdb.Error):  # a failed COMMIT may have rolled back already
                    self._con.execute("ROLLBACK")
                raise

    def note_damage(self, table: str, key: Any, error: BaseException | str) -> None:
        """Record a row a loader could not read (once per table and key)."""
        if any(d["table"] == table and d["key"] == str(key) for d in self.damaged):
            return
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        log.error("catalog row %s in %s is damaged and skipped: %s", key, table, text)
        self.damaged.append({"table": table, "key": str(key), "error": text[:500]})

    def readable(self, table: str, rows: Iterable[Row], decode: Callable[[Row], T]) -> list[T]:
        """`decode` of each row whose stored values can be read; the others (their key
        is the first column) are skipped and noted as damage."""
        out: list[T] = []
        for row in rows:
            try:
                out.append(decode(row))
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                self.note_damage(table, row[0], exc)
        return out

    def memory_bytes(self) -> int:
        """What DuckDB holds in memory for the catalog (buffers, indexes, pending WAL)."""
        rows = self.fetchall("SELECT sum(memory_usage_bytes) FROM duckdb_memory()")
        return int(rows[0][0] or 0)

    def close(self) -> None:
        with self._lock:
            self._con.close()


@contextmanager
def _disk_errors() -> Iterator[None]:
    """A write that failed for want of disk space is the caller's 507, not a bug."""
    try:
        yield
    except duckdb.Error as exc:
        text = str(exc)
        if "No space left on device" in text or "Disk quota exceeded" in text:
            raise InsufficientStorage("no space left on the storage device; retry later") from exc
        raise
