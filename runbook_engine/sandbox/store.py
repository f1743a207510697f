"""The sandbox's object store: the single source of truth behind the emulated API server.

Thread-safe, versioned (one global ``resourceVersion`` counter, as etcd's revision), with watch
subscriptions for the HTTP layer and change listeners for controllers. Mutating admission hooks
(e.g. sidecar injection) run on create, before the object is stored, as a real webhook would.

Objects are plain JSON-shaped dicts (dicts, lists and scalars only). A stored object is never
changed in place: a write stores a fresh copy and replaces the old one. That makes two kinds of
reads possible:

- ``get``, ``list``, ``all_objects``, ``dependents``, ``dump`` and the return value of every write
  are the caller's own copies, free to change;
- ``peek``, ``scan``, ``scan_sorted``, ``scan_all`` and ``scan_namespace`` hand out the stored
  objects themselves, for code that only inspects (list responses, indexes, selectors). They are
  read-only: changing one would change the cluster behind the store's back.

Listeners and watch events get the committed object itself, one object shared by every listener and
every watch, so they too must treat it as read-only (copy it before changing anything). Lists are
answered from an index by (apiVersion, kind, namespace), dependents and uids from indexes kept on
every write, so no request scans the whole store; ``encoded`` keeps the JSON of each stored object
until it is replaced, so list responses and state saves encode only what changed.

The store also keeps what a real cluster keeps beside its objects: container logs (written by the
pod runtime, read by ``pods/log``) and the kinds that stored CustomResourceDefinitions define
(registered in ``Store.registry`` while the CRD exists).
"""

from __future__ import annotations

import builtins
import json
import queue
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from runbook_engine.errors import ConflictError, NotFoundError
from runbook_engine.kube.refs import KindInfo, KindRegistry, default_registry

Obj = dict[str, Any]
Key = tuple[str, str, str, str]  # (api_version, kind, namespace, name)
KindKey = tuple[str, str]  # (api_version, kind)
_T = TypeVar("_T")

AdmissionHook = Callable[["Store", Obj], None]  # mutates the object in place before it is stored
#: ``(event type, object)`` after every committed change, under the store's lock. The object is the
#: stored one, shared with every other listener and watch: read it, never change it.
Listener = Callable[[str, Obj], None]

_stamp: tuple[int, str] = (-1, "")


def now_rfc3339() -> str:
    """The current UTC time to the second, as the API server writes timestamps."""
    global _stamp
    second = int(time.time())
    cached = _stamp
    if cached[0] != second:
        cached = _stamp = (second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second)))
    return cached[1]


_uids = random.Random()  # seeded from the OS; uids must be unique, not secret


def _new_uid() -> str:
    """A random (version 4) UUID, without a system call per object."""
    return str(uuid.UUID(int=_uids.getrandbits(128), version=4))


def json_copy(value: _T) -> _T:
    """A deep copy of JSON-shaped data (dicts, lists, scalars), several times faster than ``deepcopy``.

    Other values (tuples, enums, ...) are immutable in the data the store holds and are shared.
    """
    copied: _T = _copy(value)
    return copied


