"""Rolling a phase back exactly, from nothing but the journal.

A phase's applied changes are undone in reverse order: created objects are deleted, updated
objects are restored to their pre-image (server-side apply of the pre-image with the same field
manager, then a merge patch removing fields the phase added that the pre-image lacks), deleted
objects are recreated. Restarts are undone last, once every label and annotation is back: the pod
template's ``restartedAt`` annotation is restored to its pre-image value, which changes the
template and so restarts the workload again with the restored configuration.

Each undo is itself journaled write-ahead (``undo_of`` the original), and the original is marked
``reverted`` after it, so a rollback interrupted by a crash is completed by running it again; an undo
the crash left journaled but already sent is recognised on the cluster and not sent twice.
``phases_to_undo`` says which phases a rollback request covers: the last phase that changed
something back to the named one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from runbook_engine.engine.executor import EXACT, RESTART_VALUE, is_applied, restart_annotation, write_change
from runbook_engine.engine.journal import ChangeOrigin, ChangeRecord, ChangeState, RunRecord, RunStore
from runbook_engine.engine.objects import strip_server_fields
from runbook_engine.errors import RunStateError
from runbook_engine.kube.change import Change, ChangeKind
from runbook_engine.kube.cluster import Cluster, Obj

UndoCallback = Callable[[Change], None]


def undo_of(original: Change, live: Obj | None) -> Change:
    """The change that returns the object of ``original`` to its pre-image, given its live state."""
    reason = f"undo {original.kind.value} of {original.ref}"
    if original.kind is ChangeKind.CREATE:
        return Change(ChangeKind.DELETE, original.ref, before=live, after=None, reason=reason)
    if original.kind is ChangeKind.RESTART:
        value = restart_annotation(original.before)
        return Change(ChangeKind.RESTART, original.ref, before=live, after=original.before, reason=reason,
                      meta={RESTART_VALUE: value})
    image = strip_server_fields(original.before or {})
    kind = ChangeKind.CREATE if live is None else ChangeKind.UPDATE
    return Change(kind, original.ref, before=live, after=image, reason=reason, meta={EXACT: True})


def undo_order(records: Sequence[ChangeRecord]) -> list[ChangeRecord]:
    """Reverse journal order, with restarts moved after every other undo."""
    newest_first = sorted(records, key=lambda r: r.seq, reverse=True)
    others = [r for r in newest_first if r.change.kind is not ChangeKind.RESTART]
    restarts = [r for r in newest_first if r.change.kind is ChangeKind.RESTART]
    return others + restarts


def phases_to_undo(store: RunStore, record: RunRecord, phase: str | None) -> list[tuple[int, str]]:
    """The (index, name) of each phase with applied changes, newest first, down to ``phase`` (all when None)."""
    applied = {(c.phase_index, c.phase) for c in store.changes(record.id, undo=False)}
    ordered = sorted(applied, reverse=True)
    if phase is None:
        return ordered
    matches = [i for i, n in ordered if n == phase]
    if not matches:
        raise RunStateError(f"run {record.id} changed nothing in a phase named {phase!r}",
                            hint="phases with changes: " + ", ".join(n for _, n in ordered))
    return [(i, n) for i, n in ordered if i >= matches[0]]


@dataclass
class PhaseRollback:
    """Undo the applied changes of one phase of one run."""

    cluster: Cluster
    store: RunStore
    run_id: str
    on_undo: UndoCallback | None = None

    def run(self, phase_index: int) -> list[Change]:
        """Undo the phase; returns the undo changes written. Safe to call again after a crash."""
        originals = [r for r in self.store.changes(self.run_id, phase_index=phase_index, undo=False)
                     if r.state is not ChangeState.REVERTED]
        undos = {r.undo_of: r for r in self.store.changes(self.run_id, phase_index=phase_index, undo=True)}
        done: list[Change] = []
        for record in undo_order(originals):
            change = self._undo_one(record, undos.get(record.seq))
            if change is not None:
                done.append(change)
        return done

    def _undo_one(self, record: ChangeRecord, previous: ChangeRecord | None) -> Change | None:
        if previous is not None and previous.state is ChangeState.APPLIED:
            self.store.mark([record.seq], ChangeState.REVERTED)
            return None
        live = self.cluster.get(record.change.ref)
        if previous is None and record.state is ChangeState.PLANNED and not is_applied(record.change, live):
            self.store.mark([record.seq], ChangeState.REVERTED)  # never written: nothing to undo
            return None
        if previous is not None:
            undo, seq = previous.change, previous.seq
        else:
            undo = undo_of(record.change, live)
            origin = ChangeOrigin(record.phase_index, record.phase, record.batch, record.task_key, record.task)
            seq = self.store.plan_changes(self.run_id, origin, [undo], undo_of=[record.seq])[0]
        if previous is None or not is_applied(undo, live):  # an undo sent before a crash is not sent twice
            write_change(self.cluster, undo)
        self.store.mark([seq], ChangeState.APPLIED)
        self.store.mark([record.seq], ChangeState.REVERTED)
        if self.on_undo is not None:
            self.on_undo(undo)
        return undo
