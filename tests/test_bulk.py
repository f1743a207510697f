"""Pausing the garbage collector for bulk work: restored exactly, by the last block to end."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from runbook_engine.bulk import gc_paused


@pytest.fixture(autouse=True)
def _restore_gc() -> Iterator[None]:
    was = gc.isenabled()
    yield
    (gc.enable if was else gc.disable)()


def test_paused_inside_and_restored_after_nested_blocks() -> None:
    gc.enable()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer block is still running
    assert gc.isenabled()


def test_a_disabled_collector_stays_disabled() -> None:
    gc.disable()
    with gc_paused():
        pass
    assert not gc.isenabled()


def test_restored_on_error() -> None:
    gc.enable()
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_overlapping_blocks_in_two_threads_resume_when_the_last_ends() -> None:
    gc.enable()
    entered, release = threading.Event(), threading.Event()

    def other() -> None:
        with gc_paused():
            entered.set()
            release.wait(5)

    thread = threading.Thread(target=other)
    with gc_paused():
        thread.start()
        assert entered.wait(5)
    assert not gc.isenabled()  # the other thread's block is still running
    release.set()
    thread.join(5)
    assert gc.isenabled()


def test_resuming_moves_what_the_block_allocated_to_the_oldest_generation() -> None:
    """Left in the youngest generation, the block's allocations would all be scanned by the first
    collection after resuming: the very cost the pause avoids."""
    gc.enable()
    gc.collect()  # every generation's count starts at zero
    with gc_paused():
        kept = [{"n": [i]} for i in range(50_000)]
    oldest = {id(o) for o in gc.get_objects(generation=2)}
    assert id(kept[0]) in oldest and id(kept[-1]) in oldest
