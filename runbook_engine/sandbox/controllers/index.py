"""An in-memory index and object cache over the store, kept current by store events.

Controllers ask "which pods does this ReplicaSet own", "which services are in this namespace",
"which nodes exist" thousands of times while a large platform settles; answering from the store
would mean a full scan (and a deep copy per object) each time. Like a real controller's informer
cache, the index is updated from the store's listener (which runs under the store lock, in commit
order) and rebuilt from a snapshot when the manager (re)starts. It holds the store's own objects,
which are read-only and shared with the store, its watches and other listeners; reads hand out
copy-on-write views (``cow_copy``): the top levels are fresh dicts, deeper structures are shared and
must be replaced, never changed in place. Pods are indexed by label too, and the Services selecting
a set of labels are remembered until a Service changes.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable

from runbook_engine.sandbox.controllers.util import (
    POD,
    SERVICE,
    controller_uid,
    key_of,
    labels_of,
    pod_active,
    uid_of,
)
from runbook_engine.sandbox.store import Key, Obj

KindKey = tuple[str, str]


class ObjectIndex:
    """Names by kind and namespace, children by owner uid, service selectors, unscheduled pods."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clear()

    def _clear(self) -> None:
        self._objects: dict[Key, Obj] = {}
        self._names: dict[KindKey, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        self._children: dict[str, set[Key]] = defaultdict(set)
        self._owner: dict[Key, str] = {}
        self._uids: dict[str, Key] = {}
        self._uid_of: dict[Key, str] = {}
        self._selectors: dict[str, dict[str, dict[str, str]]] = defaultdict(dict)  # ns -> service -> selector
        self._selecting: dict[str, dict[frozenset[tuple[str, str]], list[Key]]] = {}  # ns -> labels -> services
        self._pod_labels: dict[Key, dict[str, str]] = {}
        self._pods_by_label: dict[tuple[str, str, str], set[Key]] = {}  # (ns, label, value) -> pods
        self._unscheduled: set[Key] = set()

    # -- maintenance -------------------------------------------------------------------------
    def rebuild(self, objects: Iterable[Obj]) -> None:
        with self._lock:
            self._clear()
        for obj in objects:
            self.apply("ADDED", obj)

    def apply(self, event: str, obj: Obj) -> None:
        """Record one committed change (``ADDED`` / ``MODIFIED`` / ``DELETED``)."""
        key = key_of(obj)
        with self._lock:
            if event == "DELETED":
                self._forget(key)
            else:
                self._remember(key, obj)

    def _remember(self, key: Key, obj: Obj) -> None:
        self._objects[key] = obj
        self._names[(key[0], key[1])][key[2]].add(key[3])
        uid = uid_of(obj)
        self._uids[uid] = key
        self._uid_of[key] = uid
        owner = controller_uid(obj)
        old_owner = self._owner.get(key)
        if old_owner is not None and old_owner != owner:
            self._children[old_owner].discard(key)
        if owner is not None:
            self._owner[key] = owner
            self._children[owner].add(key)
        if (key[0], key[1]) == SERVICE:
            self._selectors[key[2]][key[3]] = dict((obj.get("spec") or {}).get("selector") or {})
            self._selecting.pop(key[2], None)
        if (key[0], key[1]) == POD:
            self._set_pod_labels(key, labels_of(obj))
            if pod_active(obj) and not (obj.get("spec") or {}).get("nodeName"):
                self._unscheduled.add(key)
            else:
                self._unscheduled.discard(key)

    def _forget(self, key: Key) -> None:
        self._objects.pop(key, None)
        self._names[(key[0], key[1])][key[2]].discard(key[3])
        uid = self._uid_of.pop(key, None)
        if uid is not None and self._uids.get(uid) == key:
            del self._uids[uid]
            self._children.pop(uid, None)
        owner = self._owner.pop(key, None)
        if owner is not None:
            self._children[owner].discard(key)
        if (key[0], key[1]) == SERVICE:
            self._selectors[key[2]].pop(key[3], None)
            self._selecting.pop(key[2], None)
        if key in self._pod_labels:
            self._set_pod_labels(key, {})
            del self._pod_labels[key]
        self._unscheduled.discard(key)

    def _set_pod_labels(self, key: Key, labels: dict[str, str]) -> None:
        old = self._pod_labels.get(key, {})
        if old == labels and key in self._pod_labels:
            return
        for item in old.items() - labels.items():
            keys = self._pods_by_label.get((key[2], *item))
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._pods_by_label[(key[2], *item)]
        for label, value in labels.items() - old.items():
            self._pods_by_label.setdefault((key[2], label, value), set()).add(key)
        self._pod_labels[key] = labels

    # -- queries -----------------------------------------------------------------------------
    def get(self, key: Key) -> Obj | None:
        """The cached object (as of the last committed change), as a copy-on-write view."""
        with self._lock:
            obj = self._objects.get(key)
        return cow_copy(obj) if obj is not None else None

    def names(self, kind: KindKey, namespace: str | None = None) -> list[tuple[str, str]]:
        """``(namespace, name)`` of every object of a kind, optionally in one namespace."""
        with self._lock:
            by_ns = self._names.get(kind, {})
            spaces = [namespace] if namespace is not None else list(by_ns)
            return sorted((ns, name) for ns in spaces for name in by_ns.get(ns, ()))

    def children(self, owner_uid: str, kind: KindKey) -> list[Key]:
        with self._lock:
            return sorted(k for k in self._children.get(owner_uid, ()) if (k[0], k[1]) == kind)

    def key_for_uid(self, uid: str) -> Key | None:
        with self._lock:
            return self._uids.get(uid)

    def services_selecting(self, namespace: str, labels: dict[str, str]) -> list[Key]:
        """Services in ``namespace`` whose selector matches ``labels`` (cached until a Service changes)."""
        wanted = frozenset(labels.items())
        with self._lock:
            cache = self._selecting.setdefault(namespace, {})
            found = cache.get(wanted)
            if found is None:
                found = cache[wanted] = [
                    (*SERVICE, namespace, name)
                    for name, selector in self._selectors.get(namespace, {}).items()
                    if selector and all(labels.get(k) == v for k, v in selector.items())
                ]
            return list(found)

    def pods_matching(self, namespace: str, selector: dict[str, str]) -> list[Key]:
        """Pods in ``namespace`` whose labels match ``selector`` (equality-based, as Services select)."""
        with self._lock:
            if not selector:
                return sorted((*POD, namespace, name) for name in self._names.get(POD, {}).get(namespace, ()))
            sets = [self._pods_by_label.get((namespace, k, v), set()) for k, v in selector.items()]
            return sorted(set.intersection(*sorted(sets, key=len)))

    def pod_labels(self, key: Key) -> dict[str, str]:
        with self._lock:
            return dict(self._pod_labels.get(key, {}))

    def unscheduled(self) -> list[Key]:
        with self._lock:
            return sorted(self._unscheduled)



def cow_copy(obj: Obj) -> Obj:
    """Fresh dicts for the object, its metadata (and labels/annotations), spec and status; the rest shared."""
    out = dict(obj)
    for part in ("metadata", "spec", "status"):
        value = out.get(part)
        if isinstance(value, dict):
            out[part] = dict(value)
    meta = out.get("metadata")
    if isinstance(meta, dict):
        for part in ("labels", "annotations"):
            if isinstance(meta.get(part), dict):
                meta[part] = dict(meta[part])
    return out
