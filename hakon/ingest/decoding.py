"""Decoding, in this process or in decode worker processes.

Decoding and flattening is most of the CPU an ingest request costs, and the
GIL lets one process use one core. So large bodies are decoded in worker
processes (`ingest_decode_processes`), while this process serves HTTP and
appends to the store. Small bodies are decoded inline: a process hop costs
more than they do.

A worker returns plain arrays plus the labels of the series it has not seen
before (its registry's journal), as the texts the store writes to its WAL and
catalog. This process keeps those texts until the
store has registered the series; the store asks for the labels of ids it does
not know. Should an id ever arrive without labels (this process dropped them
while a worker still had the id cached), the request is refused with a retry
hint and every worker starts afresh, so the retry carries the labels.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
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
from hakon.ingest.series import SeriesRegistry, TextsLookup
from hakon.ingest.workers import WorkerDied, WorkerProcess
from hakon.store.interface import SampleBatch

log = logging.getLogger(__name__)


class Decoders:
    """One decoder per format; `decode` dispatches by a format name."""

    def __init__(self, limits: IngestLimits, keep_labels: bool = True) -> None:
        """`keep_labels=False` in a decode worker: see `SeriesRegistry.keeps_labels`."""
        self.limits = limits
        self.hakongo: dict[str, HakonGoDecoder] = decoders(limits)
        self.edge = EdgeDecoder(limits)
        self.remote_write = RemoteWriteDecoder(limits)
        self.exposition = ExpositionDecoder(limits)
        self.influx = InfluxDecoder(limits)
        for registry in self.registries():
            registry.keeps_labels = keep_labels

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


# -- results from workers ------------------------------------------------------------


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
    INLINE_BYTES = 16 * 1024  # smaller bodies are decoded here: the hop costs more
    THREAD_BYTES = 1 << 20  # without workers, bigger bodies are decoded in a thread

    def __init__(self, limits: IngestLimits, processes: int, known: Callable[[int], bool]) -> None:
        self.limits = limits
        self.inline = Decoders(limits)
        self._known = known  # is this id registered in the store?
        self._texts: dict[int, bytes] = {}  # new series' labels, as workers send them
        self._sweep_at = self.SWEEP_EVERY
        self._generation = 0
        self._lock = threading.Lock()
        self.processes = processes
        self.workers: list[WorkerProcess] = []

    def warm(self) -> None:
        """Start the workers now rather than on the first large request."""
        with self._lock:
            while len(self.workers) < self.processes:
                self.workers.append(WorkerProcess(self.limits))

    async def detach(self) -> None:
        """Let go of the running event loop (before it ends); see `WorkerProcess.detach`."""
        for w in list(self.workers):
            await w.detach()

    def close(self) -> None:
        with self._lock:
            workers, self.workers = self.workers, []
        for w in workers:
            w.stop()

    def _worker(self) -> WorkerProcess:
        """The least busy live worker; a dead one is replaced (its caches are gone with it,
        so every worker starts a new generation and reports labels afresh)."""
        self.warm()
        with self._lock:
            for i, w in enumerate(self.workers):
                if not w.alive():
                    w.stop()
                    self.workers[i] = WorkerProcess(self.limits)
                    self._generation += 1
                    log.warning("a decode worker died; it has been restarted")
            return min(self.workers, key=lambda w: w.outstanding)

    async def decode(
        self, fmt: str, raw: bytes, encoding: str, allowed: tuple[str, ...], *args: Any
    ) -> tuple[Any, SampleBatch]:
        if self.processes <= 0 or len(raw) < self.INLINE_BYTES:
            if len(raw) < self.THREAD_BYTES:
                return self._decode_here(fmt, raw, encoding, allowed, args)
            # No worker processes: still keep a big body from stalling the event loop.
            return await asyncio.to_thread(self._decode_here, fmt, raw, encoding, allowed, args)
        try:
            header, payload, offset = await self._worker().call(
                (self._generation, fmt, encoding, allowed, args), raw
            )
        except WorkerDied:
            raise Unavailable(
                "a decode worker died; it has been restarted, retry the request", retry_after=1
            ) from None
        if header[0] == "error":
            raise _rebuild_error(*header[1:])
        if header[0] == "crash":
            raise RuntimeError(f"decode worker failed: {header[1]}")
        _, extra, n, new = header
        ids = np.frombuffer(payload, dtype=np.int64, count=n, offset=offset)
        ts = np.frombuffer(payload, dtype=np.int64, count=n, offset=offset + 8 * n)
        values = np.frombuffer(payload, dtype=np.float64, count=n, offset=offset + 16 * n)
        if new:
            at = offset + 24 * n
            new_ids = np.frombuffer(payload, dtype=np.int64, count=new, offset=at)
            ends = np.cumsum(np.frombuffer(payload, dtype=np.int64, count=new, offset=at + 8 * new))
            blob = bytes(memoryview(payload)[at + 16 * new :])
            starts = [0, *ends[:-1].tolist()]
            texts = [blob[a:b] for a, b in zip(starts, ends.tolist(), strict=True)]
            with self._lock:
                self._texts.update(zip(new_ids.tolist(), texts, strict=True))
                if len(self._texts) >= self._sweep_at:
                    self._sweep()
        batch = SampleBatch(
            series_ids=ids,
            series_labels=TextsLookup(ids, self.text_of),
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

    def text_of(self, sid: int) -> bytes:
        """The label text a worker reported for `sid` (Unavailable if there is none)."""
        found = self._texts.get(sid)
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
        self._texts = {k: v for k, v in self._texts.items() if not self._known(k)}
        if len(self._texts) > self.limits.series_cache_size:
            self._texts = {}
            self._generation += 1
        self._sweep_at = len(self._texts) + self.SWEEP_EVERY


def default_processes() -> int:
    """One decode process per core but one (the server process keeps a core)."""
    return max(0, min(8, (os.cpu_count() or 1) - 1))
