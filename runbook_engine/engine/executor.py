"""Executing changes write-ahead: journal the exact pre-image, write, then mark applied.

``ChangeExecutor.execute`` takes the changes one task planned, re-reads each object so the
journaled pre-image is exactly what the cluster held, records them all as ``planned`` in one
transaction, and only then writes them one by one, marking each ``applied`` right after its write.
``reconcile`` finishes changes a crash left ``planned``: it reads the live object and either marks
the change applied (the write happened) or performs it (it did not), so nothing is done twice.

Writes: create/update are server-side applies with the ``runbook-engine`` field manager; an
update marked ``exact`` (rollback restoring a pre-image) additionally removes, with a merge patch,
fields the pre-image lacks; a change carrying a patch in ``meta`` (``actions.objects.patch_of``) is
sent as that patch; delete is a delete; restart patches the pod template's
``kubectl.kubernetes.io/restartedAt`` annotation to the value journaled in ``meta``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from runbook_engine.actions.objects import patch_of
from runbook_engine.engine.journal import ChangeOrigin, ChangeRecord, ChangeState, RunStore
from runbook_engine.engine.objects import contains, merge_patch_between, strip_server_fields
from runbook_engine.errors import RunbookError
from runbook_engine.kube.caching import CachingCluster
from runbook_engine.kube.change import Change, ChangeKind
from runbook_engine.kube.cluster import Cluster, Obj, PatchType
from runbook_engine.kube.merge import json_patch, merge_patch, strategic_merge

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
EXACT = "exact"  # meta flag: the update must leave the object equal to ``after``
RESTART_VALUE = "restarted_at"  # meta key: the restartedAt value a restart writes (None removes it)


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, RunbookError) and exc.retryable


_with_retries = retry(
    retry=retry_if_exception(_retryable),
    stop=stop_after_attempt(5),
    wait=wait_exponential(multiplier=0.2, max=5),
    reraise=True,
)


def restart_annotation(obj: Obj | None) -> str | None:
    """The pod template's restartedAt annotation of a workload, if any."""
    template = ((obj or {}).get("spec") or {}).get("template") or {}
    value = ((template.get("metadata") or {}).get("annotations") or {}).get(RESTARTED_AT)
    return None if value is None else str(value)


def restart_patch(value: str | None) -> Obj:
    return {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: value}}}}}


def is_applied(change: Change, live: Obj | None) -> bool:
    """Whether the cluster already shows ``change`` as written."""
    if change.kind is ChangeKind.DELETE:
        return live is None
    if live is None:
        return False
    if change.kind is ChangeKind.RESTART:
        return restart_annotation(live) == change.meta.get(RESTART_VALUE)
    current = strip_server_fields(live)
    carried = patch_of(change)
    if carried is not None and carried[1] is not PatchType.APPLY:
        return strip_server_fields(_patched_locally(live, *carried)) == current
    wanted = strip_server_fields(change.after or {})
    return current == wanted if change.meta.get(EXACT) else contains(current, wanted)


def _patched_locally(live: Obj, patch: Any, patch_type: PatchType) -> Obj:
    """What ``patch`` would make of ``live`` (to tell whether a journaled patch was already sent)."""
    if patch_type is PatchType.JSON:
        result = json_patch(live, patch)
    elif patch_type is PatchType.STRATEGIC:
        result = strategic_merge(live, patch)
    else:
        result = merge_patch(live, patch)
    return dict(result)


@_with_retries
def write_change(cluster: Cluster, change: Change) -> Obj | None:
    """Perform one change against the cluster (idempotent: a repeat leaves the same state)."""
    if change.kind is ChangeKind.DELETE:
        return cluster.delete(change.ref)
    if change.kind is ChangeKind.RESTART:
        return _restart(cluster, change)
    carried = patch_of(change)
    if carried is not None and carried[1] is not PatchType.APPLY:
        return cluster.patch(change.ref, carried[0], patch_type=carried[1], field_manager=change.field_manager)
    wanted = strip_server_fields(change.after or {})
    stored = cluster.apply(wanted, field_manager=change.field_manager, force=True)
    if change.meta.get(EXACT):
        extra = merge_patch_between(strip_server_fields(stored), wanted)
        if extra:
            stored = cluster.patch(change.ref, extra, patch_type=PatchType.MERGE,
                                   field_manager=change.field_manager)
    return stored


