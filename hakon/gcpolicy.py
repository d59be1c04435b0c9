"""Keep the cyclic garbage collector from pausing the server for hundreds of ms.

The store and the ingest caches hold millions of long-lived container objects
(postings lists, per-resource rows, label maps). CPython's full collections
walk all of them, and while series keep arriving they run every few seconds
and find nothing: 100-230 ms pauses measured under ingest, the whole p99.
So every few seconds young cycles are collected (cheap) and everything that
survives is frozen out of the collector's sight. Objects still die by
reference counting as usual. A frozen object that later becomes part of an
unreachable cycle would never be reclaimed, so once in a long while
(`full_every_s`) everything is unfrozen and fully collected: one pause per
quarter hour instead of one every few seconds.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from collections.abc import Iterator

log = logging.getLogger(__name__)

_pause_lock = threading.Lock()
_pauses = 0
_resume = False


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No automatic collections inside: for a stretch that builds many objects
    which all live on (indexing a burst of new series: decoded label pairs,
    postings). Every few hundred of them would otherwise start a young
    collection, and the full ones walked all the young survivors again: more
    than half of indexing 99,000 new series (0.49 against 0.21 s of decoding)
    was the collector, all of it holding the GIL. Reference counting still frees
    what dies; the next collection after the stretch sees what was built.
    Nestable and shared by threads: the collector is back on when the last
    pause ends (if it was on before the first)."""
    global _pauses, _resume
    with _pause_lock:
        if not _pauses:
            _resume = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pauses -= 1
            if not _pauses and _resume:
                gc.enable()


class GcFreezer:
    def __init__(self, interval_s: float = 5.0, full_every_s: float = 900.0) -> None:
        self.interval_s = interval_s
        self.full_every_s = full_every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hakon-gc", daemon=True)
        self._last_full = time.monotonic()

    def start(self) -> GcFreezer:
        self.freeze()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    @staticmethod
    def freeze() -> None:
        gc.collect(1)
        gc.freeze()

    def full(self) -> int:
        gc.unfreeze()
        started = time.perf_counter()
        found = gc.collect()
        gc.freeze()
        log.debug(
            "full collection: %d unreachable in %.0f ms",
            found,
            (time.perf_counter() - started) * 1000,
        )
        self._last_full = time.monotonic()
        return found

    def settle(self) -> None:
        """After one unit of work in a single-threaded process (a decode worker's
        request): freeze what survived it, or run the full collection when due. A
        cluster's first payload creates tens of thousands of long-lived objects per
        request, and without this the young and full collections kept walking them
        all through the burst (a third of the worker's time for new series)."""
        if time.monotonic() - self._last_full >= self.full_every_s:
            self.full()
        else:
            self.freeze()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            if time.monotonic() - self._last_full >= self.full_every_s:
                self.full()
            else:
                self.freeze()
