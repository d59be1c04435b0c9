"""Decoding, in this process or in decode worker processes.

Decoding and flattening is most of the CPU an ingest request costs, and the
GIL lets one process use one core. So large bodies are decoded in worker
processes (`ingest_decode_processes`), while this process serves HTTP and
appends to the store. Small bodies are decoded inline: a process hop costs
more than they do.

A worker returns plain arrays plus the labels of the series it has not seen
before (its registry's journal). This process keeps those labels until the
store has registered the series; the store asks for the labels of ids it does
not know. Should an id ever arrive without labels (this process dropped them
while a worker still had the id cached), the request is refused with a retry
hint and every worker starts afresh, so the retry carries the labels.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np

from hakon import errors
from hakon.errors import HakonError, Unavailable
from hakon.ingest.body import decode_body
from hakon.ingest.edge import EdgeDecoder
from hakon.ingest.exposition import ExpositionDecoder
from hakon.ingest.hakongo import HakonGoDecoder, decoders
from hakon.ingest.influx import InfluxDecoder
from hakon.ingest.limits import IngestLimits
from hakon.ingest.remote_write import RemoteWriteDecoder
from hakon.ingest.series import LabelsLookup, SeriesRegistry
from hakon.store.interface import SampleBatch
from hakon.store.labels import Labels

log = logging.getLogger(__name__)


class Decoders:
    """One decoder per format; `decode` dispatches by a format name."""

    def __init__(self, limits: IngestLimits) -> None:
        self.limits = limits
        self.hakongo: dict[str, HakonGoDecoder] = decoders(limits)
        self.edge = EdgeDecoder(limits)
        self.remote_write = RemoteWriteDecoder(limits)
        self.exposition = ExpositionDecoder(limits)
        self.influx = InfluxDecoder(limits)

    def registries(self) -> list[SeriesRegistry]:
        return [
            *(d.registry for d in self.hakongo.values()),
            self.edge.registry,
            self.remote_write.registry,
            self.exposition.registry,
            self.influx.registry,
        ]

    def decode(self, fmt: str, body: bytes, args: tuple[Any, ...]) -> tuple[Any, SampleBatch]:
        """(what the format reports besides samples, the batch)."""
        if fmt.startswith("hakongo/"):
            return self.hakongo[fmt.removeprefix("hakongo/")].decode(body)
        if fmt == "edge":
            return self.edge.decode(args[0], body)
        if fmt == "remote_write":
            return None, self.remote_write.decode(body)
        if fmt == "exposition":
            return None, self.exposition.decode(body, *args)
        if fmt == "influx":
            return None, self.influx.decode(body, *args)
        raise ValueError(f"unknown format {fmt!r}")


# -- the worker side ------------------------------------------------------------------

_worker: dict[str, Any] = {}  # in a worker process: its decoders and their generation


def _start_worker(limits: IngestLimits) -> None:
    _worker.update(decoders=Decoders(limits), generation=0)
    parent = os.getppid()
    threading.Thread(target=_exit_with, args=(parent,), name="parent-watch", daemon=True).start()


def _exit_with(parent: int) -> None:
    """A worker outlives a server killed with SIGKILL otherwise (it waits on its queue)."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)


def _ready() -> bool:
    return bool(_worker)


def _decode_in_worker(
    generation: int,
    fmt: str,
    raw: bytes,
    encoding: str,
    allowed: tuple[str, ...],
    args: tuple[Any, ...],
) -> tuple[Any, ...]:
    decs: Decoders = _worker["decoders"]
    if generation != _worker["generation"]:  # the server dropped labels: forget everything
        decs = Decoders(decs.limits)
        _worker.update(decoders=decs, generation=generation)
    registries = decs.registries()
    journal: dict[int, Labels] = {}
    for r in registries:
        r.journal = journal
    try:
        body = decode_body(raw, encoding, allowed, decs.limits.max_decoded_bytes)
        extra, batch = decs.decode(fmt, body, args)
    except HakonError as exc:
        return ("error", exc.code, exc.message, exc.details, getattr(exc, "retry_after", None))
    finally:
        for r in registries:
            r.journal = None
    # Sorted by series here, on the worker's core: the store's head then merges
    # presorted chunks (timsort finds the runs) instead of sorting arrival order.
    order = np.argsort(batch.sample_series, kind="stable")
    ids, ts, values = batch.sample_series[order], batch.timestamps[order], batch.values[order]
    return ("ok", extra, ids, ts, values, journal)


