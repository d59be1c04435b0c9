"""The malloc policy applies on glibc (this test machine) and never raises."""

import platform
import subprocess
import sys

from hakon.mallocpolicy import heap_usage, keep_large_blocks


def test_thresholds_are_accepted_on_glibc() -> None:
    applied = keep_large_blocks(64 << 20)
    if platform.libc_ver()[0] == "glibc":
        assert applied


def test_heap_usage_sees_an_allocation_while_it_lives() -> None:
    if platform.libc_ver()[0] != "glibc":
        assert heap_usage() is None or "in_use" in heap_usage()  # type: ignore[operator]
        return
    before = heap_usage()
    assert before is not None
    block = bytearray(32 << 20)
    during = heap_usage()
    assert during is not None and during["in_use"] >= before["in_use"] + (30 << 20)
    del block
    after = heap_usage()
    assert after is not None and after["in_use"] < during["in_use"]


ARENAS = """
import ctypes, sys, tempfile, threading
from hakon.mallocpolicy import limit_arenas
if sys.argv[1] != "0":
    assert limit_arenas(int(sys.argv[1]))
barrier = threading.Barrier(8)
def work():
    barrier.wait()  # all eight threads allocate while the others live
    keep = [bytearray(4096) for _ in range(100)]
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
with tempfile.NamedTemporaryFile(suffix=".xml") as f:
    fp = libc.fopen(f.name.encode(), b"w")
    libc.malloc_info(0, fp)
    libc.fclose(fp)
    print(open(f.name).read().count("<heap nr="))
"""


def _arenas(limit: int) -> int:
    out = subprocess.run([sys.executable, "-c", ARENAS, str(limit)], capture_output=True,
                         text=True, check=True)  # fmt: skip
    return int(out.stdout)


def test_threads_share_no_more_arenas_than_the_limit() -> None:
    if platform.libc_ver()[0] != "glibc":
        return
    assert _arenas(0) > 2  # glibc's default gives the threads arenas of their own
    assert _arenas(2) == 2


POOL = """
import pyarrow as pa
from hakon.mallocpolicy import arrow_on_system_heap
print(arrow_on_system_heap(), pa.default_memory_pool().backend_name)
"""


def _pool(env: dict[str, str]) -> str:
    import os

    environ = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    out = subprocess.run([sys.executable, "-c", POOL], capture_output=True, text=True,
                         check=True, env={**environ, **env})  # fmt: skip
    return out.stdout.strip()


def test_arrow_allocates_from_the_c_heap_unless_the_operator_chose_a_pool() -> None:
    assert _pool({}) == "True system"
    assert _pool({"ARROW_DEFAULT_MEMORY_POOL": "mimalloc"}) == "False mimalloc"
