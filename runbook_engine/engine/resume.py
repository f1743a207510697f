"""Resuming a run: whether it may continue, where, with which facts, and whether the cluster drifted.

A pause records a *fingerprint*: a hash of every object the run changed (as the server holds it,
server-managed fields stripped) and the verdicts of the last checkpoint. Before a paused run
continues, ``DriftCheck`` re-runs that checkpoint and compares: an object that changed, or a check
that passed at the pause and fails now, is drift, and the run pauses again unless the operator
accepts it. A checkpoint that still does not let the run continue, without having regressed,
pauses the run at that checkpoint, as it did the first time.

``ResumePoint`` says where a paused or interrupted run picks up; the facts tasks registered are
restored from the journal slot of that point (or the latest slot before it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from runbook_engine.engine.checkpoint import Decision, decide
from runbook_engine.engine.emitter import RunEmitter
from runbook_engine.engine.events import EventKind
from runbook_engine.engine.journal import RunRecord, RunStatus, RunStore, Stage, owner_alive
from runbook_engine.engine.objects import fingerprint, strip_server_fields
from runbook_engine.engine.phases import PhaseRef
from runbook_engine.engine.run_state import RunState, RunStopped, record_position
from runbook_engine.errors import RunStateError
from runbook_engine.kube.refs import ObjectRef
from runbook_engine.report.verdict import Status, Verdict

#: Re-runs the checkpoint checks of a phase of a run and returns their verdicts.
Recheck = Callable[[RunState, PhaseRef], list[Verdict]]
_OK_STATUSES = frozenset({Status.PASS, Status.FLAG, Status.SKIP, Status.PREEXISTING})


def check_resumable(record: RunRecord, at_phase: str | None) -> None:
    """Refuse to resume a completed run, a run another live process drives, or a rolled-back run without a phase."""
    if record.status is RunStatus.COMPLETED:
        raise RunStateError(f"run {record.id} is already completed", hint="start a new run with `runbook run`")
    if record.status is RunStatus.RUNNING and owner_alive(record.owner):
        raise RunStateError(f"run {record.id} is still running in process {record.owner}",
                            hint="wait for it to pause or finish")
    if record.status is RunStatus.ROLLED_BACK and at_phase is None:
        raise RunStateError(f"run {record.id} was rolled back",
                            hint="resume with --at-phase PHASE to run that phase again")


@dataclass(frozen=True)
class ResumePoint:
    """Where a resumed run continues, and the gate the resume acknowledged (resuming is the go-ahead)."""

    index: int
    stage: Stage
    acknowledged: tuple[int, Stage] | None

    @classmethod
    def of(cls, record: RunRecord) -> ResumePoint:
        """A paused run passes the gate it paused at; an interrupted one picks up exactly where it stood."""
        stage, acknowledged = record.stage, None
        if record.status is RunStatus.PAUSED:
            if stage is Stage.CHECKPOINT:
                stage = Stage.AFTER  # the checkpoint just passed again
            if stage in (Stage.BEFORE, Stage.AFTER):
                acknowledged = (record.phase_index, stage)
        if stage is Stage.DONE:
            return cls(record.phase_index + 1, Stage.BEFORE, acknowledged)
        return cls(record.phase_index, stage, acknowledged)


def resume_facts(store: RunStore, record: RunRecord) -> dict[str, Any]:
    """The facts of the run where it stopped: at its phase's start while its tasks had not finished."""
    slot = "start" if record.stage in (Stage.BEFORE, Stage.TASKS) else "end"
    return store.load_vars(record.id, f"{record.phase_index}:{slot}") or latest_facts(
        store, record.id, record.phase_index)


def restart_facts(store: RunStore, run_id: str, index: int) -> dict[str, Any]:
    """The facts of the run at the start of phase ``index`` (to run that phase again)."""
    return store.load_vars(run_id, f"{index}:start") or latest_facts(store, run_id, index)


