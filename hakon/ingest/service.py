"""The ingest path as one object: a decoder per format, admission control, the append.

Knows nothing of HTTP: it takes bytes and parameters, returns batches and
raises `hakon.errors` types. Admission bounds the samples accepted but not
yet durable; past the bound a write is refused at once (Unavailable with a
retry hint) instead of queueing without limit, so memory stays bounded and
senders back off.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import msgspec

from hakon.config import Settings
from hakon.errors import Unavailable
from hakon.ingest.collectors import COLLECTORS
from hakon.ingest.decoding import Decoding
from hakon.ingest.edge import NodeMetrics
from hakon.ingest.hakongo import REQUEST_TYPES
from hakon.ingest.limits import IngestLimits
from hakon.store.engine import Store
from hakon.store.interface import SampleBatch


def limits_from(settings: Settings) -> IngestLimits:
    return IngestLimits(
        max_body_bytes=settings.ingest_max_body_bytes,
        max_decoded_bytes=settings.ingest_max_decoded_bytes,
        max_samples=settings.ingest_max_samples,
        max_labels=settings.ingest_max_labels,
        max_label_name_length=settings.ingest_max_label_name_length,
        max_label_value_length=settings.ingest_max_label_value_length,
        max_future_ms=int(settings.max_future * 1000),
        retention_ms=int(settings.retention_raw * 1000),
        series_cache_size=settings.ingest_series_cache_size,
        body_timeout_s=settings.ingest_body_timeout,
    )


class Ingest:
    """Decoders for every format, plus the admission bounds: requests in flight, samples
    not yet durable, and samples in memory not yet written to blocks.

    The last one is what keeps memory bounded when flushes fall behind: a flush
    takes longer than the head took to fill when the writes outrun the block
    writer (every sample new, a slow disk), and each head would then be larger
    than the one before. Past `HEAD_BACKLOG_FACTOR` heads' worth, writes are
    refused with a retry hint until a flush catches up.
    """

    HEAD_BACKLOG_FACTOR = 3

    def __init__(
        self,
        store: Store,
        limits: IngestLimits,
        max_pending_samples: int,
        max_concurrent_requests: int = 32,
        decode_processes: int = 0,
    ) -> None:
        self.store = store
        self.limits = limits
        self.decoding = Decoding(limits, decode_processes, store.index.__contains__)
        self.max_pending = max_pending_samples
        self.max_concurrent = max_concurrent_requests
        self.max_unflushed = self.HEAD_BACKLOG_FACTOR * store.options.head_max_samples
        self._pending = 0
        self._active = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def request(self) -> Iterator[None]:
        """Hold one of the concurrent-request slots for a whole request, or refuse at once."""
        with self._lock:
            if self._active >= self.max_concurrent:
                raise Unavailable(
                    f"ingest is serving {self._active} requests already; retry shortly",
                    retry_after=1,
                    details={"active_requests": self._active, "limit": self.max_concurrent},
                )
            self._active += 1
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1

    def close(self) -> None:
        self.decoding.close()

    async def decode(
        self, fmt: str, raw: bytes, encoding: str, allowed: tuple[str, ...], *args: Any
    ) -> tuple[Any, SampleBatch]:
        """Undo the Content-Encoding and decode; (what the format reports, the batch)."""
        return await self.decoding.decode(fmt, raw, encoding, allowed, *args)

    @property
    def pending_samples(self) -> int:
        return self._pending

    def check_capacity(self) -> None:
        """Refuse early (before reading a body) when already past a bound."""
        if self._pending >= self.max_pending:
            raise self._overloaded()
        unflushed = self.store.unflushed_samples()
        if unflushed >= self.max_unflushed:
            raise Unavailable(
                f"storage is behind: {unflushed} samples wait in memory to be written to "
                "blocks; retry shortly",
                retry_after=5,
                details={"unflushed_samples": unflushed, "limit": self.max_unflushed},
            )

    async def append(self, batch: SampleBatch) -> None:
        """Return once the batch is durable; Unavailable if too much is in flight."""
        n = len(batch)
        if not n:
            return
        with self._lock:
            if self._pending and self._pending + n > self.max_pending:
                raise self._overloaded()
            self._pending += n
        try:
            await asyncio.wrap_future(self.store.submit(batch))
        finally:
            with self._lock:
                self._pending -= n

    def _overloaded(self) -> Unavailable:
        return Unavailable(
            f"ingest is at capacity ({self._pending} samples waiting to be made durable); "
            "retry shortly",
            retry_after=1,
            details={"pending_samples": self._pending, "limit": self.max_pending},
        )


def request_schemas() -> dict[str, Any]:
    """JSON Schemas of the JSON ingest bodies, for the OpenAPI document's components."""
    types = [REQUEST_TYPES[c.path] for c in COLLECTORS] + [NodeMetrics]
    _, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}"
    )
    for schema in components.values():
        for prop in schema.get("properties", {}).values():
            default = prop.get("default")
            if isinstance(default, float) and default != default:
                del prop["default"]  # NaN stands for "not sent"; JSON has no NaN
    return components
