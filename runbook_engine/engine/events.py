"""Progress events: how the engine tells the outside world what it is doing, without printing.

The runner emits one ``Event`` per step (play, phase, batch, task, change, check, pause, rollback,
end of run) to an ``EventSink`` callback; the CLI renders them, the journal stores them. Event data
is redacted before it leaves the engine (``redact_event_data``), so no sink ever sees Secret data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class EventKind(StrEnum):
    RUN_START = "run_start"
    PLAY_START = "play_start"
    PHASE_START = "phase_start"
    PHASE_SKIPPED = "phase_skipped"
    PHASE_END = "phase_end"
    BATCH_START = "batch_start"
    TASK_START = "task_start"
    TASK_RESULT = "task_result"
    CHANGE = "change"
    DIFF = "diff"
    PROGRESS = "progress"
    LOG = "log"
    CHECKPOINT_START = "checkpoint_start"
    CHECK_RESULT = "check_result"
    CHECKPOINT_DECISION = "checkpoint_decision"
    DRIFT = "drift"
    PAUSED = "paused"
    ROLLBACK_START = "rollback_start"
    ROLLBACK_CHANGE = "rollback_change"
    RUN_END = "run_end"


class TaskStatus(StrEnum):
    OK = "ok"
    CHANGED = "changed"
    FAILED = "failed"
    SKIPPED = "skipped"
    IGNORED = "ignored"  # failed, but ``ignore_errors`` said to carry on
    RESCUED = "rescued"  # a block failed and its ``rescue`` section recovered it


@dataclass(frozen=True)
class Event:
    """One step of a run; ``data`` holds kind-specific details (already redacted)."""

    kind: EventKind
    message: str = ""
    run_id: str = ""
    cluster: str = ""
    phase: str = ""
    task: str = ""
    data: dict[str, Any] = field(default_factory=dict)


EventSink = Callable[[Event], None]


def discard(event: Event) -> None:
    """The sink that ignores every event (library callers that only want the outcome)."""
    del event
