"""Object changes of a planned phase: per-object diffs (from the API server where it can answer) and restarts.

The simulation's write log is folded per object (first pre-image, last stored result). Where the API
server is reachable and the object's phase starts from the live state (no earlier phase of the plan
touched it, and the phase wrote it once), the write is replayed against the server with
``dryRun=All`` — a server-side apply or the same patch — and the server's answer is what the diff
shows: defaulting, admission and field ownership as the server would store them. Otherwise (an
object an earlier phase created or changed, or the server refusing because an earlier phase's
Namespace does not exist yet) the simulated result is shown, and said so. Bare restarts are not
replayed: a restart writes one pod-template annotation, which the simulation shows exactly, and its
diff shows only the pod template's metadata. The dry runs go out in the background while the planner
predicts flows (``DryRuns``).

A workload restarts when a phase rolls it (``kubectl.kubernetes.io/restartedAt``) or changes its pod
template, or creates it; its pod count is the pods it runs now, else its replicas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from runbook_engine.engine.executor import RESTARTED_AT
from runbook_engine.engine.objects import strip_server_fields
from runbook_engine.engine.plan_model import DiffSource, Obj, ObjectPlan, RestartPlan
from runbook_engine.engine.simulation import Write, WriteOp
from runbook_engine.errors import ClusterError
from runbook_engine.kube.change import ChangeKind
from runbook_engine.kube.cluster import FIELD_MANAGER, Cluster, PatchType
from runbook_engine.kube.diff import diff_objects
from runbook_engine.kube.merge import SERVER_METADATA
from runbook_engine.kube.redact import LAST_APPLIED
from runbook_engine.kube.refs import ObjectRef
from runbook_engine.mesh import MeshView

RESTARTING_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet"})


@dataclass
class Folded:
    """All writes one phase made to one object."""

    ref: ObjectRef
    before: Obj | None
    after: Obj | None
    writes: list[Write]


def fold(writes: Sequence[Write]) -> list[Folded]:
    """Writes grouped per object, in the order objects were first written (rollback writes left out)."""
    folded: dict[ObjectRef, Folded] = {}
    for write in writes:
        if write.rollback:
            continue
        entry = folded.get(write.ref)
        if entry is None:
            folded[write.ref] = Folded(write.ref, write.before, write.after, [write])
        else:
            entry.after = write.after
            entry.writes.append(write)
    return list(folded.values())


def _template(obj: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(((obj or {}).get("spec") or {}).get("template") or {})


def _without_restart(template: Mapping[str, Any]) -> dict[str, Any]:
    meta = dict(template.get("metadata") or {})
    notes = {k: v for k, v in (meta.get("annotations") or {}).items() if k != RESTARTED_AT}
    meta["annotations"] = notes
    return {**template, "metadata": meta}


def _user_view(obj: Mapping[str, Any], *, restart: bool) -> dict[str, Any]:
    """``obj`` as a user wrote it (no status, server metadata or last-applied annotation), for comparing only;
    with ``restart`` False, without the pod template's restartedAt annotation too. Shallow: never modify it."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in SERVER_METADATA}
    notes = {k: v for k, v in (meta.get("annotations") or {}).items() if k != LAST_APPLIED}
    meta["annotations"] = notes
    view = {k: v for k, v in obj.items() if k not in ("status", "metadata")}
    view["metadata"] = meta
    if not restart and "template" in (obj.get("spec") or {}):
        view["spec"] = {**obj["spec"], "template": _without_restart(_template(obj))}
    return view


def change_kind(before: Obj | None, after: Obj | None) -> ChangeKind | None:
    """What happened to an object (None when nothing a user set differs)."""
    if before is None:
        return None if after is None else ChangeKind.CREATE
    if after is None:
        return ChangeKind.DELETE
    if _user_view(before, restart=True) == _user_view(after, restart=True):
        return None
    if _user_view(before, restart=False) == _user_view(after, restart=False):
        return ChangeKind.RESTART  # only the restartedAt annotation differs
    return ChangeKind.UPDATE


