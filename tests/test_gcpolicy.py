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


def test_settle_freezes_survivors_and_runs_the_full_pass_when_due() -> None:
    freezer = GcFreezer(full_every_s=3600)
    try:
        kept = [Node() for _ in range(1000)]
        freezer.settle()
        frozen = gc.get_freeze_count()
        assert frozen >= len(kept)
        a, b = Node(), Node()
        a.other, b.other = b, a
        probe = weakref.ref(a)
        freezer.settle()
        del a, b
        gc.collect()
        assert probe() is not None  # frozen with the survivors until the full pass
        freezer.full_every_s = 0  # due now
        freezer.settle()
        assert probe() is None
        assert gc.get_freeze_count() >= len(kept)  # the survivors are frozen again
    finally:
        gc.unfreeze()
