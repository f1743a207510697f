"""``MemoryCluster``: an in-memory ``Cluster`` the planner simulates phases on, and tests run against.

It follows the API server where the engine can notice: server-side apply with field ownership
(``kube.merge``; declarative, so ``resourceVersion``/``uid`` in an applied object are ignored),
the four patch types (a ``resourceVersion`` in a patch is an optimistic lock), ``generation``
bumped on spec changes, a global ``resourceVersion``, Secret ``stringData`` folded into ``data``,
``dry_run`` that stores nothing, deletion with owner-reference cascade (and a Namespace taking its
objects with it), and deep copies on every read.

Where it is deliberately looser than a server: Namespaces need not exist (a test or a partial
snapshot can hold a Deployment without its Namespace), any kind can be applied (a CRD's objects can
be simulated in the phase that installs it), and a patch may set ``status`` (tests simulate pods
turning unhealthy that way).
"""

from __future__ import annotations

import builtins
import datetime as dt
import threading
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from runbook_engine.errors import ClusterError, ConflictError, InvalidObjectError, NotFoundError
from runbook_engine.kube.cluster import FIELD_MANAGER, Cluster, Obj, PatchType, Propagation
from runbook_engine.kube.merge import (
    clone,
    fold_string_data,
    json_patch,
    merge_patch,
    record_update,
    server_side_apply,
    spec_changed,
    strategic_merge,
)
from runbook_engine.kube.refs import REGISTRY, KindRegistry, ObjectRef
from runbook_engine.kube.selectors import labels_of, parse_selector

#: The manager recorded as owning the fields of objects loaded into the cluster.
SEED_MANAGER = "before-first-apply"


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _same(live: Obj, result: Obj) -> bool:
    """Equal but for managedFields timestamps and resourceVersion."""

    def norm(o: Obj) -> Obj:
        meta = {k: v for k, v in o.get("metadata", {}).items() if k != "resourceVersion"}
        meta["managedFields"] = [{k: v for k, v in e.items() if k != "time"} for e in meta.get("managedFields") or []]
        return {**o, "metadata": meta}

    return norm(live) == norm(result)


def _by_ref(item: tuple[ObjectRef, Obj]) -> ObjectRef:
    return item[0]


def _not_found(ref: ObjectRef) -> NotFoundError:
    return NotFoundError(f'{ref.kind} "{ref.name}" not found', status=404, reason="NotFound")


