"""Deletion with propagation, as the API server and its garbage collector do it.

- ``Background`` (the default): the owner goes at once; dependents whose every owner is gone are
  collected right after (a store listener, so deletions made by controllers are followed too).
- ``Foreground``: dependents are deleted first, then the owner.
- ``Orphan``: dependents lose their owner reference and stay.

Deleting a Namespace deletes everything in it. An object with finalizers is only marked
(``deletionTimestamp``); it goes when its last finalizer is removed.
"""

from __future__ import annotations

from typing import Any

from runbook_engine.errors import ClusterError
from runbook_engine.kube.cluster import Propagation
from runbook_engine.sandbox.store import Store, now_rfc3339

Obj = dict[str, Any]


def _uid(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("uid", ""))


def _ident(obj: Obj) -> tuple[str, str, str, str]:
    meta = obj.get("metadata") or {}
    return (str(obj["apiVersion"]), str(obj["kind"]), str(meta.get("namespace") or ""), str(meta["name"]))


class GarbageCollector:
    """Deletes objects of one store with propagation, and collects orphaned dependents."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def install(self) -> None:
        """Follow every deletion in the store (API and controllers alike)."""
        self.store.listeners.append(self._on_event)

    def uninstall(self) -> None:
        if self._on_event in self.store.listeners:
            self.store.listeners.remove(self._on_event)

    def delete(self, obj: Obj, propagation: Propagation) -> tuple[Obj, bool]:
        """Delete ``obj``; returns the last state and whether it is gone (False: finalizers pending)."""
        with self.store.lock:
            if propagation is Propagation.ORPHAN:
                self._orphan(obj)
            elif propagation is Propagation.FOREGROUND:
                self._delete_dependents(obj)
            if obj["kind"] == "Namespace" and obj["apiVersion"] == "v1":
                self._empty_namespace(str(obj["metadata"]["name"]))
            if (obj.get("metadata") or {}).get("finalizers"):
                return self._mark(obj), False
            return self.store.delete(*_ident(obj)), True

    def finish_if_released(self, obj: Obj) -> bool:
        """Delete an object marked for deletion once its finalizers are gone; True when deleted."""
        meta = obj.get("metadata") or {}
        if not meta.get("deletionTimestamp") or meta.get("finalizers"):
            return False
        try:
            self.store.delete(*_ident(obj))
        except ClusterError:
            return False
        return True

    # -- internals -----------------------------------------------------------------------------
    def _mark(self, obj: Obj) -> Obj:
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            return obj
        meta["deletionTimestamp"] = now_rfc3339()
        meta["deletionGracePeriodSeconds"] = 0
        return self.store.update(obj)

    def _orphan(self, owner: Obj) -> None:
        uid = _uid(owner)
        for dep in self.store.dependents(uid):
            refs = [r for r in dep["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
            if refs:
                dep["metadata"]["ownerReferences"] = refs
            else:
                dep["metadata"].pop("ownerReferences", None)
            self.store.update(dep)

    def _delete_dependents(self, owner: Obj) -> None:
        for dep in self.store.dependents(_uid(owner)):
            self._delete_quietly(dep, Propagation.FOREGROUND)

    def _empty_namespace(self, namespace: str) -> None:
        for obj in self.store.scan_namespace(namespace):
            if obj.get("kind") != "Namespace":
                self._delete_quietly(obj, Propagation.BACKGROUND)

    def _delete_quietly(self, obj: Obj, propagation: Propagation) -> None:
        current = self.store.get(*_ident(obj))
        if current is not None:
            self.delete(current, propagation)

    def _on_event(self, event: str, obj: Obj) -> None:
        if event != "DELETED" or not _uid(obj):
            return
        for dep in self.store.dependents(_uid(obj)):
            owners = [r.get("uid") for r in dep["metadata"].get("ownerReferences") or []]
            if not any(self.store.exists_uid(str(u)) for u in owners):
                self._delete_quietly(dep, Propagation.BACKGROUND)