def restarted_workloads(entries: Sequence[Folded], view: MeshView) -> list[RestartPlan]:
    """Workloads whose pods the phase replaces, with how many pods that is."""
    restarts: list[RestartPlan] = []
    for entry in entries:
        if entry.ref.kind not in RESTARTING_KINDS or entry.after is None:
            continue
        if entry.before is not None and _template(entry.before) == _template(entry.after):
            continue
        key = f"{entry.ref.namespace}/{entry.ref.name}"
        wl = view.workload(entry.ref.namespace, entry.ref.name)
        pods = len(wl.pods) if wl is not None and wl.pods else int((entry.after.get("spec") or {}).get("replicas", 1))
        restarts.append(RestartPlan(key, entry.ref.kind, pods))
    return restarts


def _dry_run(live: Cluster, write: Write) -> Obj | None:
    """The server's answer to the write with ``dryRun=All``; None when it cannot answer it."""
    try:
        if write.op is WriteOp.APPLY:
            return live.apply(strip_server_fields(write.body), field_manager=FIELD_MANAGER, dry_run=True, force=True)
        if write.op is WriteOp.PATCH:
            return live.patch(write.ref, write.body, patch_type=write.patch_type or PatchType.MERGE, dry_run=True,
                              field_manager=FIELD_MANAGER)
    except ClusterError:
        return None
    return None


def _replayable(entry: Folded, touched_before: set[ObjectRef]) -> bool:
    """Whether the server can judge the object's write: it starts from the live state, it is one write, and
    it is not a bare restart (a restart writes one template annotation: the simulation shows it exactly)."""
    return (len(entry.writes) == 1 and entry.ref not in touched_before and entry.after is not None
            and entry.writes[0].op is not WriteOp.DELETE
            and change_kind(entry.before, entry.after) is not ChangeKind.RESTART)


class DryRuns:
    """``dryRun=All`` replays of every phase's writes, sent in the background (``workers`` at a time)."""

    def __init__(self, live: Cluster | None, workers: int) -> None:
        self.live = live
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers)) if live is not None else None
        self._pending: dict[int, list[tuple[ObjectRef, Future[Obj | None]]]] = {}

    def __enter__(self) -> DryRuns:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, phase: int, entries: Sequence[Folded], touched_before: set[ObjectRef]) -> None:
        if self._pool is None or self.live is None:
            return
        self._pending[phase] = [(e.ref, self._pool.submit(_dry_run, self.live, e.writes[0]))
                                for e in entries if _replayable(e, touched_before)]

    def results(self, phase: int) -> dict[ObjectRef, Obj]:
        """The server's answers for one phase's objects (those it could give)."""
        answers = {ref: future.result() for ref, future in self._pending.pop(phase, [])}
        return {ref: answer for ref, answer in answers.items() if answer is not None}


def _restart_part(obj: Mapping[str, Any] | None) -> Obj | None:
    """What a restart changes: the pod template's metadata (the rest of the workload is context nobody reads)."""
    if obj is None:
        return None
    meta = obj.get("metadata") or {}
    return {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"),
            "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")},
            "spec": {"template": {"metadata": _template(obj).get("metadata") or {}}}}


def _diff(entry: Folded, after: Obj | None, kind: ChangeKind) -> str:
    if kind is ChangeKind.RESTART:
        return diff_objects(_restart_part(entry.before), _restart_part(after), ref_label=str(entry.ref))
    return diff_objects(entry.before, after, ref_label=str(entry.ref))


def object_plans(entries: Sequence[Folded], server: Mapping[ObjectRef, Obj]) -> list[ObjectPlan]:
    """One ``ObjectPlan`` per changed object, its diff from the server's answer where there is one."""
    plans: list[ObjectPlan] = []
    for entry in entries:
        answer = server.get(entry.ref)
        after = answer if answer is not None else entry.after
        kind = change_kind(entry.before, after)
        if kind is None:
            continue
        diff = _diff(entry, after, kind)
        source = DiffSource.SERVER if answer is not None else DiffSource.SIMULATED
        stored = strip_server_fields(after) if after is not None else None
        if stored is not None:
            stored.pop("status", None)
        plans.append(ObjectPlan(str(entry.ref), entry.ref.api_version, kind, diff, source, stored))
    return plans
