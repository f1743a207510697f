"""The sandbox's object store: the single source of truth behind the emulated API server.

Thread-safe, versioned (one global ``resourceVersion`` counter, as etcd's revision), with watch
subscriptions for the HTTP layer and change listeners for controllers. Mutating admission hooks
(e.g. sidecar injection) run on create, before the object is stored, as a real webhook would.
Objects are plain dicts; every read returns a deep copy so callers cannot corrupt stored state.

The store also keeps what a real cluster keeps beside its objects: container logs (written by the
pod runtime, read by ``pods/log``) and the kinds that stored CustomResourceDefinitions define
(registered in ``Store.registry`` while the CRD exists).
"""

from __future__ import annotations

import builtins
import copy
import datetime as dt
import json
import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from runbook_engine.errors import ConflictError, NotFoundError
from runbook_engine.kube.refs import KindInfo, KindRegistry, default_registry

Obj = dict[str, Any]
Key = tuple[str, str, str, str]  # (api_version, kind, namespace, name)

AdmissionHook = Callable[["Store", Obj], None]  # mutates the object in place before it is stored
Listener = Callable[[str, Obj], None]  # (event type, object) after every committed change


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED | MODIFIED | DELETED | BOOKMARK
    object: Obj
    resource_version: int


@dataclass
class _Watch:
    kind: KindInfo
    namespace: str | None
    events: queue.Queue[WatchEvent | None] = field(default_factory=queue.Queue)


class Subscription:
    """One open watch: events arrive in commit order; ``next`` waits at most ``timeout`` seconds."""

    def __init__(self, store: Store, watch: _Watch) -> None:
        self._store = store
        self._watch = watch
        self.closed = False

    def next(self, timeout: float) -> WatchEvent | None:
        """The next event, or None when none arrived in time or the store closed its watches."""
        if self.closed:
            return None
        try:
            ev = self._watch.events.get(timeout=timeout)
        except queue.Empty:
            return None
        if ev is None:
            self.closed = True
        return ev

    def close(self) -> None:
        self.closed = True
        self._store._unsubscribe(self._watch)


class ResourceVersionTooOld(Exception):
    """A watch asked to resume from a revision older than the retained history."""


