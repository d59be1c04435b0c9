"""A bounded LRU of decoded row groups of immutable blocks.

Long dashboard ranges read one small row group from each of hundreds of
rollup blocks; decoding Parquet costs a fixed fraction of a millisecond per
call, so a 30-day view spends most of its time there. Blocks never change
once written, so a decoded row group stays valid for as long as its file
exists; entries of removed blocks are forgotten.

Entries nobody read for `idle_s` leave too: a dashboard's window slides over
new blocks, and the row groups it left behind would otherwise stay until the
byte bound pushed them out, so the cache, and the server's resident size,
grew towards the bound however small what is being read (the soak: 97 -> 145
MiB in ten minutes of a 15-minute dashboard window). With the idle bound the
cache holds what was read recently, which is what the next refresh reads.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

Columns = dict[str, Any]  # column name -> numpy or Arrow array (anything with nbytes)


class RowGroupCache:
    def __init__(
        self, max_bytes: int, idle_s: float = 0.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_bytes = max_bytes
        self.idle_s = idle_s  # 0: entries stay until the byte bound needs their room
        self._clock = clock
        # Least recently read first: (columns, bytes, when last read).
        self._entries: OrderedDict[Any, tuple[Columns, int, float]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Any, load: Callable[[], Columns]) -> Columns:
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries[key] = (entry[0], entry[1], now)
                self._entries.move_to_end(key)
                self.hits += 1
                self._expire(now)
                return entry[0]
            self.misses += 1
        columns = load()  # outside the lock: decoding runs in parallel
        size = sum(a.nbytes for a in columns.values())
        if size > self.max_bytes:
            return columns
        with self._lock:
            if key not in self._entries:
                self._entries[key] = (columns, size, now)
                self._bytes += size
                while self._bytes > self.max_bytes:
                    _, (_, evicted, _) = self._entries.popitem(last=False)
                    self._bytes -= evicted
            self._expire(now)
        return columns

    def expire(self) -> None:
        """Drop the entries not read for `idle_s` (reads do it too; this is for the
        quiet times, so memory goes back when no one is reading)."""
        with self._lock:
            self._expire(self._clock())

    def _expire(self, now: float) -> None:
        if not self.idle_s:
            return
        entries, oldest = self._entries, now - self.idle_s
        while entries:
            key, (_, size, used) = next(iter(entries.items()))
            if used >= oldest:
                return
            del entries[key]
            self._bytes -= size

    def forget(self, path: str) -> None:
        """Drop the entries of a removed block (keys start with its path): they can
        never be read again, and would otherwise hold memory until evicted."""
        with self._lock:
            for key in [k for k in self._entries if k[0] == path]:
                self._bytes -= self._entries.pop(key)[1]

    @property
    def nbytes(self) -> int:
        return self._bytes
