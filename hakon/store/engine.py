"""The storage engine: one object that appends, reads, flushes, compacts and expires.

Threads and ownership (docs/format/wal.md has the durability argument):

- the *writer* thread owns the WAL and the head. Appenders queue their batch
  and wait; the writer takes everything queued, writes a WAL series record
  for series the index does not know and one samples record, and hands the
  group, with the head it belongs to, to the *syncer* thread, then goes on
  with the next group.
- the *syncer* takes every group handed over, fsyncs once for all of them
  (group commit, overlapped with the writer's next write), adds their new
  series to the index, inserts them into their heads in WAL order and wakes
  their appenders. If the fsync fails,
  everything written since the last good fsync is cut from the WAL and every
  pending append fails: nothing is acknowledged that is not durable.
- flush starts with a head swap that runs on the writer thread once the
  syncer has drained, so a sample is in exactly one head, and its WAL
  segment is older than the swap iff it is in the frozen head.
- the *maintenance* thread sorts sealed head chunks, copies series known only
  from the WAL into the catalog, flushes the head when it is big or old
  (series first: the checkpoint lets their WAL records go), merges blocks and
  applies retention. Big flushes and merges are written by a child process
  (blockwriter.py) and published here.
- readers take a snapshot (block list, frozen heads, head) under a short lock;
  blocks become visible and frozen heads disappear in the same critical
  section, so no read sees a sample twice or misses one.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hakon.errors import InsufficientStorage, InvalidRequest
from hakon.mallocpolicy import heap_usage, release_free_memory
from hakon.store import rollup as rollups_mod
from hakon.store.block import BlockFile
from hakon.store.blockwriter import BlockWriterProcess, Job, MetricKeys, with_seq, write_blocks
from hakon.store.cache import RowGroupCache
from hakon.store.catalog import Catalog
from hakon.store.compact import plan_compactions, plan_retention
from hakon.store.head import Head, HeadSnapshot
from hakon.store.index import SeriesIndex
from hakon.store.interface import RAW, ROLLUP_RESOLUTIONS_MS, Rollups, SampleBatch, Samples
from hakon.store.labels import Labels, Matcher, decode_many_labels
from hakon.store.manifest import BlockMeta, Manifest
from hakon.store.merge import EMPTY, Part, join, last_at_or_before, merge_parts
from hakon.store.wal import SeriesRecord, Wal, encode_samples, encode_series

log = logging.getLogger(__name__)
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


@dataclass(frozen=True)
class StoreOptions:
    block_duration_ms: int = 2 * HOUR_MS
    head_max_samples: int = 20_000_000
    head_max_age_s: float = 1800.0
    head_run_rows: int = 1 << 20
    wal_segment_bytes: int = 128 << 20
    retention_ms: dict[int, int] = field(
        default_factory=lambda: {RAW: 15 * DAY_MS, 300_000: 90 * DAY_MS, HOUR_MS: 400 * DAY_MS}
    )
    max_future_ms: int = 10 * 60_000
    row_group_rows: int = 8_192  # with 2-3 columns a row, smaller groups read faster
    compaction_min_blocks: int = 4
    compaction_max_rows: int = 64_000_000  # a merge holds its inputs in memory
    child_min_rows: int = 100_000  # flushes and merges this big run in a child process
    maintenance_interval_s: float = 5.0
    block_cache_bytes: int = 256 << 20
    block_cache_idle_s: float = 300.0

    def __post_init__(self) -> None:
        if self.block_duration_ms % HOUR_MS:
            raise ValueError("block duration must be a whole number of hours")


@dataclass
class Block:
    meta: BlockMeta
    file: BlockFile


@dataclass(frozen=True)
class Snapshot:
    raw: tuple[Block, ...]  # oldest data first (by seq)
    rollups: dict[str, Block]  # by block id
    heads: tuple[HeadSnapshot, ...]  # frozen heads oldest first, then the live head
    head_ranges: tuple[tuple[int, int], ...]


class Store:
    def __init__(self, data_dir: Path, catalog: Catalog, options: StoreOptions | None = None):
        self.dir = Path(data_dir)
        self.options = options or StoreOptions()
        self.catalog = catalog
        self.manifest = Manifest(catalog)
        self.index = SeriesIndex()
        self.blocks_dir = self.dir / "blocks"
        self.wal = Wal(self.dir / "wal", self.options.wal_segment_bytes)
        self._wake = threading.Event()
        self.head = Head(self.options.head_run_rows, self._wake)
        self._frozen: list[Head] = []
        self._blocks: dict[str, Block] = {}
        # (raw blocks in order, rollup blocks) as reads want them; None after a change
        self._views: tuple[tuple[Block, ...], dict[str, Block]] | None = None
        self._state = threading.Lock()
        self._maintenance_lock = threading.Lock()
        self._queue: deque[tuple[Any, Future[Any]]] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._sync_cond = threading.Condition()
        self._syncq: list[tuple[Any, ...]] = []  # (group, head, new series, series, ts, values)
        # Series durable in the WAL, not yet in the catalog (the maintenance thread adds them).
        self._unsaved_series: list[SeriesRecord] = []
        self._series_lock = threading.Lock()
        self._save_lock = threading.Lock()
        self._syncing = False
        self._sync_stop = False
        self._synced_offset = 0
        self._seq = 0
        self.damaged: list[dict[str, str]] = []
        self.block_cache = RowGroupCache(
            self.options.block_cache_bytes, self.options.block_cache_idle_s
        )
        self._readers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="hakon-read")
        self._child = BlockWriterProcess()
        self.wal_replay_seconds = 0.0
        self.wal_replayed_samples = 0

    # -- lifecycle -----------------------------------------------------------------

    def open(self) -> Store:
        self.blocks_dir.mkdir(parents=True, exist_ok=True)
        ids, labels = self.manifest.load_series()
        self.index.add(ids, labels)
        self._load_blocks()
        started = time.perf_counter()
        checkpoint = self.manifest.wal_checkpoint()
        self.wal.start_after(checkpoint)
        for record in self.wal.replay(checkpoint):
            if isinstance(record, SeriesRecord):
                self._replay_series(record)
                continue
            self.head.insert(record.series, record.timestamps, record.values, time.time())
            self.wal_replayed_samples += len(record.timestamps)
        self.save_series()
        self.wal_replay_seconds = time.perf_counter() - started
        self._wake.set()  # the maintenance thread sorts the replayed head in the background
        threads = ((self._writer_loop, "wal-writer"), (self._syncer_loop, "wal-syncer"),
                   (self._maintain, "maintenance"))  # fmt: skip
        for target, name in threads:
            thread = threading.Thread(target=target, name=f"hakon-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _replay_series(self, record: SeriesRecord) -> None:
        fresh = [i for i, sid in enumerate(record.ids.tolist()) if sid not in self.index]
        if not fresh:
            return
        ids, texts = record.ids[fresh], [record.labels[i] for i in fresh]
        try:
            labels = decode_many_labels(texts)
        except ValueError as exc:  # checksummed, so a bug rather than damage
            log.error("a WAL series record is unreadable (%s); its series are lost", exc)
            return
        self._series_synced(SeriesRecord(ids, texts), labels)

    def _load_blocks(self) -> None:
        known = set()
        for meta in self.manifest.blocks():
            path = self.dir / meta.file
            known.add(path.name)
            self._seq = max(self._seq, meta.seq)
            try:
                self._blocks[meta.id] = Block(meta, BlockFile.open(path))
                self._views = None
            except (OSError, ValueError) as exc:
                log.error("block %s (%s) is damaged and skipped: %s", meta.id, meta.file, exc)
                self.damaged.append({"block": meta.id, "file": meta.file, "error": str(exc)})
        for path in self.blocks_dir.iterdir():
            if path.name not in known:  # written but never published: a crash mid-flush
                log.info("removing unpublished block file %s", path.name)
                path.unlink(missing_ok=True)

    def close(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._wake.set()
        writer, syncer, maintenance = self._threads
        writer.join(timeout=30)
        with self._sync_cond:
            self._sync_stop = True
            self._sync_cond.notify_all()
        syncer.join(timeout=30)
        # A long flush or merge is abandoned rather than waited for: it publishes
        # atomically or not at all, its WAL stays until a later checkpoint, and
        # its stray files are removed at the next start.
        maintenance.join(timeout=5)
        if maintenance.is_alive():
            log.warning("storage maintenance still running at shutdown; abandoned")
            self._child.kill()
        self._readers.shutdown(wait=True)
        try:
            self.save_series()
        except Exception:  # they are in the WAL: the next start saves them
            log.exception("series not saved to the catalog at shutdown")
        self.wal.close()

    # -- writes --------------------------------------------------------------------

    def append(self, batch: SampleBatch) -> None:
        """Durable (fsynced) and visible when this returns; raises InvalidRequest if bad."""
        self.submit(batch).result()

    def submit(self, batch: SampleBatch) -> Future[Any]:
        """Queue a validated batch; the future completes once it is durable and visible.

        For callers that must not block a thread per write (the event loop wraps it).
        """
        self._validate(batch)
        if not len(batch):
            done: Future[Any] = Future()
            done.set_result(None)
            return done
        return self._submit(batch)

    def _validate(self, batch: SampleBatch) -> None:
        n = len(batch.timestamps)
        if len(batch.values) != n or len(batch.sample_series) != n:
            raise InvalidRequest("samples, timestamps and values differ in length", field="samples")
        if len(batch.series_ids) != len(batch.series_labels):
            raise InvalidRequest("series ids and labels differ in length", field="series")
        if not n:
            return
        now_ms = int(time.time() * 1000)
        oldest = now_ms - self.options.retention_ms[RAW]
        newest = now_ms + self.options.max_future_ms
        lo, hi = int(batch.timestamps.min()), int(batch.timestamps.max())
        if lo < oldest:
            raise InvalidRequest(
                f"timestamp {lo} is older than the raw retention (oldest accepted {oldest})",
                field="timestamp",
            )
        if hi > newest:
            raise InvalidRequest(
                f"timestamp {hi} is too far in the future (newest accepted {newest})",
                field="timestamp",
            )

    def _submit(self, item: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._cond:
            if self._stopping:
                raise RuntimeError("store is closed")
            self._queue.append((item, future))
            self._cond.notify()
        return future

    def _run_on_writer(self, fn: Callable[[], Any]) -> Any:
        return self._submit(fn).result()

    def _writer_loop(self) -> None:
        while True:
            control: tuple[Callable[[], Any], Future[Any]] | None = None
            group: list[tuple[SampleBatch, Future[Any]]] = []
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue and self._stopping:
                    return
                rows = 0
                while self._queue and rows < 4_000_000:
                    item, future = self._queue[0]
                    if callable(item):
                        if not group:  # controls run alone, in queue order
                            self._queue.popleft()
                            control = (item, future)
                        break
                    self._queue.popleft()
                    group.append((item, future))
                    rows += len(item)
            if control is not None:
                self._run_control(*control)
            elif group:
                self._commit_group(group)

    def _run_control(self, fn: Callable[[], Any], future: Future[Any]) -> None:
        try:
            self._drain_syncer()
            future.set_result(fn())
        except BaseException as exc:
            future.set_exception(exc)

    def _commit_group(self, group: list[tuple[SampleBatch, Future[Any]]]) -> None:
        """Register, encode and write one group; the syncer makes it durable and visible."""
        try:
            batches = [b for b, _ in group]
            new = self._new_series(batches)
            if len(batches) == 1:
                series, ts, values = (
                    batches[0].sample_series,
                    batches[0].timestamps,
                    batches[0].values,
                )
            else:
                series = np.concatenate([b.sample_series for b in batches])
                ts = np.concatenate([b.timestamps for b in batches])
                values = np.concatenate([b.values for b in batches])
            record = encode_samples(series, ts, values)
            if new is not None:
                record = encode_series(new.ids, new.labels) + record  # labels first
            if self.wal.needs_segment():
                self._drain_syncer()  # the syncer must not fsync a segment being closed
                self._synced_offset = 0
            with self._sync_cond:
                self.wal.append(record)
                self._syncq.append((group, self.head, new, series, ts, values))
                self._sync_cond.notify_all()
        except BaseException as exc:
            self._fail([group], exc)

    def _drain_syncer(self) -> None:
        with self._sync_cond:
            while self._syncq or self._syncing:
                self._sync_cond.wait()

    def _syncer_loop(self) -> None:
        while True:
            with self._sync_cond:
                while not self._syncq and not self._sync_stop:
                    self._sync_cond.wait()
                if not self._syncq:
                    return
                items, self._syncq = self._syncq, []
                self._syncing = True
                upto = self.wal.written
            try:
                self.wal.sync()
            except OSError as exc:
                with self._sync_cond:
                    self.wal.cut_unsynced(self._synced_offset)
                    items += self._syncq
                    self._syncq = []
                    self._syncing = False
                    self._sync_cond.notify_all()
                self._fail([group for group, *_ in items], exc)
                continue
            self._synced_offset = upto
            now = time.time()
            for group, head, new, series, ts, values in items:
                if new is not None:
                    self._series_synced(new)
                head.insert(series, ts, values, now)
                for _, future in group:
                    future.set_result(None)
            with self._sync_cond:
                self._syncing = False
                self._sync_cond.notify_all()

    @staticmethod
    def _fail(groups: list[list[tuple[SampleBatch, Future[Any]]]], exc: BaseException) -> None:
        error = exc
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            error = InsufficientStorage("no space left on the storage device; retry later")
        log.error("append failed: %s", exc)
        for group in groups:
            for _, future in group:
                future.set_exception(error)

    def _new_series(self, batches: Sequence[SampleBatch]) -> SeriesRecord | None:
        """The series of `batches` the index does not know, as a WAL series record.

        They are written ahead of the samples in the same fsync, and enter the index
        once that fsync is done; the catalog gets them later, off the write path (a
        DuckDB commit here stalled every append behind it: 6 ms for 4,500 series and
        up to 100 ms when it checkpointed). A series written by two groups in flight
        is recorded twice, which replay and the catalog both absorb.
        """
        new_ids: list[int] = []
        texts: list[bytes] = []
        seen: set[int] = set()
        for batch in batches:
            unknown = np.flatnonzero(self.index.unknown(batch.series_ids))
            if not len(unknown):
                continue
            _, first = np.unique(batch.series_ids[unknown], return_index=True)
            if len(first) < len(unknown):  # repeats: the first of each, in batch order
                unknown = unknown[np.sort(first)]
            sids = batch.series_ids[unknown].tolist()
            if seen:  # another batch of the group had some of them
                fresh = [k for k, sid in enumerate(sids) if sid not in seen]
                unknown, sids = unknown[fresh], [sids[k] for k in fresh]
            seen.update(sids)
            new_ids += sids
            texts += batch.label_texts_at(unknown)
        if not new_ids:
            return None
        return SeriesRecord(np.array(new_ids, dtype=np.int64), texts)

    def _series_synced(self, new: SeriesRecord, labels: Sequence[Labels] | None = None) -> None:
        # Without `labels`, the index decodes the record's texts when it indexes them.
        self.index.add(new.ids.tolist(), new.labels if labels is None else labels)
        with self._series_lock:
            self._unsaved_series.append(new)

    SAVE_SERIES_AT = 500_000  # unsaved series that make a round save them at once

    def _unsaved_count(self) -> int:
        with self._series_lock:
            return sum(len(r.ids) for r in self._unsaved_series)

    def save_series(self) -> None:
        """Copy series known only from the WAL into the catalog (before a checkpoint
        lets their WAL segments go, on the maintenance interval, at shutdown).

        One save at a time: a flush's save must not return while another thread's
        insert of earlier series is still uncommitted, or the checkpoint could drop
        WAL records whose labels are nowhere else yet."""
        with self._save_lock:
            with self._series_lock:
                pending, self._unsaved_series = self._unsaved_series, []
            if not pending:
                return
            try:
                self.manifest.add_encoded_series(
                    np.concatenate([r.ids for r in pending]),
                    [t for r in pending for t in r.labels],
                )
            except BaseException:
                with self._series_lock:
                    self._unsaved_series[:0] = pending
                raise

    # -- reads ---------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        with self._state:
            if self._views is None:
                ordered = sorted(
                    (b for b in self._blocks.values() if b.meta.resolution_ms == RAW),
                    key=lambda b: (b.meta.seq, b.meta.id),
                )
                rolled = {k: b for k, b in self._blocks.items() if b.meta.resolution_ms != RAW}
                self._views = (tuple(ordered), rolled)
            raw, rollups = self._views
            heads = [*self._frozen, self.head]
            ranges = tuple(
                (h.min_ts, h.max_ts) for h in heads if h.min_ts is not None and h.max_ts is not None
            )
            return Snapshot(raw, rollups, tuple(h.snapshot() for h in heads), ranges)

    def select(self, matchers: Sequence[Matcher]) -> dict[int, Labels]:
        return self.index.select(matchers)

    def series_upper_bound(self, matchers: Sequence[Matcher]) -> int | None:
        return self.index.upper_bound(matchers)

    def label_names(self, matchers: Sequence[Matcher] = ()) -> list[str]:
        if not matchers:
            return self.index.label_names()
        return self.index.label_names(self.index.select(matchers))

    def label_values(self, name: str, matchers: Sequence[Matcher] = ()) -> list[str]:
        if not matchers:
            return self.index.label_values(name)
        return self.index.label_values(name, self.index.select(matchers))

    # Rows a read at given times decodes at once from one block before thinning them.
    THIN_CHUNK_ROWS = 1 << 18
    # Wanted rows per piece of a read decoded on its own: pieces decode side by side.
    SPLIT_READ_ROWS = 1 << 18

    def _read_pieces(
        self, blocks: list[Block], ids: np.ndarray, start: int, end: int
    ) -> list[tuple[int, np.ndarray]]:
        """(block index, series) pieces of about `SPLIT_READ_ROWS` wanted rows each."""
        return [
            (i, chunk)
            for i, b in enumerate(blocks)
            for chunk in b.file.id_chunks(ids, start, end, self.SPLIT_READ_ROWS)
        ]

    def _read_side_by_side(
        self, blocks: list[Block], pieces: list[tuple[int, np.ndarray]], start: int, end: int
    ) -> list[Part]:
        """Each block's part from its pieces, decoded in the reader pool. Parquet
        decoding releases the GIL, and pyarrow's own threads split a read only by
        column, of which the timestamp column costs most. 1,000 series x 1 h of one
        2-hour block (960 row groups), fastest of 15 reads in three alternating runs:
        39-41 ms whole, 32-37 ms as two pieces (medians 42-58 against 43-46; pieces
        of 2^17 rows, three here, were no better). The pieces of a block hold
        disjoint, increasing series, so they join back in order."""

        def read(piece: tuple[int, np.ndarray]) -> Samples:
            return blocks[piece[0]].file.read_raw(piece[1], start, end)

        done = list(self._readers.map(read, pieces))
        parts: list[Part] = []
        for i in range(len(blocks)):
            joined = join([s for (b, _), s in zip(pieces, done, strict=True) if b == i])
            if len(joined):
                parts.append((joined.series, joined.timestamps, joined.values))
        return parts

    def read(
        self,
        ids: np.ndarray | Sequence[int],
        start: int,
        end: int,
        at: np.ndarray | None = None,
    ) -> Samples:
        ids = np.unique(np.asarray(ids, dtype=np.int64))
        return self._read(self.snapshot(), ids, start, end, at)

    def _read(
        self, snap: Snapshot, ids: np.ndarray, start: int, end: int, at: np.ndarray | None = None
    ) -> Samples:
        """`at`: keep only each series' last sample at or before each of these times, part
        by part before the merge: a dashboard's instant selector over 15 minutes of 500
        series scraped every 250 ms then merges 30,000 samples instead of 2.4 million."""

        def thin(part: Part) -> Part:
            if at is None:
                return part
            keep = last_at_or_before(part[0], part[1], at)
            return part if keep.all() else (part[0][keep], part[1][keep], part[2][keep])

        def block_part(b: Block, cache: RowGroupCache | None = None) -> Part:
            if at is None:
                s = b.file.read_raw(ids, start, end, cache)
                return s.series, s.timestamps, s.values
            # Thinned a piece at a time: the decoded rows of one piece are all that is
            # held at once (a 15-minute dashboard query over a merged block of 500
            # series pushed 4x/s decodes 2.4 M rows and keeps 30 k).
            pieces = []
            for chunk in b.file.id_chunks(ids, start, end, self.THIN_CHUNK_ROWS):
                s = b.file.read_raw(chunk, start, end, cache)
                pieces.append(thin((s.series, s.timestamps, s.values)))
            if not pieces:
                return EMPTY.series, EMPTY.timestamps, EMPTY.values
            if len(pieces) == 1:
                return pieces[0]
            series, ts, values = (np.concatenate(column) for column in zip(*pieces, strict=True))
            return series, ts, values

        blocks = [b for b in snap.raw if b.meta.max_ts >= start and b.meta.min_ts <= end]
        pieces = self._read_pieces(blocks, ids, start, end) if at is None and len(ids) > 64 else []
        if len(pieces) > len(blocks):
            parts = self._read_side_by_side(blocks, pieces, start, end)
        elif len(blocks) > 1 and len(ids) > 64:
            # Parquet decoding releases the GIL: blocks decode side by side.
            parts = list(self._readers.map(block_part, blocks))
        else:
            parts = [block_part(b, self.block_cache) for b in blocks]
        for head in snap.heads:
            parts.extend(thin(p) for p in head.read_runs(ids, start, end))
            parts.extend(head.read_chunks(ids, start, end))  # unsorted: merged as they are
        merged = merge_parts(parts, ids)
        if at is None:
            return merged
        keep = last_at_or_before(merged.series, merged.timestamps, at)
        return Samples(merged.series[keep], merged.timestamps[keep], merged.values[keep])

    def read_rollups(
        self, ids: np.ndarray | Sequence[int], start: int, end: int, resolution_ms: int
    ) -> Rollups:
        if resolution_ms not in ROLLUP_RESOLUTIONS_MS:
            raise InvalidRequest(
                f"rollup resolution must be one of {ROLLUP_RESOLUTIONS_MS} ms", field="resolution"
            )
        ids = np.unique(np.asarray(ids, dtype=np.int64))
        snap = self.snapshot()
        block_ms = self.options.block_duration_ms
        first = start - start % block_ms
        raw_by_p: dict[int, list[Block]] = {}
        for b in snap.raw:
            raw_by_p.setdefault(b.meta.partition_start, []).append(b)
        rollups_by_p: dict[int, list[Block]] = {}
        for b in snap.rollups.values():
            if b.meta.resolution_ms == resolution_ms:
                rollups_by_p.setdefault(b.meta.partition_start, []).append(b)
        head_ps: set[int] = set()
        for h_lo, h_hi in snap.head_ranges:
            lo_p, hi_p = max(h_lo, first), min(h_hi, end)
            head_ps.update(range(lo_p - lo_p % block_ms, hi_p + 1, block_ms))
        partitions = sorted(
            p for p in set(raw_by_p) | set(rollups_by_p) | head_ps if first <= p <= end
        )
        parts: list[Rollups] = []
        for p in partitions:
            p_end = p + block_ms - 1
            lo, hi = max(start, p), min(end, p_end)
            raw = raw_by_p.get(p, [])
            stored = [snap.rollups.get(f"{b.meta.id}@{resolution_ms}") for b in raw]
            if len(raw) == 1 and stored[0] is not None and p not in head_ps:
                # One compacted raw block: its rollups are exact.
                parts.append(
                    rollups_mod.read_rollup_block(stored[0].file, ids, lo, hi, self.block_cache)
                )
            elif raw or p in head_ps:
                # Overlapping blocks or head data: stored rollups could double count.
                samples = self._read(snap, ids, p, p_end)
                computed = rollups_mod.compute(samples, resolution_ms)
                keep = (computed.bucket >= lo) & (computed.bucket <= hi)
                parts.append(Rollups(*(getattr(computed, c)[keep] for c in rollups_mod.COLUMNS)))
            else:
                # Raw data has expired: the rollups are all there is.
                for block in rollups_by_p.get(p, []):
                    parts.append(
                        rollups_mod.read_rollup_block(block.file, ids, lo, hi, self.block_cache)
                    )
        return rollups_mod.concat(parts)

    # -- flush, compaction, retention ---------------------------------------------------

    def _swap_head(self) -> tuple[Head, int]:
        """On the writer thread: freeze the head and start a new WAL segment."""
        checkpoint = self.wal.rotate()
        with self._state:
            frozen = self.head
            self._frozen.append(frozen)
            self.head = Head(self.options.head_run_rows, self._wake)
        return frozen, checkpoint

    def flush(self) -> int:
        """Cut the whole head into blocks now; returns the number of samples flushed.

        Every frozen head still pending (one whose flush failed) is written too:
        the checkpoint published here deletes their WAL segments as well.
        """
        with self._maintenance_lock:
            started = time.perf_counter()
            _, checkpoint = self._run_on_writer(self._swap_head)
            with self._state:
                pending = list(self._frozen)
            try:
                # The checkpoint lets the WAL's series records go: their labels first.
                self.save_series()
                parts = [p for h in pending for p in h.snapshot().all_parts()]
                written = self._write_blocks(self._job(), parts, sum(len(p[1]) for p in parts))
                added = [m for metas in written for m in with_seq(metas, self._next_seq())]
                self.manifest.publish(added, wal_checkpoint=checkpoint)
            except BaseException:
                log.exception("flush failed; the frozen head stays readable and in the WAL")
                self._remove_unpublished()
                raise
            opened = [Block(m, BlockFile.open(self.dir / m.file)) for m in added]
            with self._state:
                for block in opened:
                    self._blocks[block.meta.id] = block
                self._views = None
                for head in pending:
                    self._frozen.remove(head)
            self.wal.remove_before(checkpoint)
            flushed = sum(m.rows for m in added if m.resolution_ms == RAW)
            log.info("flushed %d samples to %d blocks in %.2f s", flushed,
                     len(added) // (1 + len(ROLLUP_RESOLUTIONS_MS)),
                     time.perf_counter() - started)  # fmt: skip
            return flushed

    def _job(self, **fields: Any) -> Job:
        o = self.options
        return Job(str(self.dir), o.block_duration_ms, o.row_group_rows, **fields)

    def _write_blocks(self, job: Job, parts: list[Part], rows: int) -> list[list[BlockMeta]]:
        """Merge and write in a child process when big enough (blockwriter.py says why)."""
        keys = MetricKeys(*self.index.metric_keys())
        if rows >= self.options.child_min_rows:
            return self._child.run(job, parts, keys)
        return write_blocks(job, parts, keys)

    def _remove_unpublished(self) -> None:
        """Delete block files no manifest entry names (left by a failed flush or merge).

        Called under the maintenance lock, so no publish is in progress.
        """
        with self._state:
            known = {Path(b.meta.file).name for b in self._blocks.values()}
        for path in self.blocks_dir.iterdir():
            if path.name not in known:
                path.unlink(missing_ok=True)

    def _next_seq(self) -> int:
        with self._state:
            self._seq += 1
            return self._seq

    def compact(self, now_ms: int | None = None, force: bool = False) -> int:
        """Merge blocks per the plan (`force`: every partition with more than one block).

        Returns the number of merges done.
        """
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        merges = 0
        with self._maintenance_lock:
            with self._state:
                metas = [b.meta for b in self._blocks.values()]
            plans = plan_compactions(
                metas,
                now_ms,
                self.options.block_duration_ms,
                self.options.compaction_min_blocks,
                self.options.compaction_max_rows,
                whole=force,
            )
            for group in plans:
                try:
                    self._merge(group)
                except BaseException:
                    self._remove_unpublished()
                    raise
                merges += 1
        return merges

    def _merge(self, group: list[BlockMeta]) -> None:
        job = self._job(
            files=tuple(m.file for m in group),
            partition=group[0].partition_start,
            seq=max(m.seq for m in group),
        )
        added = [m for metas in self._write_blocks(job, [], sum(m.rows for m in group))
                 for m in metas]  # fmt: skip
        removed = [m.id for m in group] + [
            f"{m.id}@{res}" for m in group for res in ROLLUP_RESOLUTIONS_MS
        ]
        with self._state:
            removed = [r for r in removed if r in self._blocks]
        self.manifest.publish(added, removed)
        opened = [Block(m, BlockFile.open(self.dir / m.file)) for m in added]
        with self._state:
            old = [self._blocks.pop(r) for r in removed]
            for block in opened:
                self._blocks[block.meta.id] = block
            self._views = None
        for block in old:
            self._remove_file(block.meta.file)

    def _remove_file(self, file: str) -> None:
        path = self.dir / file
        self.block_cache.forget(str(path))
        path.unlink(missing_ok=True)

    def apply_retention(self, now_ms: int | None = None) -> int:
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        with self._maintenance_lock:
            with self._state:
                metas = [b.meta for b in self._blocks.values()]
            expired = plan_retention(
                metas, now_ms, self.options.block_duration_ms, self.options.retention_ms
            )
            if not expired:
                return 0
            self.manifest.publish([], [m.id for m in expired])
            with self._state:
                for m in expired:
                    self._blocks.pop(m.id, None)
                self._views = None
            for m in expired:
                self._remove_file(m.file)
            return len(expired)

    def _maintain(self) -> None:
        while not self._stopping:
            woken = self._wake.wait(self.options.maintenance_interval_s)
            self._wake.clear()
            if self._stopping:
                return
            try:
                self.head.seal_pending(lambda: self._stopping)
                if not woken or self._unsaved_count() >= self.SAVE_SERIES_AT:
                    # On the interval, not at every seal: a burst of new series (a
                    # cluster's first payloads) is saved in one insert after it, not
                    # in pieces that hold the catalog while the burst is served.
                    self.save_series()
                self.index.index_pending()
                head = self.head
                age = time.time() - head.first_insert if head.first_insert else 0.0
                flushed = head.samples >= self.options.head_max_samples or (
                    head.samples and age >= self.options.head_max_age_s
                )
                if flushed:
                    self.flush()
                merged = self.compact()
                retired = self.apply_retention()
                self.block_cache.expire()
                if flushed or merged or retired or self._heap_bloated():
                    release_free_memory()  # freed heap, kept by glibc until trimmed
            except Exception:
                log.exception("storage maintenance failed; retrying in the next round")

    # Freed heap the allocator may keep before a maintenance round hands it back.
    HEAP_FREE_KEPT_BYTES = 64 << 20

    def _heap_bloated(self) -> bool:
        """Queries, evaluation and ingest free memory between flushes too; a trim costs
        6-12 ms (measured in the soak), so it runs when the kept heap passes a bound:
        the soak's resident size at 6 minutes went 445-465 -> 400 MiB."""
        heap = heap_usage()
        return heap is not None and heap["free_kept"] > self.HEAP_FREE_KEPT_BYTES

    def unflushed_samples(self) -> int:
        """Samples in memory not yet written to blocks (the live head and frozen ones)."""
        return self.head.samples + sum(h.samples for h in tuple(self._frozen))

    # -- admin ---------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        with self._state:
            blocks = list(self._blocks.values())
            head_samples = self.head.samples + sum(h.samples for h in self._frozen)
        raw = [b for b in blocks if b.meta.resolution_ms == RAW]
        return {
            "series": len(self.index),
            "samples": sum(b.meta.rows for b in raw) + head_samples,
            "head_samples": head_samples,
            "blocks": len(raw),
            "block_bytes": sum(b.meta.bytes for b in raw),
            "rollup_blocks": len(blocks) - len(raw),
            "rollup_bytes": sum(b.meta.bytes for b in blocks if b.meta.resolution_ms != RAW),
            "wal_bytes": self.wal.size_bytes(),
            "block_cache_bytes": self.block_cache.nbytes,
            "wal_replayed_samples": self.wal_replayed_samples,
            "wal_replay_seconds": round(self.wal_replay_seconds, 3),
            "damaged": list(self.damaged),
        }