class Store:
    """Versioned object store with watches, listeners and admission hooks."""

    def __init__(self, registry: KindRegistry | None = None) -> None:
        self.registry = registry or default_registry()
        self.lock = threading.RLock()
        self._objects: dict[Key, Obj] = {}
        self._rv = 0
        self._watches: list[_Watch] = []
        self.listeners: list[Listener] = []
        self.admission: list[AdmissionHook] = []
        self._history: list[tuple[int, WatchEvent, Key]] = []  # bounded log for watch resume
        self._compacted_rv = 0  # events at or below this revision are no longer retained
        self._logs: dict[tuple[str, str, str], str] = {}  # (namespace, pod, container) -> log text

    # -- reads -------------------------------------------------------------------------------
    @property
    def resource_version(self) -> int:
        return self._rv

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> Obj | None:
        with self.lock:
            obj = self._objects.get((api_version, kind, namespace or "", name))
            return copy.deepcopy(obj) if obj is not None else None

    def list(self, api_version: str, kind: str, namespace: str | None = None) -> list[Obj]:
        with self.lock:
            return [
                copy.deepcopy(o)
                for (av, k, ns, _), o in self._objects.items()
                if av == api_version and k == kind and (namespace is None or ns == namespace)
            ]

    def all_objects(self) -> builtins.list[Obj]:
        with self.lock:
            return [copy.deepcopy(o) for o in self._objects.values()]

    def dependents(self, owner_uid: str) -> builtins.list[Obj]:
        """Objects whose ``ownerReferences`` name ``owner_uid`` (what garbage collection follows)."""
        with self.lock:
            return [
                copy.deepcopy(o)
                for o in self._objects.values()
                if any(ref.get("uid") == owner_uid for ref in (o.get("metadata") or {}).get("ownerReferences") or [])
            ]

    def exists_uid(self, uid: str) -> bool:
        """Whether any stored object has this uid (an owner that still exists)."""
        with self.lock:
            return any((o.get("metadata") or {}).get("uid") == uid for o in self._objects.values())

    # -- container logs ------------------------------------------------------------------------
    def set_pod_log(self, namespace: str, pod: str, container: str, text: str) -> None:
        """Replace the log of one container of a pod (the pod runtime's output)."""
        with self.lock:
            self._logs[(namespace, pod, container)] = text

    def append_pod_log(self, namespace: str, pod: str, container: str, text: str) -> None:
        with self.lock:
            key = (namespace, pod, container)
            self._logs[key] = self._logs.get(key, "") + text

    def get_pod_log(self, namespace: str, pod: str, container: str) -> str:
        """The log of one container; empty when it has logged nothing."""
        with self.lock:
            return self._logs.get((namespace, pod, container), "")

    # -- writes ------------------------------------------------------------------------------
    def create(self, obj: Obj, *, dry_run: bool = False) -> Obj:
        obj = copy.deepcopy(obj)
        with self.lock:
            for hook in self.admission:
                hook(self, obj)
            key = self._key(obj)
            if key in self._objects:
                raise ConflictError(
                    f'{obj["kind"]} "{key[3]}" already exists', status=409, reason="AlreadyExists"
                )
            meta = obj.setdefault("metadata", {})
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", now_rfc3339())
            meta["generation"] = 1
            if dry_run:
                meta["resourceVersion"] = str(self._rv)
                return copy.deepcopy(obj)
            return self._commit(key, obj, "ADDED")

    def update(self, obj: Obj, *, expect_rv: str | None = None, dry_run: bool = False) -> Obj:
        """Replace a stored object; bumps ``generation`` when anything but metadata/status changed."""
        obj = copy.deepcopy(obj)
        with self.lock:
            key = self._key(obj)
            old = self._objects.get(key)
            if old is None:
                raise NotFoundError(f'{obj["kind"]} "{key[3]}" not found', status=404, reason="NotFound")
            if expect_rv and expect_rv != old["metadata"].get("resourceVersion"):
                raise ConflictError(
                    f'Operation cannot be fulfilled on {obj["kind"]} "{key[3]}": the object has been '
                    "modified; please apply your changes to the latest version and try again",
                    status=409,
                    reason="Conflict",
                )
            meta = obj.setdefault("metadata", {})
            for immutable in ("uid", "creationTimestamp"):
                meta[immutable] = old["metadata"].get(immutable)
            gen = int(old["metadata"].get("generation", 1))
            if _spec_of(old) != _spec_of(obj):
                gen += 1
            meta["generation"] = gen
            if dry_run:
                return copy.deepcopy(obj)
            return self._commit(key, obj, "MODIFIED")

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> Obj:
        with self.lock:
            key = (api_version, kind, namespace or "", name)
            old = self._objects.pop(key, None)
            if old is None:
                raise NotFoundError(f'{kind} "{name}" not found', status=404, reason="NotFound")
            self._rv += 1
            old = copy.deepcopy(old)
            old["metadata"]["resourceVersion"] = str(self._rv)
            if kind == "Pod":
                for log_key in [k for k in self._logs if k[:2] == (key[2], name)]:
                    del self._logs[log_key]
            self._notify("DELETED", old, key)
            if key[:2] == _CRD_KEY:
                self._unregister_crd(old)
            return old

    # -- watches -----------------------------------------------------------------------------
    def subscribe(self, kind: KindInfo, namespace: str | None, since_rv: int | None = None) -> Subscription:
        """Open a watch on a kind; with ``since_rv``, retained events after that revision come first.

        Raises ``ResourceVersionTooOld`` when events after ``since_rv`` are no longer retained.
        """
        w = _Watch(kind, namespace)
        with self.lock:
            if since_rv is not None:
                if since_rv < self._compacted_rv:
                    raise ResourceVersionTooOld(f"too old resource version: {since_rv} ({self._compacted_rv})")
                for rv, ev, key in self._history:
                    if rv > since_rv and self._watch_matches(w, key):
                        w.events.put(ev)
            self._watches.append(w)
        return Subscription(self, w)

    def watch(self, kind: KindInfo, namespace: str | None, since_rv: int | None = None) -> Iterator[WatchEvent]:
        """Events for a kind from ``since_rv`` on (replaying retained history); ends when ``close_watches``."""
        sub = self.subscribe(kind, namespace, since_rv)
        try:
            while True:
                ev = sub.next(timeout=3600.0)
                if sub.closed:
                    return
                if ev is not None:
                    yield ev
        finally:
            sub.close()

    def _unsubscribe(self, w: _Watch) -> None:
        with self.lock:
            if w in self._watches:
                self._watches.remove(w)

    def close_watches(self) -> None:
        with self.lock:
            for w in self._watches:
                w.events.put(None)

    # -- persistence -------------------------------------------------------------------------
    def dump(self) -> dict[str, Any]:
        with self.lock:
            return {
                "resourceVersion": self._rv,
                "objects": [copy.deepcopy(o) for o in self._objects.values()],
                "logs": [[ns, pod, c, text] for (ns, pod, c), text in self._logs.items()],
            }

    def dump_json(self) -> tuple[int, bytes]:
        """The ``dump`` as JSON, encoded under the lock without copying (faster for large stores)."""
        with self.lock:
            return self._rv, json.dumps(
                {
                    "resourceVersion": self._rv,
                    "objects": list(self._objects.values()),
                    "logs": [[ns, pod, c, text] for (ns, pod, c), text in self._logs.items()],
                },
                separators=(",", ":"),
            ).encode()

    def load(self, data: dict[str, Any]) -> None:
        """Replace the whole state with a ``dump``; kinds of stored CRDs are registered first."""
        with self.lock:
            objects = list(data.get("objects", []))
            for obj in objects:
                if (obj.get("apiVersion"), obj.get("kind")) == _CRD_KEY:
                    for info in crd_kinds(obj):
                        self.registry.register(info)
            self._objects = {self._key(o): o for o in objects}
            self._rv = int(data.get("resourceVersion", 0))
            self._compacted_rv = self._rv
            self._history = []
            self._logs = {(str(ns), str(pod), str(c)): str(text) for ns, pod, c, text in data.get("logs", [])}

    # -- internals ---------------------------------------------------------------------------
    def _key(self, obj: Obj) -> Key:
        meta = obj.get("metadata") or {}
        info = self.registry.get(str(obj.get("apiVersion")), str(obj.get("kind")))
        ns = str(meta.get("namespace") or "") if info.namespaced else ""
        return (info.api_version, info.kind, ns, str(meta.get("name", "")))

    def _commit(self, key: Key, obj: Obj, event: str) -> Obj:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        self._objects[key] = obj
        if key[:2] == _CRD_KEY:
            for info in crd_kinds(obj):
                self.registry.register(info)
        out = copy.deepcopy(obj)
        self._notify(event, out, key)
        return copy.deepcopy(obj)

    def _notify(self, event: str, obj: Obj, key: Key) -> None:
        ev = WatchEvent(event, obj, self._rv)
        self._history.append((self._rv, ev, key))
        if len(self._history) > _HISTORY:
            dropped = len(self._history) - _HISTORY
            self._compacted_rv = self._history[dropped - 1][0]
            del self._history[:dropped]
        for w in self._watches:
            if self._watch_matches(w, key):
                w.events.put(ev)
        for listener in list(self.listeners):
            listener(event, copy.deepcopy(obj))

    @staticmethod
    def _watch_matches(w: _Watch, key: Key) -> bool:
        return (key[0], key[1]) == (w.kind.api_version, w.kind.kind) and (
            w.namespace is None or key[2] == w.namespace
        )


    def _unregister_crd(self, crd: Obj) -> None:
        """A deleted CRD takes its kinds and every object of them with it."""
        for info in crd_kinds(crd):
            for key in [k for k in self._objects if k[:2] == (info.api_version, info.kind)]:
                self.delete(*key)
            self.registry.unregister(info.api_version, info.kind)


def crd_kinds(crd: Obj) -> list[KindInfo]:
    """The kinds a CustomResourceDefinition defines: one per served version."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = str(spec.get("group", ""))
    kind, plural = str(names.get("kind", "")), str(names.get("plural", ""))
    if not (group and kind and plural):
        return []
    out = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        subresources = tuple(sorted((version.get("subresources") or {}).keys()))
        out.append(
            KindInfo(
                api_version=f"{group}/{version.get('name')}",
                kind=kind,
                plural=plural,
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                subresources=subresources,
                categories=tuple(names.get("categories") or ()),
            )
        )
    return out


_CRD_KEY = ("apiextensions.k8s.io/v1", "CustomResourceDefinition")
_HISTORY = 20000


def _spec_of(obj: Obj) -> Any:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}
