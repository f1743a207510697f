"""Bulk work on hundreds of thousands of small objects (a cluster snapshot, a plan).

CPython's cyclic garbage collector runs a collection whenever enough container objects have been
allocated since the last one, and each full collection walks every live container: with a snapshot
of tens of thousands of objects (millions of dicts and lists) in memory, the planner spent about a
third of its time in collections that found nothing to free, since manifests are trees and freed by
reference counting. ``gc_paused`` suspends automatic collection for a bounded piece of such work.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0  # blocks inside gc_paused, over all threads
_resume = False  # whether collection was enabled when the first of them started


@contextmanager
def gc_paused() -> Iterator[None]:
    """Suspend automatic garbage collection until the last block in any thread ends, then restore it.

    Memory freed by reference counting is freed as usual meanwhile; only cyclic garbage waits."""
    global _depth, _resume
    with _lock:
        if _depth == 0:
            _resume = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _resume:
                _promote_without_scanning()
                gc.enable()


def _promote_without_scanning() -> None:
    """Move every tracked object to the oldest generation and reset the allocation count.

    Otherwise the first allocation after re-enabling would collect the youngest generation, which
    now holds everything the block allocated: the very scan the pause avoided. ``freeze`` moves all
    objects to the permanent generation and zeroes the count; ``unfreeze`` returns them to the
    oldest one, which is collected only once it has grown by a quarter."""
    gc.freeze()
    gc.unfreeze()
