"""Let query-sized arrays reuse freed memory instead of faulting in fresh pages.

glibc serves every allocation above its mmap threshold (at most 32 MiB, however
it adapts) with a fresh mapping and unmaps it on free. A range query over tens
of thousands of series makes a few dozen temporaries of 40-100 MB each, so every
numpy operation first page-faults its whole output in: measured here as up to
half of a query's time. Raising the threshold keeps such blocks in the heap,
and a matching trim threshold keeps up to that much free heap for the next
query instead of returning it at once. Only glibc has `mallopt`; elsewhere this
is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
from typing import Any

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8


@functools.cache
def _libc(function: str) -> Any:
    """A glibc function, or None where the C library has no such function.

    Looked up once: `find_library` runs `ldconfig -p` in a subprocess, and the
    heap is measured every maintenance round and every storage report."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return getattr(ctypes.CDLL(name), function)
    except (OSError, AttributeError):
        return None


def _mallopt(param: int, value: int) -> bool:
    """glibc's `mallopt`; False where there is none or it refused the value."""
    mallopt = _libc("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(param, value))


def keep_large_blocks(threshold_bytes: int = 512 << 20) -> bool:
    """True when glibc accepted the thresholds."""
    ok = _mallopt(M_MMAP_THRESHOLD, threshold_bytes) and _mallopt(M_TRIM_THRESHOLD, threshold_bytes)
    if not ok:
        log.info("mallopt refused the thresholds; large arrays stay mmapped")
    return ok


def limit_arenas(count: int) -> bool:
    """Let at most `count` glibc arenas serve the process's threads; True if accepted.

    glibc gives threads up to 8 arenas per core, and each keeps its own freed heap
    for its next caller: queries on the worker threads leave a few hundred MiB in
    each. In the soak (a full 15-minute dashboard window) the default reached
    855-1,015 MiB with ~500 MiB of it freed heap; two arenas 500-720 MiB with
    150-290 MiB. Arenas that already exist stay; call it before the threads start."""
    return _mallopt(M_ARENA_MAX, count)


def release_free_memory() -> bool:
    """Hand the heap's free pages back to the system (glibc `malloc_trim`).

    The thresholds above keep freed blocks for the next query; after a head
    flush, though, the freed memory is the old head's and stays free until the
    next flush, so keeping it only inflates the resident size."""
    trim = _libc("malloc_trim")
    if trim is None:
        return False
    trim.argtypes = [ctypes.c_size_t]
    return bool(trim(0))


def arrow_on_system_heap() -> bool:
    """Let Arrow allocate from the C heap instead of its bundled allocator; True if so.

    pyarrow's default pool (mimalloc in its wheels) keeps the pages that decoded
    row groups and Parquet reads freed in its own arena: in the soak that arena
    held 320-360 MiB resident while Arrow had 140 MiB allocated, out of reach of
    the maintenance trim and of the heap figures in the storage report. On the
    C heap the same trim hands those pages back (the soak's last flush cycle:
    median 842 -> 699 MiB) and queries ran as fast (a 15-minute dashboard query
    over 800 series with the cache off: 85 and 90 ms, medians of 15). Where the
    operator chose a pool with `ARROW_DEFAULT_MEMORY_POOL`, that choice stays."""
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return False
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())
    return True


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def heap_usage() -> dict[str, int] | None:
    """glibc's view of its heap (`mallinfo2`): bytes in use, free but kept, and mmapped.

    What an operator needs to tell a leak (in use grows) from fragmentation
    (free but kept grows) when the resident size rises."""
    mallinfo2 = _libc("mallinfo2")
    if mallinfo2 is None:
        return None
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return {
        "in_use": int(info.uordblks + info.hblkhd),
        "free_kept": int(info.fordblks),
        "mmapped": int(info.hblkhd),
    }