def _restart(cluster: Cluster, change: Change) -> Obj:
    """Set (or, for a value of None, remove) the template's restartedAt annotation.

    Removing the only annotation removes the then-empty ``annotations`` map too, as a pre-image
    without annotations had none.
    """
    value = change.meta.get(RESTART_VALUE)
    patch = restart_patch(value)
    if value is None:
        template = ((_read(cluster, change) or {}).get("spec") or {}).get("template") or {}
        annotations = (template.get("metadata") or {}).get("annotations") or {}
        if set(annotations) <= {RESTARTED_AT}:
            patch = {"spec": {"template": {"metadata": {"annotations": None}}}}
    return cluster.patch(change.ref, patch, patch_type=PatchType.MERGE, field_manager=change.field_manager)


def _read(cluster: Cluster, change: Change) -> Obj | None:
    """The live object, past any read cache: pre-images and reconciliation must see the server."""
    reader = cluster.uncached if isinstance(cluster, CachingCluster) else cluster
    return _with_retries(reader.get)(change.ref)


def prepare(cluster: Cluster, change: Change, now: dt.datetime) -> Change:
    """The change as it will be journaled: the exact live pre-image and a concrete restart value."""
    live = _read(cluster, change)
    kind = change.kind
    if kind in (ChangeKind.CREATE, ChangeKind.UPDATE):
        kind = ChangeKind.CREATE if live is None else ChangeKind.UPDATE
    meta = dict(change.meta)
    after = change.after
    if kind is ChangeKind.RESTART:
        stamp = restart_annotation(change.after) or now.strftime("%Y-%m-%dT%H:%M:%SZ")
        meta.setdefault(RESTART_VALUE, stamp)
        after = _with_annotation(live, meta[RESTART_VALUE])
    return replace(change, kind=kind, before=live, after=after, meta=meta)


def _with_annotation(live: Obj | None, value: Any) -> Obj | None:
    if live is None:
        return None
    merged = strip_server_fields(live)
    template = merged.setdefault("spec", {}).setdefault("template", {})
    template.setdefault("metadata", {}).setdefault("annotations", {})[RESTARTED_AT] = value
    return merged


ChangeCallback = Callable[[Change, bool], None]  # (change, written now?) after each applied change


@dataclass
class ChangeExecutor:
    """Writes one task's changes write-ahead through the journal."""

    cluster: Cluster
    store: RunStore
    run_id: str
    on_applied: ChangeCallback | None = None

    def execute(
        self, origin: ChangeOrigin, changes: Sequence[Change], *, note: Mapping[str, Any] | None = None
    ) -> list[Change]:
        """Journal ``changes`` (exact pre-images, and the task's plan ``note``) in one transaction,
        then write each; returns them as journaled."""
        now = dt.datetime.now(dt.UTC)
        prepared = [prepare(self.cluster, ch, now) for ch in changes]
        seqs = self.store.plan_changes(self.run_id, origin, prepared, note=note)
        for seq, change in zip(seqs, prepared, strict=True):
            self._write(seq, change)
        return prepared

    def reconcile(self, records: Sequence[ChangeRecord]) -> list[Change]:
        """Finish journaled changes a crash left ``planned``; returns every change of ``records``."""
        for record in records:
            if record.state is not ChangeState.PLANNED:
                continue
            live = _read(self.cluster, record.change)
            if is_applied(record.change, live):
                self.store.mark([record.seq], ChangeState.APPLIED)
                self._notify(record.change, False)
            else:
                self._write(record.seq, record.change)
        return [r.change for r in records]

    def _write(self, seq: int, change: Change) -> None:
        write_change(self.cluster, change)
        self.store.mark([seq], ChangeState.APPLIED)
        self._notify(change, True)

    def _notify(self, change: Change, written: bool) -> None:
        if self.on_applied is not None:
            self.on_applied(change, written)
