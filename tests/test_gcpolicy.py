"""The GC policy freezes survivors, and its periodic full pass still reclaims frozen cycles."""

from __future__ import annotations

import gc
import weakref

from hakon.gcpolicy import GcFreezer


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_frozen_cycles_are_reclaimed_by_the_full_pass() -> None:
    freezer = GcFreezer()
    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle, alive while we hold it
    probe = weakref.ref(a)
    try:
        freezer.freeze()
        assert gc.get_freeze_count() > 0
        del a, b  # now unreachable, but frozen: ordinary collections do not see it
        gc.collect()
        assert probe() is not None
        freezer.full()
        assert probe() is None
    finally:
        gc.unfreeze()
