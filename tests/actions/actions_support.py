"""Helpers for the action tests: workload factories, a status-driven cluster, an engine-like executor."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable

from runbook_engine.actions.base import Planned
from runbook_engine.actions.objects import patch_of
from runbook_engine.kube.change import Change, ChangeKind
from runbook_engine.kube.cluster import Obj
from runbook_engine.kube.memory import MemoryCluster
from runbook_engine.kube.refs import ObjectRef

#: ``plan(action, args, *, check_mode, base_dir, variables)`` against the test cluster (a fixture).
Planner = Callable[..., Planned]


def deployment(name: str, ns: str = "shop", replicas: int = 2, labels: dict[str, str] | None = None) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name, **(labels or {})}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": f"{name}:1"}]},
            },
        },
    }


class StatusDriven(MemoryCluster):
    """A MemoryCluster whose objects' ``status`` a test sets directly (as controllers would)."""

    def __init__(self, objects: list[Obj]) -> None:
        super().__init__(objects)
        self._statuses: dict[ObjectRef, Obj] = {}
        self._status_lock = threading.Lock()

    def set_status(self, ref: ObjectRef, status: Obj) -> None:
        with self._status_lock:
            self._statuses[ref] = copy.deepcopy(status)

    def _overlay(self, obj: Obj) -> Obj:
        with self._status_lock:
            status = self._statuses.get(ObjectRef.of(obj))
        if status is not None:
            obj["status"] = copy.deepcopy(status)
        return obj

    def get(self, ref: ObjectRef) -> Obj | None:
        obj = super().get(ref)
        return self._overlay(obj) if obj is not None else None

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None) -> list[Obj]:
        return [self._overlay(o) for o in super().list(api_version, kind, namespace, label_selector)]


def execute(cluster: MemoryCluster, changes: list[Change]) -> None:
    """Carry out changes as the engine does: patch when a change carries one, else apply or delete."""
    for change in changes:
        carried = patch_of(change)
        if change.kind is ChangeKind.DELETE:
            cluster.delete(change.ref)
        elif carried is not None:
            cluster.patch(change.ref, carried[0], patch_type=carried[1])
        else:
            assert change.after is not None
            cluster.apply(change.after)
