"""The malloc policy applies on glibc (this test machine) and never raises."""

import platform

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
