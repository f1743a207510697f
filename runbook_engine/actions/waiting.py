"""Bounded polling for the actions that wait (``rollout_restart``, ``wait_for``).

``wait_until`` calls an observation function until nothing is pending or the timeout passes,
reporting progress as ``(what, done, total)`` and sleeping at most ``interval`` between looks.
The clock and sleep are injectable so waits are testable without real time passing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from runbook_engine.actions.base import ActionContext

#: Pending items, by name, with why each is not done yet.
Pending = dict[str, str]



def timeout_field(default: float = 300.0) -> Any:
    """A pydantic field for a wait's timeout in seconds."""
    return Field(default=default, gt=0, le=86400, description="Seconds to wait before failing.")


def interval_field(default: float = 2.0) -> Any:
    """A pydantic field for the pause between two looks at the cluster, in seconds."""
    return Field(default=default, gt=0, le=60, description="Seconds between two looks at the cluster.")


@dataclass
class Clock:
    """Time source for waits (monotonic seconds and sleep)."""

    now: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


@dataclass
class WaitOutcome:
    """What was still pending when the wait ended (empty: everything converged)."""

    pending: Pending = field(default_factory=dict)
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.pending


def wait_until(
    ctx: ActionContext,
    what: str,
    total: int,
    observe: Callable[[], Pending],
    timeout: float,
    interval: float,
    clock: Clock | None = None,
) -> WaitOutcome:
    """Poll ``observe`` until it reports nothing pending or ``timeout`` seconds have passed."""
    clock = clock or Clock()
    start = clock.now()
    while True:
        pending = observe()
        if ctx.progress is not None:
            ctx.progress(what, max(total - len(pending), 0), total)
        elapsed = clock.now() - start
        if not pending or elapsed >= timeout:
            return WaitOutcome(pending, elapsed)
        clock.sleep(min(interval, timeout - elapsed))


def describe_pending(pending: Pending) -> str:
    return "; ".join(f"{name} ({why})" for name, why in sorted(pending.items()))