class MemoryCluster:
    """A ``Cluster`` held in a dict; thread-safe; ``writes`` counts committed writes."""

    def __init__(
        self, objects: Iterable[Mapping[str, Any]] = (), name: str = "memory", *, registry: KindRegistry | None = None
    ) -> None:
        self._name = name
        self._registry = registry or REGISTRY
        self._lock = threading.RLock()
        self._kinds: dict[tuple[str, str], dict[str, dict[str, Obj]]] = {}  # kind -> namespace -> name
        self._logs: dict[tuple[str, str, str], str] = {}
        self._rv = 0
        self.writes = 0
        self.requests: Counter[str] = Counter()
        for obj in objects:
            self._load(obj)

    @classmethod
    def snapshot(cls, cluster: Cluster, kinds: Iterable[tuple[str, str]], name: str | None = None) -> MemoryCluster:
        """A copy of ``cluster``'s objects of the given ``(apiVersion, kind)``s: one ``list`` per kind."""
        snap = cls(name=name or f"{cluster.name} (snapshot)")
        for api_version, kind in kinds:
            for obj in cluster.list(api_version, kind):
                snap._load(obj, copy=False)  # list results are the caller's own copies already
        return snap

    @property
    def name(self) -> str:
        return self._name

    # -- reads -----------------------------------------------------------------------------------

    def get(self, ref: ObjectRef) -> Obj | None:
        with self._lock:
            self.requests[f"get {ref.kind}"] += 1
            obj = self._lookup(self._normal(ref))
            return clone(obj) if obj is not None else None

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> builtins.list[Obj]:
        selector = parse_selector(label_selector)
        with self._lock:
            self.requests[f"list {kind}"] += 1
            spaces = self._kinds.get((api_version, kind)) or {}
            chosen = [namespace] if namespace else sorted(spaces)
            return [
                clone(obj)
                for ns in chosen
                for _, obj in sorted((spaces.get(ns) or {}).items())
                if selector.matches(labels_of(obj))
            ]

    def objects(self) -> builtins.list[Obj]:
        """Every stored object (deep copies), in a stable order."""
        with self._lock:
            return [clone(obj) for _, obj in sorted(self._items(), key=_by_ref)]

    def pod_logs(self, namespace: str, name: str, container: str | None = None, tail_lines: int | None = None) -> str:
        with self._lock:
            self.requests["log Pod"] += 1
            pod = self._lookup(ObjectRef("v1", "Pod", namespace, name))
            if pod is None:
                raise _not_found(ObjectRef("v1", "Pod", namespace, name))
            text = self._logs.get((namespace, name, self._container(pod, container)), "")
        if tail_lines is not None:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-tail_lines:]) if tail_lines > 0 else ""
        return text

    def set_pod_log(self, namespace: str, name: str, container: str, text: str) -> None:
        """Set what ``pod_logs`` returns for a container."""
        with self._lock:
            self._logs[(namespace, name, container)] = text

    # -- writes ----------------------------------------------------------------------------------

    def apply(
        self,
        obj: Mapping[str, Any],
        *,
        field_manager: str = FIELD_MANAGER,
        dry_run: bool = False,
        force: bool = True,
    ) -> Obj:
        ref = self._ref_of(obj)
        with self._lock:
            self.requests[f"apply {ref.kind}"] += 1
            config = self._with_identity(obj, ref)
            live = self._live(ref)
            result = server_side_apply(live, config, manager=field_manager, force=force, now=_now())
            return self._store(ref, live, result, dry_run=dry_run)

    def patch(
        self,
        ref: ObjectRef,
        patch: Any,
        *,
        patch_type: PatchType = PatchType.MERGE,
        dry_run: bool = False,
        field_manager: str = FIELD_MANAGER,
    ) -> Obj:
        if patch_type is PatchType.APPLY:
            return self.apply(patch, field_manager=field_manager, dry_run=dry_run)
        ref = self._normal(ref)
        with self._lock:
            self.requests[f"patch {ref.kind}"] += 1
            live = self._live(ref)
            if live is None:
                raise _not_found(ref)
            patched = self._patched(live, patch, patch_type)
            if ObjectRef.of(patched) != ref:
                raise InvalidObjectError(
                    f"{ref}: a patch may not change apiVersion, kind, namespace or name", status=422, reason="Invalid"
                )
            self._check_preconditions(live, patched)
            scope = patch if patch_type is PatchType.MERGE else None
            result = record_update(live, patched, manager=field_manager, now=_now(), merge_patch=scope)
            return self._store(ref, live, result, dry_run=dry_run)

    def delete(
        self,
        ref: ObjectRef,
        *,
        dry_run: bool = False,
        propagation: Propagation = Propagation.BACKGROUND,
    ) -> Obj | None:
        ref = self._normal(ref)
        with self._lock:
            self.requests[f"delete {ref.kind}"] += 1
            live = self._lookup(ref)
            if live is None:
                return None
            if dry_run:
                return clone(live)
            self._remove(ref, propagation)
            self.writes += 1
            return clone(live)

    # -- internals -------------------------------------------------------------------------------

    def _lookup(self, ref: ObjectRef) -> Obj | None:
        return ((self._kinds.get((ref.api_version, ref.kind)) or {}).get(ref.namespace) or {}).get(ref.name)

    def _live(self, ref: ObjectRef) -> Obj | None:
        """The object about to be written; the fields of a loaded object without managers get an owner.

        Loaded objects are attributed to ``SEED_MANAGER`` (as a real object is to whoever created it),
        so an apply that repeats and later drops one of their fields does not delete it. This is done
        on first write rather than on load, so loading a large snapshot stays cheap.
        """
        live = self._lookup(ref)
        if live is not None and not live["metadata"].get("managedFields"):
            seeded = record_update({"apiVersion": live.get("apiVersion"), "metadata": {}}, live,
                                   manager=SEED_MANAGER, now=str(live["metadata"].get("creationTimestamp")))
            return seeded  # stored with the write that follows; a dry run leaves the object untouched
        return live

    def _put(self, ref: ObjectRef, obj: Obj) -> None:
        self._kinds.setdefault((ref.api_version, ref.kind), {}).setdefault(ref.namespace, {})[ref.name] = obj

    def _pop(self, ref: ObjectRef) -> Obj:
        return self._kinds[(ref.api_version, ref.kind)][ref.namespace].pop(ref.name)

    def _items(self) -> Iterator[tuple[ObjectRef, Obj]]:
        for (api_version, kind), spaces in self._kinds.items():
            for namespace, objects in spaces.items():
                for name, obj in objects.items():
                    yield ObjectRef(api_version, kind, namespace, name), obj

    def _namespaced(self, api_version: str, kind: str, namespace: str) -> bool:
        info = self._registry.find(api_version, kind)
        return info.namespaced if info is not None else bool(namespace)

    def _normal(self, ref: ObjectRef) -> ObjectRef:
        """The ref with the namespace dropped for cluster-scoped kinds, "default" for namespaced ones."""
        info = self._registry.find(ref.api_version, ref.kind)
        if ref.namespace and not self._namespaced(ref.api_version, ref.kind, ref.namespace):
            return ObjectRef(ref.api_version, ref.kind, "", ref.name)
        if not ref.namespace and info is not None and info.namespaced:
            return ObjectRef(ref.api_version, ref.kind, "default", ref.name)
        return ref

    def _ref_of(self, obj: Mapping[str, Any]) -> ObjectRef:
        ref = ObjectRef.of(obj)
        missing = [f for f, v in (("apiVersion", ref.api_version), ("kind", ref.kind), ("metadata.name", ref.name))
                   if not v]
        if missing:
            raise InvalidObjectError(
                f"object is missing {', '.join(missing)}", status=422, reason="Invalid",
                hint="every manifest needs apiVersion, kind and metadata.name",
            )
        return self._normal(ref)

    @classmethod
    def _with_identity(cls, obj: Mapping[str, Any], ref: ObjectRef) -> Obj:
        return cls._identify(clone(dict(obj)), ref)

    @staticmethod
    def _identify(obj: Obj, ref: ObjectRef) -> Obj:
        """``obj`` with ``metadata.namespace`` as the ref says (set, or dropped for cluster-scoped kinds)."""
        meta = obj.setdefault("metadata", {})
        if ref.namespace:
            meta["namespace"] = ref.namespace
        else:
            meta.pop("namespace", None)
        return obj

    @staticmethod
    def _check_preconditions(live: Obj | None, config: Mapping[str, Any]) -> None:
        """A ``resourceVersion`` or ``uid`` in a patch must match the live object (optimistic locking).

        Apply ignores both (as ``KubeCluster`` does), so a recorded pre-image can be re-applied as is.
        """
        meta = config.get("metadata") or {}
        live_meta = (live or {}).get("metadata") or {}
        for field in ("resourceVersion", "uid"):
            wanted = meta.get(field)
            if wanted and live is not None and str(wanted) != str(live_meta.get(field)):
                raise ConflictError(
                    f'Operation cannot be fulfilled on {config.get("kind")} "{meta.get("name")}": the object '
                    "has been modified; please apply your changes to the latest version and try again",
                    status=409,
                    reason="Conflict",
                )

    @staticmethod
    def _patched(live: Obj, patch: Any, patch_type: PatchType) -> Obj:
        if patch_type is PatchType.JSON:
            result = json_patch(live, patch)
        elif patch_type is PatchType.STRATEGIC:
            result = strategic_merge(live, patch)
        else:
            result = merge_patch(live, patch)
        if not isinstance(result, dict):
            raise InvalidObjectError("a patch must leave an object", status=422, reason="Invalid")
        return result

    def _store(self, ref: ObjectRef, live: Obj | None, result: Obj, *, dry_run: bool) -> Obj:
        fold_string_data(result)
        meta = result.setdefault("metadata", {})
        if live is None:
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = _now()
            meta["generation"] = 1
        else:
            for field in ("uid", "creationTimestamp"):
                meta[field] = live["metadata"].get(field)
            generation = int(live["metadata"].get("generation") or 1)
            meta["generation"] = generation + 1 if spec_changed(live, result) else generation
        if dry_run:
            meta["resourceVersion"] = str(live["metadata"].get("resourceVersion")) if live else str(self._rv)
            return clone(result)
        if live is not None and _same(live, result):
            return clone(live)  # a no-op write keeps resourceVersion, as the API server does
        self._rv += 1
        meta["resourceVersion"] = str(self._rv)
        self._put(ref, result)
        self.writes += 1
        return clone(result)

    def _remove(self, ref: ObjectRef, propagation: Propagation) -> None:
        obj = self._pop(ref)
        uid = obj["metadata"].get("uid")
        self._rv += 1
        for dep_ref, dep in list(self._items()):
            owners = dep.get("metadata", {}).get("ownerReferences") or []
            if not uid or not any(o.get("uid") == uid for o in owners):
                continue
            if propagation is Propagation.ORPHAN:
                kept = [o for o in owners if o.get("uid") != uid]
                dep["metadata"]["ownerReferences"] = kept
                if not kept:
                    del dep["metadata"]["ownerReferences"]
                self._rv += 1
                dep["metadata"]["resourceVersion"] = str(self._rv)
            elif self._lookup(dep_ref) is not None:
                self._remove(dep_ref, propagation)
        if (ref.api_version, ref.kind) == ("v1", "Namespace"):
            for member in [r for r, _ in self._items() if r.namespace == ref.name]:
                if self._lookup(member) is not None:  # not already gone with an owner
                    self._remove(member, propagation)
        if ref.kind == "Pod":
            self._logs = {k: v for k, v in self._logs.items() if k[:2] != (ref.namespace, ref.name)}

    def _load(self, obj: Mapping[str, Any], *, copy: bool = True) -> None:
        ref = self._ref_of(obj)
        stored = self._with_identity(obj, ref) if copy else self._identify(dict(obj), ref)
        meta = stored["metadata"]
        if "uid" not in meta:  # not ``setdefault``: a snapshot's objects all have one, and uuid4 is slow
            meta["uid"] = str(uuid.uuid4())
        if "creationTimestamp" not in meta:
            meta["creationTimestamp"] = _now()
        meta.setdefault("generation", 1)
        rv = str(meta.get("resourceVersion") or "")
        self._rv = max(self._rv, int(rv)) if rv.isdigit() else self._rv + 1
        meta["resourceVersion"] = rv if rv.isdigit() else str(self._rv)
        self._put(ref, stored)

    @staticmethod
    def _container(pod: Mapping[str, Any], container: str | None) -> str:
        names = [str(c.get("name")) for c in (pod.get("spec") or {}).get("containers") or []]
        if container is None:
            if len(names) > 1:
                raise ClusterError(
                    f"a container name must be specified for pod {pod['metadata']['name']}, choose one of: {names}",
                    status=400,
                    reason="BadRequest",
                )
            return names[0] if names else ""
        init = [str(c.get("name")) for c in (pod.get("spec") or {}).get("initContainers") or []]
        if names and container not in names + init:
            raise ClusterError(
                f"container {container} is not valid for pod {pod['metadata']['name']}",
                status=400,
                reason="BadRequest",
            )
        return container
