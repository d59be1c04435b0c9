"""The malloc policy applies on glibc (this test machine) and never raises."""

import platform

from hakon.mallocpolicy import keep_large_blocks


def test_thresholds_are_accepted_on_glibc() -> None:
    applied = keep_large_blocks(64 << 20)
    if platform.libc_ver()[0] == "glibc":
        assert applied
