"""The planner's simulated cluster: a snapshot of the live cluster that records every write.

``snapshot(live)`` reads the live cluster once — one ``list`` per kind the registry knows (one
version per group and kind; Events left out) — into a ``PlanCluster``. The runner then executes the
playbook in ``simulate`` mode against it: actions plan from the snapshot, the executor writes to it,
so each phase is planned against the state the earlier phases leave. Every committed write is
recorded with the phase it belongs to, its pre-image, the stored result, and the request itself (so
the planner can replay it against the API server with ``dryRun=All``). Pre-images and ``shared``
reads are the stored objects themselves, not copies: ``MemoryCluster`` replaces an object on every
write and never edits one in place, so they stay as they were; nothing here may modify them.

Probe pods (the checks' way to observe live traffic) are refused: nothing runs in a snapshot, and the
planner predicts those flows with the mesh rules instead.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from itertools import chain
from typing import Any

from runbook_engine.bulk import gc_paused
from runbook_engine.checks.probe import PROBE_LABEL
from runbook_engine.errors import ClusterError
from runbook_engine.kube.cluster import FIELD_MANAGER, Cluster, Obj, PatchType, Propagation
from runbook_engine.kube.memory import MemoryCluster
from runbook_engine.kube.refs import REGISTRY, KindRegistry, ObjectRef

#: Kinds the plan never needs: high-volume and nothing acts on them.
UNPLANNED_KINDS = frozenset({"Event"})
NOT_A_PHASE = -1


class WriteOp(StrEnum):
    APPLY = "apply"
    PATCH = "patch"
    DELETE = "delete"


@dataclass(frozen=True)
class Write:
    """One committed write to the simulation."""

    phase: int
    ref: ObjectRef
    op: WriteOp
    before: Obj | None
    after: Obj | None
    body: Any = None  # the applied manifest or the patch
    patch_type: PatchType | None = None
    rollback: bool = False  # written while the simulation rolled a phase back


def snapshot_kinds(registry: KindRegistry = REGISTRY) -> list[tuple[str, str]]:
    """One ``(apiVersion, kind)`` per group and kind the registry knows (its first version), listable."""
    seen: set[tuple[str, str]] = set()
    kinds: list[tuple[str, str]] = []
    for info in registry:
        key = (info.group, info.kind)
        if key in seen or info.kind in UNPLANNED_KINDS or "list" not in info.verbs:
            continue
        seen.add(key)
        kinds.append((info.api_version, info.kind))
    return kinds


def _is_probe(obj: Mapping[str, Any]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return obj.get("kind") == "Pod" and PROBE_LABEL in labels


class PlanCluster(MemoryCluster):
    """A ``MemoryCluster`` that records its writes per phase and refuses probe pods."""

    def __init__(self, objects: Iterable[Obj], name: str) -> None:
        super().__init__((), name=name)
        for obj in objects:  # freshly read from the API: nobody else holds them, stored without a copy
            self._load(obj, copy=False)
        self.phase = NOT_A_PHASE
        self.rolling_back = False
        self.log: list[Write] = []
        self._log_lock = threading.Lock()

    def _record(self, write: Write) -> None:
        with self._log_lock:
            self.log.append(write)

    def apply(self, obj: Mapping[str, Any], *, field_manager: str = FIELD_MANAGER, dry_run: bool = False,
              force: bool = True) -> Obj:
        if _is_probe(obj):
            raise ClusterError("probe pods do not run in a plan: the flow is predicted by the mesh rules",
                               status=422, reason="Planned")
        ref = self._ref_of(obj)
        before = self._lookup(ref)
        result = super().apply(obj, field_manager=field_manager, dry_run=dry_run, force=force)
        if not dry_run:
            self._record(Write(self.phase, ref, WriteOp.APPLY, before, result, dict(obj), None, self.rolling_back))
        return result

    def patch(self, ref: ObjectRef, patch: Any, *, patch_type: PatchType = PatchType.MERGE, dry_run: bool = False,
              field_manager: str = FIELD_MANAGER) -> Obj:
        if patch_type is PatchType.APPLY:
            return self.apply(patch, field_manager=field_manager, dry_run=dry_run)
        before = self._lookup(self._normal(ref))
        result = super().patch(ref, patch, patch_type=patch_type, dry_run=dry_run, field_manager=field_manager)
        if not dry_run:
            self._record(Write(self.phase, ObjectRef.of(result), WriteOp.PATCH, before, result, patch, patch_type,
                               self.rolling_back))
        return result

    def delete(self, ref: ObjectRef, *, dry_run: bool = False,
               propagation: Propagation = Propagation.BACKGROUND) -> Obj | None:
        before = super().delete(ref, dry_run=dry_run, propagation=propagation)
        if before is not None and not dry_run:
            self._record(Write(self.phase, ObjectRef.of(before), WriteOp.DELETE, before, None,
                               rollback=self.rolling_back))
        return before


    def shared(self, api_version: str, kind: str, namespace: str | None = None) -> list[Obj]:
        """The stored objects of a kind themselves, not copies, for read-only indexing.

        Safe because a write replaces a stored object instead of editing it: a reference taken before a
        write keeps showing the object as it was (the write log's pre-images rely on the same)."""
        with self._lock:
            spaces = self._kinds.get((api_version, kind)) or {}
            groups = [spaces.get(namespace) or {}] if namespace is not None else list(spaces.values())
            return [obj for group in groups for obj in group.values()]


def _listed(live: Cluster, kind: tuple[str, str]) -> list[Obj]:
    """One list call; items without ``apiVersion``/``kind`` get the listed ones (in place: a list
    answers with the caller's own objects)."""
    api_version, name = kind
    items = live.list(api_version, name)
    for obj in items:
        if not obj.get("apiVersion"):
            obj["apiVersion"] = api_version
        if not obj.get("kind"):
            obj["kind"] = name
    return items


def snapshot(live: Cluster, kinds: list[tuple[str, str]] | None = None, *, workers: int = 4) -> PlanCluster:
    """The live cluster's objects of ``kinds`` (default: every planned kind), one list call per kind, the
    calls ``workers`` at a time (the server answers one while the client decodes another), each list
    loaded as it arrives, in order; the garbage collector rests meanwhile (``runbook_engine.bulk``)."""
    wanted = kinds if kinds is not None else snapshot_kinds()
    with gc_paused(), ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        lists = pool.map(lambda kind: _listed(live, kind), wanted)
        return PlanCluster(chain.from_iterable(lists), name=live.name)
