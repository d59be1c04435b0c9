"""A bounded LRU of decoded row groups of immutable blocks.

Long dashboard ranges read one small row group from each of hundreds of
rollup blocks; decoding Parquet costs a fixed fraction of a millisecond per
call, so a 30-day view spends most of its time there. Blocks never change
once written, so a decoded row group stays valid for as long as its file
exists; entries of removed blocks simply age out.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

Columns = dict[str, Any]  # column name -> numpy or Arrow array (anything with nbytes)


class RowGroupCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Any, tuple[Columns, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Any, load: Callable[[], Columns]) -> Columns:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return entry[0]
            self.misses += 1
        columns = load()  # outside the lock: decoding runs in parallel
        size = sum(a.nbytes for a in columns.values())
        if size > self.max_bytes:
            return columns
        with self._lock:
            if key not in self._entries:
                self._entries[key] = (columns, size)
                self._bytes += size
                while self._bytes > self.max_bytes:
                    _, (_, evicted) = self._entries.popitem(last=False)
                    self._bytes -= evicted
        return columns

    def forget(self, path: str) -> None:
        """Drop the entries of a removed block (keys start with its path): they can
        never be read again, and would otherwise hold memory until evicted."""
        with self._lock:
            for key in [k for k in self._entries if k[0] == path]:
                _, size = self._entries.pop(key)
                self._bytes -= size

    @property
    def nbytes(self) -> int:
        return self._bytes
