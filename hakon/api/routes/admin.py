"""`/api/v1/admin`: storage maintenance on demand, and what the store holds."""

from __future__ import annotations

import asyncio

import pyarrow as pa
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from hakon.alerting.rules import RuleFileError
from hakon.api.auth import require, runtime_of
from hakon.errors import InvalidRequest
from hakon.mallocpolicy import heap_usage

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], dependencies=[Depends(require("admin"))])


class DamagedBlock(BaseModel):
    block: str
    file: str
    error: str


class DamagedRow(BaseModel):
    table: str
    key: str
    error: str


class StorageStats(BaseModel):
    series: int = Field(description="Series known to the index.")
    samples: int = Field(description="Raw samples stored, in blocks and in the head.")
    head_samples: int
    blocks: int = Field(description="Raw Parquet blocks.")
    block_bytes: int = Field(description="Bytes of raw blocks on disk.")
    rollup_blocks: int
    rollup_bytes: int
    wal_bytes: int
    block_cache_bytes: int = Field(
        description="Decoded row groups held in memory (bounded by block_cache_size)."
    )
    wal_replayed_samples: int = Field(description="Samples restored from the WAL at start.")
    wal_replay_seconds: float
    catalog_memory_bytes: int = Field(
        0, description="Memory DuckDB holds for the catalog (its buffers and indexes)."
    )
    arrow_memory_bytes: int = Field(0, description="Bytes allocated by Arrow's memory pool.")
    heap_in_use_bytes: int = Field(0, description="glibc heap in use (0 where not glibc).")
    heap_free_kept_bytes: int = Field(
        0, description="glibc heap freed but kept by the allocator (fragmentation)."
    )
    damaged: list[DamagedBlock] = Field(description="Blocks that could not be opened.")
    damaged_rows: list[DamagedRow] = Field(
        default_factory=list, description="Catalog rows that could not be read (skipped)."
    )


class FlushResult(BaseModel):
    flushed_samples: int
    merges: int
    storage: StorageStats


@router.get("/storage", response_model=StorageStats, summary="What the store holds")
async def storage(request: Request) -> StorageStats:
    return _stats(request)


def _stats(request: Request) -> StorageStats:
    runtime = runtime_of(request)
    catalog = runtime.catalog
    rows = [DamagedRow(**d) for d in catalog.damaged] if catalog is not None else []
    memory = catalog.memory_bytes() if catalog is not None else 0
    heap = heap_usage() or {}
    return StorageStats(
        **runtime.store.stats(),
        damaged_rows=rows,
        catalog_memory_bytes=memory,
        arrow_memory_bytes=pa.total_allocated_bytes(),
        heap_in_use_bytes=heap.get("in_use", 0),
        heap_free_kept_bytes=heap.get("free_kept", 0),
    )


@router.post(
    "/flush", response_model=FlushResult, summary="Cut the head into blocks and compact now"
)
async def flush(request: Request) -> FlushResult:
    store = runtime_of(request).store

    def run() -> tuple[int, int]:
        return store.flush(), store.compact(force=True)

    flushed, merges = await asyncio.to_thread(run)
    return FlushResult(flushed_samples=flushed, merges=merges, storage=_stats(request))


class ReloadResult(BaseModel):
    groups: int = Field(description="Rule groups loaded.")
    rules: int = Field(description="Rules loaded.")


@router.post(
    "/reload",
    response_model=ReloadResult,
    summary="Reload the rule files (as SIGHUP does)",
    responses={400: {"description": "A rule file has problems; the running rules stay."}},
)
async def reload(request: Request) -> ReloadResult:
    manager = runtime_of(request).rules
    try:
        await asyncio.to_thread(manager.load)
    except RuleFileError as exc:
        raise InvalidRequest(
            "rule files have problems; the running rules stay: " + "; ".join(exc.problems),
            field="rules",
            details={"problems": exc.problems},
        ) from None
    groups = list(manager.groups.values())
    return ReloadResult(groups=len(groups), rules=sum(len(g.rules) for g in groups))