def _rebuild_error(
    code: str, message: str, details: dict[str, Any], retry_after: float | None
) -> HakonError:
    """The error a worker raised, as the same kind of error here (pickling loses fields)."""
    cls = next(
        (
            c
            for c in vars(errors).values()
            if isinstance(c, type) and issubclass(c, HakonError) and c.code == code
        ),
        HakonError,
    )
    err = cls.__new__(cls)
    HakonError.__init__(err, message, details=details)
    if retry_after is not None:
        err.retry_after = retry_after  # type: ignore[attr-defined]
    return err


# -- this process ---------------------------------------------------------------------


class Decoding:
    """Where each body gets decoded, and the labels workers reported."""

    SWEEP_EVERY = 50_000
    INLINE_BYTES = 64 * 1024  # smaller bodies are decoded here even with workers
    THREAD_BYTES = 1 << 20  # without workers, bigger bodies are decoded in a thread

    def __init__(self, limits: IngestLimits, processes: int, known: Callable[[int], bool]) -> None:
        self.limits = limits
        self.inline = Decoders(limits)
        self._known = known  # is this id registered in the store?
        self._labels: dict[int, Labels] = {}
        self._sweep_at = self.SWEEP_EVERY
        self._generation = 0
        self._lock = threading.Lock()
        self.processes = processes
        self.pool: ProcessPoolExecutor | None = self._new_pool() if processes > 0 else None

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(self.limits,),
        )

    def _replace_pool(self, broken: ProcessPoolExecutor | None) -> None:
        """A worker was killed (OOM, signal): the pool is unusable; start a new one once."""
        with self._lock:
            if self.pool is broken and broken is not None:
                broken.shutdown(wait=False, cancel_futures=True)
                self.pool = self._new_pool()
                self._generation += 1  # new workers know nothing: they report every label
                log.warning("a decode worker died; decode workers restarted")

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)

    async def decode(
        self, fmt: str, raw: bytes, encoding: str, allowed: tuple[str, ...], *args: Any
    ) -> tuple[Any, SampleBatch]:
        if self.pool is None or len(raw) < self.INLINE_BYTES:
            if len(raw) < self.THREAD_BYTES:
                return self._decode_here(fmt, raw, encoding, allowed, args)
            # No worker processes: still keep a big body from stalling the event loop.
            return await asyncio.to_thread(self._decode_here, fmt, raw, encoding, allowed, args)
        loop = asyncio.get_running_loop()
        pool = self.pool
        try:
            result = await loop.run_in_executor(
                pool, _decode_in_worker, self._generation, fmt, raw, encoding, allowed, args
            )
        except BrokenProcessPool:
            self._replace_pool(pool)
            raise Unavailable(
                "a decode worker died; it has been restarted, retry the request", retry_after=1
            ) from None
        if result[0] == "error":
            raise _rebuild_error(*result[1:])
        _, extra, ids, ts, values, journal = result
        if journal:
            with self._lock:
                self._labels.update(journal)
                if len(self._labels) >= self._sweep_at:
                    self._sweep()
        batch = SampleBatch(
            series_ids=ids,
            series_labels=LabelsLookup(ids, self.labels_of),
            sample_series=ids,
            timestamps=ts,
            values=values,
        )
        return extra, batch

    def _decode_here(
        self, fmt: str, raw: bytes, encoding: str, allowed: tuple[str, ...], args: tuple[Any, ...]
    ) -> tuple[Any, SampleBatch]:
        body = decode_body(raw, encoding, allowed, self.limits.max_decoded_bytes)
        return self.inline.decode(fmt, body, args)

    def labels_of(self, sid: int) -> Labels:
        found = self._labels.get(sid)
        if found is None:
            with self._lock:
                self._generation += 1  # workers forget their caches and report again
            raise Unavailable(
                "a series arrived without its labels; decoders were reset, retry the request",
                retry_after=1,
            )
        return found

    def _sweep(self) -> None:
        """Drop labels the store has registered; if still too many, start afresh."""
        self._labels = {k: v for k, v in self._labels.items() if not self._known(k)}
        if len(self._labels) > self.limits.series_cache_size:
            self._labels = {}
            self._generation += 1
        self._sweep_at = len(self._labels) + self.SWEEP_EVERY

    def warm(self) -> None:
        """Start the workers now (in the background) rather than on the first large request."""
        if self.pool is not None:
            for _ in range(self.processes):
                self.pool.submit(_ready)


def default_processes() -> int:
    """One decode process per core but one (the server process keeps a core)."""
    return max(0, min(8, (os.cpu_count() or 1) - 1))