def _copy(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        out = {}
        for key, item in value.items():
            item_kind = type(item)
            out[key] = _copy(item) if item_kind is dict or item_kind is list else item
        return out
    if kind is list:
        return [_copy(item) if type(item) is dict or type(item) is list else item for item in value]
    return value


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED | MODIFIED | DELETED | BOOKMARK
    object: Obj  # shared with listeners and other watches: read-only
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


class _Indexes:
    """Stored objects by kind and namespace, by uid, and dependents by owner uid."""

    def __init__(self) -> None:
        self.by_kind: dict[KindKey, dict[str, dict[str, Obj]]] = {}
        self.uids: dict[str, Key] = {}
        self.dependents: dict[str, set[Key]] = {}
        self.owners: dict[Key, tuple[str, ...]] = {}

    def put(self, key: Key, obj: Obj, old: Obj | None) -> None:
        self.by_kind.setdefault(key[:2], {}).setdefault(key[2], {})[key[3]] = obj
        meta = obj.get("metadata") or {}
        if old is not None:
            old_uid = (old.get("metadata") or {}).get("uid")
            if old_uid and old_uid != meta.get("uid") and self.uids.get(str(old_uid)) == key:
                del self.uids[str(old_uid)]
        if meta.get("uid"):
            self.uids[str(meta["uid"])] = key
        self._set_owners(key, _owner_uids(meta))

    def drop(self, key: Key, obj: Obj) -> None:
        spaces = self.by_kind.get(key[:2], {})
        names = spaces.get(key[2], {})
        names.pop(key[3], None)
        if not names:
            spaces.pop(key[2], None)
        uid = str((obj.get("metadata") or {}).get("uid") or "")
        if uid and self.uids.get(uid) == key:
            del self.uids[uid]
        self._set_owners(key, ())

    def _set_owners(self, key: Key, owners: tuple[str, ...]) -> None:
        previous = self.owners.get(key, ())
        if previous == owners:
            return
        for uid in previous:
            keys = self.dependents.get(uid)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self.dependents[uid]
        for uid in owners:
            self.dependents.setdefault(uid, set()).add(key)
        if owners:
            self.owners[key] = owners
        else:
            self.owners.pop(key, None)


def _owner_uids(meta: Obj) -> tuple[str, ...]:
    return tuple(str(ref["uid"]) for ref in meta.get("ownerReferences") or () if ref.get("uid"))


class Store:
    """Versioned object store with watches, listeners and admission hooks."""

    def __init__(self, registry: KindRegistry | None = None) -> None:
        self.registry = registry or default_registry()
        self.lock = threading.RLock()
        self._objects: dict[Key, Obj] = {}
        self._index = _Indexes()
        self._rv = 0
        self._watches: list[_Watch] = []
        self.listeners: list[Listener] = []
        self.admission: list[AdmissionHook] = []
        self._history: deque[tuple[int, WatchEvent, Key]] = deque()  # bounded log for watch resume
        self._compacted_rv = 0  # events at or below this revision are no longer retained
        self._logs: dict[tuple[str, str], dict[str, str]] = {}  # (namespace, pod) -> container -> log text
        self._json: dict[int, tuple[Obj, bytes]] = {}  # id(stored object) -> (it, its JSON)

    # -- reads: copies -------------------------------------------------------------------------
    @property
    def resource_version(self) -> int:
        return self._rv

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> Obj | None:
        """A copy of one object, or None."""
        obj = self.peek(api_version, kind, namespace, name)
        return json_copy(obj) if obj is not None else None

    def list(self, api_version: str, kind: str, namespace: str | None = None) -> list[Obj]:
        """Copies of every object of a kind (in one namespace, or all)."""
        return [json_copy(o) for o in self.scan(api_version, kind, namespace)]

    def all_objects(self) -> builtins.list[Obj]:
        return [json_copy(o) for o in self.scan_all()]

    def dependents(self, owner_uid: str) -> builtins.list[Obj]:
        """Objects whose ``ownerReferences`` name ``owner_uid`` (what garbage collection follows)."""
        with self.lock:
            keys = sorted(self._index.dependents.get(owner_uid, ()))
            return [json_copy(self._objects[k]) for k in keys if k in self._objects]

    def exists_uid(self, uid: str) -> bool:
        """Whether any stored object has this uid (an owner that still exists)."""
        with self.lock:
            return uid in self._index.uids

    # -- reads: the stored objects, read-only --------------------------------------------------
    def peek(self, api_version: str, kind: str, namespace: str, name: str) -> Obj | None:
        """The stored object itself (read-only: never change it), or None."""
        with self.lock:
            return self._objects.get((api_version, kind, namespace or "", name))

    def scan(self, api_version: str, kind: str, namespace: str | None = None) -> builtins.list[Obj]:
        """The stored objects of a kind (read-only), from the kind index: no copies, no full scan."""
        with self.lock:
            spaces = self._index.by_kind.get((api_version, kind))
            if not spaces:
                return []
            if namespace is not None:
                return list(spaces.get(namespace, {}).values())
            return [obj for names in spaces.values() for obj in names.values()]

    def scan_sorted(self, api_version: str, kind: str, namespace: str | None = None) -> builtins.list[Obj]:
        """``scan`` in the API server's list order, by namespace then name (read-only).

        Sorts the index's keys, which are those two strings, so no key is computed per object.
        """
        with self.lock:
            spaces = self._index.by_kind.get((api_version, kind)) or {}
            chosen = [namespace] if namespace is not None else sorted(spaces)
            return [names[name] for names in (spaces.get(ns) or {} for ns in chosen) for name in sorted(names)]

    def scan_all(self) -> builtins.list[Obj]:
        """Every stored object (read-only), in the order they were first stored."""
        with self.lock:
            return list(self._objects.values())

    def scan_namespace(self, namespace: str) -> builtins.list[Obj]:
        """Every stored object of every namespaced kind in ``namespace`` (read-only)."""
        with self.lock:
            return [
                obj for spaces in self._index.by_kind.values() for obj in spaces.get(namespace, {}).values()
            ] if namespace else []

    def encoded(self, objects: Iterable[Obj]) -> builtins.list[bytes]:
        """The compact JSON of each of ``objects`` (stored objects, as ``scan`` returns them).

        Kept per stored object until it is replaced or deleted, so only objects written since the
        last call are encoded again.
        """
        out: builtins.list[bytes] = []
        fresh: builtins.list[tuple[Obj, bytes]] = []
        for obj in objects:
            hit = self._json.get(id(obj))
            if hit is None or hit[0] is not obj:
                hit = (obj, _ENCODER.encode(obj).encode())
                fresh.append(hit)
            out.append(hit[1])
        if fresh:
            with self.lock:  # keep only what is still stored (a write may have replaced it meanwhile)
                for obj, data in fresh:
                    if self._objects.get(self._key(obj)) is obj:
                        self._json[id(obj)] = (obj, data)
        return out

    # -- container logs ------------------------------------------------------------------------
    def set_pod_log(self, namespace: str, pod: str, container: str, text: str) -> None:
        """Replace the log of one container of a pod (the pod runtime's output)."""
        with self.lock:
            self._logs.setdefault((namespace, pod), {})[container] = text

    def append_pod_log(self, namespace: str, pod: str, container: str, text: str) -> None:
        with self.lock:
            logs = self._logs.setdefault((namespace, pod), {})
            logs[container] = logs.get(container, "") + text

    def get_pod_log(self, namespace: str, pod: str, container: str) -> str:
        """The log of one container; empty when it has logged nothing."""
        with self.lock:
            return self._logs.get((namespace, pod), {}).get(container, "")

    # -- writes ------------------------------------------------------------------------------
    def create(self, obj: Obj, *, dry_run: bool = False, copy_result: bool = True) -> Obj:
        """Store a new object (a copy of ``obj``); returns the stored state.

        With ``copy_result=False`` the stored object itself is returned, read-only: for callers that
        only look at it (or not at all), saving a copy.
        """
        obj = json_copy(obj)
        with self.lock:
            for hook in self.admission:
                hook(self, obj)
            key = self._key(obj)
            if key in self._objects:
                raise ConflictError(
                    f'{obj["kind"]} "{key[3]}" already exists', status=409, reason="AlreadyExists"
                )
            meta = obj.setdefault("metadata", {})
            meta.setdefault("uid", _new_uid())
            meta.setdefault("creationTimestamp", now_rfc3339())
            meta["generation"] = 1
            if dry_run:
                meta["resourceVersion"] = str(self._rv)
                return obj
            return self._commit(key, obj, "ADDED", copy_result)

    def update(
        self, obj: Obj, *, expect_rv: str | None = None, dry_run: bool = False, copy_result: bool = True
    ) -> Obj:
        """Replace a stored object; bumps ``generation`` when anything but metadata/status changed.

        ``copy_result`` as for ``create``.
        """
        obj = json_copy(obj)
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
            if _spec_changed(old, obj):
                gen += 1
            meta["generation"] = gen
            if dry_run:
                return obj
            return self._commit(key, obj, "MODIFIED", copy_result)

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> Obj:
        """Remove an object; returns (a copy of) its last state, with the deletion's revision."""
        with self.lock:
            key = (api_version, kind, namespace or "", name)
            old = self._objects.pop(key, None)
            if old is None:
                raise NotFoundError(f'{kind} "{name}" not found', status=404, reason="NotFound")
            self._index.drop(key, old)
            self._json.pop(id(old), None)
            self._rv += 1
            last = {**old, "metadata": {**old["metadata"], "resourceVersion": str(self._rv)}}
            if kind == "Pod":
                self._logs.pop((key[2], name), None)
            self._notify("DELETED", last, key)
            if key[:2] == _CRD_KEY:
                self._unregister_crd(last)
            return json_copy(last)

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
                "objects": [json_copy(o) for o in self._objects.values()],
                "logs": self._log_rows(),
            }

    def dump_json(self) -> tuple[int, bytes]:
        """The ``dump`` as JSON, encoded outside the lock (see ``snapshot``)."""
        rv, objects, logs = self.snapshot()
        data = {"resourceVersion": rv, "objects": objects, "logs": logs}
        return rv, json.dumps(data, separators=(",", ":")).encode()

    def snapshot(self) -> tuple[int, builtins.list[Obj], builtins.list[builtins.list[str]]]:
        """``(resourceVersion, stored objects (read-only), log rows)``, consistent with each other.

        Only references are taken under the lock (stored objects never change in place), so writers
        are not held up while a large store is encoded.
        """
        with self.lock:
            return self._rv, list(self._objects.values()), self._log_rows()

    def load(self, data: dict[str, Any]) -> None:
        """Replace the whole state with a ``dump``; kinds of stored CRDs are registered first."""
        with self.lock:
            objects = list(data.get("objects", []))
            for obj in objects:
                if (obj.get("apiVersion"), obj.get("kind")) == _CRD_KEY:
                    for info in crd_kinds(obj):
                        self.registry.register(info)
            self._objects = {}
            self._index = _Indexes()
            self._json = {}
            for obj in objects:
                key = self._key(obj)
                self._index.put(key, obj, self._objects.get(key))
                self._objects[key] = obj
            self._rv = int(data.get("resourceVersion", 0))
            self._compacted_rv = self._rv
            self._history = deque()
            self._logs = {}
            for ns, pod, container, text in data.get("logs", []):
                self._logs.setdefault((str(ns), str(pod)), {})[str(container)] = str(text)

    # -- internals ---------------------------------------------------------------------------
    def _key(self, obj: Obj) -> Key:
        meta = obj.get("metadata") or {}
        info = self.registry.get(str(obj.get("apiVersion")), str(obj.get("kind")))
        ns = str(meta.get("namespace") or "") if info.namespaced else ""
        return (info.api_version, info.kind, ns, str(meta.get("name", "")))

    def _log_rows(self) -> builtins.list[builtins.list[str]]:
        return [[ns, pod, c, text] for (ns, pod), logs in self._logs.items() for c, text in logs.items()]

    def _commit(self, key: Key, obj: Obj, event: str, copy_result: bool) -> Obj:
        """Store ``obj`` (the store's own copy, never changed again) and tell watches and listeners."""
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        old = self._objects.get(key)
        if old is not None:
            self._json.pop(id(old), None)
        self._index.put(key, obj, old)
        self._objects[key] = obj
        if key[:2] == _CRD_KEY:
            for info in crd_kinds(obj):
                self.registry.register(info)
        self._notify(event, obj, key)
        return json_copy(obj) if copy_result else obj

    def _notify(self, event: str, obj: Obj, key: Key) -> None:
        """One shared, read-only object for the history, every watch and every listener."""
        ev = WatchEvent(event, obj, self._rv)
        if len(self._history) >= _HISTORY:
            self._compacted_rv = self._history.popleft()[0]
        self._history.append((self._rv, ev, key))
        for w in self._watches:
            if self._watch_matches(w, key):
                w.events.put(ev)
        for listener in list(self.listeners):
            listener(event, obj)

    @staticmethod
    def _watch_matches(w: _Watch, key: Key) -> bool:
        return (key[0], key[1]) == (w.kind.api_version, w.kind.kind) and (
            w.namespace is None or key[2] == w.namespace
        )

    def _unregister_crd(self, crd: Obj) -> None:
        """A deleted CRD takes its kinds and every object of them with it."""
        for info in crd_kinds(crd):
            for obj in self.scan(info.api_version, info.kind):
                self.delete(*self._key(obj))
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
_COMPACT = (",", ":")
#: Compact JSON for stored objects, one encoder for all of them (``encode`` is safe from any thread).
#: Without the cycle check, which costs a lookup per dict and list: a stored object is a tree, decoded
#: from JSON or copied with ``json_copy``.
_ENCODER = json.JSONEncoder(separators=_COMPACT, check_circular=False)
_HISTORY = 20000


def _spec_changed(old: Obj, new: Obj) -> bool:
    """Whether anything but metadata and status differs (what bumps ``generation``)."""
    fields = (old.keys() | new.keys()) - {"metadata", "status"}
    return any(k not in old or k not in new or old[k] != new[k] for k in fields)
