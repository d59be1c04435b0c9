"""The GC policy freezes survivors, and its periodic full pass still reclaims frozen cycles."""

from __future__ import annotations

import gc
import threading
import weakref

from hakon.gcpolicy import GcFreezer, collector_paused


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


def test_pauses_nest_across_threads_and_restore_the_collector() -> None:
    """The collector is off while any pause lasts, whichever thread holds it, and on
    again after the last one only if it was on before the first."""
    assert gc.isenabled()
    entered, release = threading.Event(), threading.Event()

    def other_thread() -> None:
        with collector_paused():
            entered.set()
            release.wait(10)

    t = threading.Thread(target=other_thread)
    with collector_paused():
        assert not gc.isenabled()
        t.start()
        assert entered.wait(10)
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert not gc.isenabled()  # the other thread's pause still lasts
    release.set()
    t.join()
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # it was off before: left off
    finally:
        gc.enable()
