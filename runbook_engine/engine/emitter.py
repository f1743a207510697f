"""Emitting a run's events: redacted, journaled (progress ticks excepted) and handed to the sink.

Every event the engine reports goes through ``RunEmitter``: its message and data are masked
(``mask_secrets``) before anything stores or shows them; it is added to the run's journal unless
it is a progress tick or the run is a check-mode run (which journals nothing); then the
``EventSink`` gets it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runbook_engine.engine.events import Event, EventKind, EventSink
from runbook_engine.engine.journal import RunStore
from runbook_engine.engine.phases import PhaseRef
from runbook_engine.engine.run_state import RunState
from runbook_engine.engine.secrets import mask_secrets
from runbook_engine.engine.tasks import Emit
from runbook_engine.kube.change import Change, ChangeKind

_VERBS = {ChangeKind.CREATE: "created", ChangeKind.UPDATE: "updated", ChangeKind.DELETE: "deleted",
          ChangeKind.RESTART: "restarted"}


class RunEmitter:
    """Reports events of runs to ``sink`` and journals them in ``store``."""

    def __init__(self, store: RunStore, sink: EventSink) -> None:
        self.store = store
        self.sink = sink

    def emit(self, run_id: str, cluster: str, kind: EventKind, message: str, *, phase: str = "", task: str = "",
             data: Mapping[str, Any] | None = None, journal: bool = True) -> None:
        """One event of run ``run_id``; ``journal=False`` shows it without storing it."""
        event = Event(kind, mask_secrets(message), run_id, cluster, phase, task, mask_secrets(dict(data or {})))
        if journal and kind is not EventKind.PROGRESS:  # progress ticks are for the screen only
            self.store.add_event(event)
        self.sink(event)

    def run_event(self, run: RunState, kind: EventKind, message: str, data: Mapping[str, Any] | None = None, *,
                  phase: str = "", task: str = "") -> None:
        """One event of a run in progress (journaled unless it is a check-mode run)."""
        self.emit(run.id, run.spec.name, kind, message, phase=phase, task=task, data=data,
                  journal=not run.options.check)

    def change(self, run: RunState, ref: PhaseRef, change: Change, written: bool) -> None:
        """A change a task applied (or, unwritten, would apply); with ``--diff`` its before and after."""
        data: dict[str, Any] = {"ref": str(change.ref), "change": change.kind.value, "written": written}
        if run.options.diff:
            data.update(before=change.before, after=change.after)
        self.run_event(run, EventKind.CHANGE, f"{_VERBS[change.kind]} {change.ref}", data, phase=ref.phase.name)

    def task_emitter(self, run: RunState, ref: PhaseRef) -> Emit:
        """The callback a phase's ``TaskRunner`` reports through; progress ticks also renew the lock."""
        def emit(kind: EventKind, message: str, task: str, data: dict[str, Any]) -> None:
            if kind is EventKind.PROGRESS and run.lock is not None:
                run.lock.renew_if_due()  # long waits (rollouts) must not let the lock expire
            self.run_event(run, kind, message, data, phase=ref.phase.name, task=task)

        return emit
