"""Writing blocks (a flush's or a merge's), in this process or in a child process.

Why a child: a flush of a 20 M-sample head is ~5 s of merging, encoding and
Parquet writing, much of it holding the GIL, and the ingest event loop waited
behind it (p99 30 ms without a flush in the window, 220-360 ms with one). Its
memory, up to a few GB for a large merge, was freed into glibc's heap and
kept: the server's resident size stepped up at every flush. A child runs on
the other core at its own pace and gives all of its memory back when it exits;
the parent only copies the head's sorted parts into a memory file the child
maps (one write per array, without the GIL: through a pipe the same 480 MB took
the server 0.9-1.2 s of GIL hand-offs) and waits without the GIL.

Jobs below `child_min_rows` samples run in this process: a child costs
~0.3 s to start, more than a small flush.

The child touches nothing but its block files: it writes them atomically and
answers with their metadata; the parent publishes them in the catalog. A child
that fails or is killed leaves unpublished files, which the next flush or
start removes. The child dies with its parent (PR_SET_PDEATHSIG).

Protocol: the memory file (`memfd`, its descriptor number the child's argument)
holds the raw bytes of the metric-key arrays and of each part's arrays, in the
order the job lists them. Parent -> child on stdin: `u64 length` + pickled
`Job`. Child -> parent on stdout: `u64 length` + pickled `("ok", metas)` or
`("error", exception)`.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import pickle
import signal
import struct
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

import numpy as np

from hakon.store import rollup as rollups_mod
from hakon.store.block import BlockFile, write_raw_block
from hakon.store.compact import split_by_partition
from hakon.store.interface import RAW, ROLLUP_RESOLUTIONS_MS, Samples
from hakon.store.labels import METRIC_NAME, series_id
from hakon.store.manifest import BlockMeta
from hakon.store.merge import Part, merge_in_pieces, run_starts

LENGTH = struct.Struct("<Q")
NO_METRIC_KEY = series_id(((METRIC_NAME, ""),))
CHILD_NICENESS = 10


@dataclass(frozen=True)
class MetricKeys:
    """Per series id (sorted), a key of its metric name: rows of one metric sit together
    in a block (dashboards read one metric's series at a time)."""

    ids: np.ndarray
    keys: np.ndarray

    def of_runs(self, series: np.ndarray) -> np.ndarray:
        """One key per run of equal ids in sorted `series`."""
        if not len(series):
            return np.empty(0, dtype=np.int64)
        firsts = series[run_starts(series)]
        if not len(self.ids):
            return np.full(len(firsts), NO_METRIC_KEY, dtype=np.int64)
        pos = np.searchsorted(self.ids, firsts)
        pos[pos == len(self.ids)] = 0
        return np.where(self.ids[pos] == firsts, self.keys[pos], NO_METRIC_KEY)


@dataclass(frozen=True)
class Job:
    """What to write. `parts` (a flush: sorted head runs and chunks) or `files` (a
    merge: raw blocks of `partition`, oldest first); `seq` is the merge's."""

    data_dir: str
    block_ms: int
    row_group_rows: int
    part_rows: tuple[int, ...] = ()
    key_rows: int = 0
    files: tuple[str, ...] = ()
    partition: int | None = None
    seq: int = 0


def write_blocks(job: Job, parts: list[Part], keys: MetricKeys) -> list[list[BlockMeta]]:
    """Merge, split and write; per partition, its raw block's meta then its rollups'.

    Metas carry `job.seq`; a flush's caller gives each partition a seq of its own."""
    data_dir = Path(job.data_dir)
    if job.files:
        parts = []
        for file in job.files:
            s = BlockFile.open(data_dir / file).read_raw(None, -(2**63), 2**63 - 1)
            parts.append((s.series, s.timestamps, s.values))
    merged = merge_in_pieces(parts)
    if job.partition is not None:
        pieces = [(job.partition, merged)] if len(merged) else []
    else:
        pieces = split_by_partition(merged, job.block_ms)
    return [_write_partition(job, p, samples, keys) for p, samples in pieces]


def _write_partition(
    job: Job, partition: int, samples: Samples, keys: MetricKeys
) -> list[BlockMeta]:
    block_id = f"{partition}-{uuid.uuid4().hex[:12]}"
    data_dir = Path(job.data_dir)
    rel = f"blocks/{block_id}.parquet"
    groups = keys.of_runs(samples.series)
    size = write_raw_block(samples, data_dir / rel, job.row_group_rows, groups)
    ts = samples.timestamps
    lo, hi = int(ts.min()), int(ts.max())
    metas = [BlockMeta(block_id, RAW, partition, lo, hi, len(samples), size, rel, job.seq)]
    for res in ROLLUP_RESOLUTIONS_MS:
        r = rollups_mod.compute(samples, res)
        rel_r = f"blocks/{block_id}@{res}.parquet"
        size_r = rollups_mod.write_rollup_block(r, data_dir / rel_r, job.row_group_rows)
        lo, hi = (int(r.bucket.min()), int(r.bucket.max())) if len(r) else (partition, partition)
        metas.append(
            BlockMeta(f"{block_id}@{res}", res, partition, lo, hi, len(r), size_r, rel_r, job.seq)
        )
    return metas


def with_seq(metas: list[BlockMeta], seq: int) -> list[BlockMeta]:
    return [replace(m, seq=seq) for m in metas]


# -- the parent's side ----------------------------------------------------------------


class ChildFailed(RuntimeError):
    """The child exited without an answer (killed, crashed)."""


class BlockWriterProcess:
    """One child process running one job; `kill` is for shutdown."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None

    def run(self, job: Job, parts: list[Part], keys: MetricKeys) -> list[list[BlockMeta]]:
        arrays = [keys.ids, keys.keys]
        for series, ts, values in parts:  # as the child reads them back
            arrays += [np.ascontiguousarray(series, np.int64), np.ascontiguousarray(ts, np.int64),
                       np.ascontiguousarray(values, np.float64)]  # fmt: skip
        job = replace(job, part_rows=tuple(len(p[1]) for p in parts), key_rows=len(keys.ids))
        shared = _memory_file()
        try:
            for a in arrays:
                _write_all(shared, a.data.cast("B"))
            self.proc = proc = subprocess.Popen(
                [sys.executable, "-m", "hakon.store.blockwriter", str(shared)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                pass_fds=(shared,),
            )
        finally:
            os.close(shared)  # the child holds its own descriptor
        assert proc.stdin is not None and proc.stdout is not None
        try:
            with contextlib.suppress(BrokenPipeError):  # the child died: see below
                head = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
                proc.stdin.write(LENGTH.pack(len(head)) + head)
                proc.stdin.flush()
            _close(proc.stdin)
            answer = _read_answer(proc.stdout)
        finally:
            _close(proc.stdin)
            code = proc.wait()
            proc.stdout.close()
        if answer is None:
            raise ChildFailed(f"block writer exited with status {code} and no answer")
        status, payload = answer
        if status == "error":
            raise payload
        return payload  # type: ignore[no-any-return]

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()


def _close(pipe: IO[bytes]) -> None:
    with contextlib.suppress(OSError):  # a dead child's pipe cannot take the last bytes
        pipe.close()


def _memory_file() -> int:
    """A file in memory for the parts (an unlinked temporary file where there is no memfd)."""
    if hasattr(os, "memfd_create"):
        return os.memfd_create("hakon-block-writer")
    fd, path = tempfile.mkstemp(prefix="hakon-block-writer-")
    os.unlink(path)
    return fd


def _write_all(fd: int, data: memoryview) -> None:
    while len(data):  # os.write releases the GIL for the copy
        data = data[os.write(fd, data) :]


def _read_exact(src: IO[bytes], n: int) -> bytes | None:
    data = src.read(n)
    return data if data is not None and len(data) == n else None


def _read_answer(src: IO[bytes]) -> tuple[str, Any] | None:
    size = _read_exact(src, LENGTH.size)
    if size is None:
        return None
    body = _read_exact(src, LENGTH.unpack(size)[0])
    return None if body is None else pickle.loads(body)  # type: ignore[no-any-return]


# -- the child's side -----------------------------------------------------------------


def _die_with_parent() -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:  # the parent died before prctl
        os._exit(1)


class _Arrays:
    """The parent's arrays, read in order from the mapped memory file."""

    def __init__(self, fd: int) -> None:
        size = os.fstat(fd).st_size
        # Private: copy-on-write pages, so code that sorts in place may take them.
        self.buffer = mmap.mmap(fd, size, flags=mmap.MAP_PRIVATE) if size else b""
        self.offset = 0

    def next(self, rows: int, dtype: type) -> np.ndarray:
        out: np.ndarray = np.frombuffer(self.buffer, dtype=dtype, count=rows, offset=self.offset)
        self.offset += out.nbytes
        return out


def child_main() -> int:
    _die_with_parent()
    # Below the server and its decode workers: a flush may take longer, the requests
    # arriving meanwhile should not (on 2 cores the three compete for CPU).
    os.nice(CHILD_NICENESS)
    src, out = sys.stdin.buffer, sys.stdout.buffer
    size = _read_exact(src, LENGTH.size)
    head = None if size is None else _read_exact(src, LENGTH.unpack(size)[0])
    if head is None:
        return 1
    job: Job = pickle.loads(head)
    arrays = _Arrays(int(sys.argv[1]))
    keys = MetricKeys(arrays.next(job.key_rows, np.int64), arrays.next(job.key_rows, np.int64))
    parts = [
        (arrays.next(n, np.int64), arrays.next(n, np.int64), arrays.next(n, np.float64))
        for n in job.part_rows
    ]
    try:
        answer: tuple[str, Any] = ("ok", write_blocks(job, parts, keys))
    except Exception as exc:  # handed to the parent, which logs it
        answer = ("error", exc)
    try:
        body = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # an exception that does not pickle
        body = pickle.dumps(("error", RuntimeError(f"block writer failed: {exc!r}")))
    out.write(LENGTH.pack(len(body)) + body)
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(child_main())