def latest_facts(store: RunStore, run_id: str, index: int) -> dict[str, Any]:
    """The facts of the latest slot saved at or before phase ``index`` (none when the run saved none)."""
    for i in range(index, -1, -1):
        for slot in ("end", "start"):
            found = store.load_vars(run_id, f"{i}:{slot}")
            if found is not None:
                return found
    return {}


def pause_fingerprint(store: RunStore, run: RunState) -> dict[str, Any]:
    """What a pause records to detect drift: the run's objects and its last checkpoint's verdicts."""
    verdicts = store.verdicts(run.id, run.last_checkpoint) if run.last_checkpoint >= 0 else []
    return {"objects": object_prints(store, run), "checkpoint": run.last_checkpoint,
            "verdicts": {v.title: v.status.value for v in verdicts}}


def object_prints(store: RunStore, run: RunState) -> dict[str, str | None]:
    """A hash of each object the run changed as the server holds it now (None: it does not exist)."""
    refs = sorted({c.change.ref for c in store.changes(run.id)})
    return {_ref_key(ref): _print(run.cluster.get(ref)) for ref in refs}


class DriftCheck:
    """Before a paused run continues: re-run its last checkpoint and compare the cluster with the pause."""

    def __init__(self, store: RunStore, events: RunEmitter, recheck: Recheck) -> None:
        self.store = store
        self.events = events
        self.recheck = recheck

    def verify(self, run: RunState, record: RunRecord, accept_drift: bool) -> None:
        """Raise ``RunStopped`` (the run paused again) when the cluster drifted and drift is not accepted."""
        saved = record.fingerprint
        ref = run.phases[record.phase_index]
        drift = [f"{key} changed since the pause" for key, value in object_prints(self.store, run).items()
                 if saved.get("objects", {}).get(key, value) != value]
        if run.last_checkpoint >= 0:
            drift += self._checkpoint_drift(run, run.phases[run.last_checkpoint], saved)
        if drift:
            self.events.run_event(run, EventKind.DRIFT, "; ".join(drift), {"drift": drift, "accepted": accept_drift},
                                  phase=ref.phase.name)
        if drift and not accept_drift:
            reason = "cluster drifted since the pause: " + "; ".join(drift)
            self.store.set_status(run.id, RunStatus.PAUSED, reason=reason)
            raise RunStopped(RunStatus.PAUSED, reason)

    def _checkpoint_drift(self, run: RunState, ref: PhaseRef, saved: Mapping[str, Any]) -> list[str]:
        """The checks that regressed since the pause; pauses at the checkpoint if it still holds the run."""
        verdicts = self.recheck(run, ref)
        self.store.save_verdicts(run.id, ref.index, verdicts)
        decision, reason = decide(verdicts, ref.phase.checkpoint)
        regressed = _regressions(saved.get("verdicts", {}), verdicts)
        if decision is not Decision.CONTINUE and not regressed:
            record_position(self.store, run, ref, Stage.CHECKPOINT)
            self.store.set_status(run.id, RunStatus.PAUSED, reason=reason)
            self.events.run_event(run, EventKind.PAUSED, reason, {"stage": Stage.CHECKPOINT.value},
                                  phase=ref.phase.name)
            raise RunStopped(RunStatus.PAUSED, reason)
        return regressed


def _regressions(before: Mapping[str, str], verdicts: Sequence[Verdict]) -> list[str]:
    """Checks that were fine at the pause (``before``: title → status) and are not now."""
    return [f"check {v.title!r} was {before[v.title]} at the pause and is {v.status.value} now"
            for v in verdicts if v.title in before and Status(before[v.title]) in _OK_STATUSES
            and v.status not in _OK_STATUSES]


def _ref_key(ref: ObjectRef) -> str:
    return f"{ref.api_version}/{ref}"


def _print(obj: Mapping[str, Any] | None) -> str | None:
    return None if obj is None else fingerprint(strip_server_fields(obj))
