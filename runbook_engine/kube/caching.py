"""``CachingCluster``: per-phase list caching in front of any ``Cluster``.

Checks and actions in one phase read the same kinds over and over; a real API server should see one
list per kind. Within a phase, ``list`` results are kept per ``(kind, namespace, selector)``, and a
narrower question is answered from a broader cached answer (a namespaced or label-selected list from
the all-namespaces list of the kind, a ``get`` from any cached list that covers the object's
namespace). A write through this wrapper drops the cache of its kind; a cascading delete drops
everything, since dependents can be of any kind. ``new_phase`` clears all.

Reads that must see the cluster change on its own (waiting for a rollout, polling a condition) go
to ``uncached``, or call ``invalidate`` between polls.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Mapping
from typing import Any

from runbook_engine.kube.cluster import FIELD_MANAGER, Cluster, Obj, PatchType, Propagation
from runbook_engine.kube.merge import clone
from runbook_engine.kube.refs import ObjectRef
from runbook_engine.kube.selectors import labels_of, parse_selector

_Key = tuple[str, str, str | None, str]  # (apiVersion, kind, namespace or None for all, selector or "")


class CachingCluster:
    """A ``Cluster`` that answers repeated reads within a phase from memory."""

    def __init__(self, inner: Cluster, *, enabled: bool = True) -> None:
        """``enabled=False`` passes every read through: for a cluster that is memory already (a plan's
        simulation), where a cache would only copy each answer a second time."""
        self._inner = inner
        self._enabled = enabled
        self._lists: dict[_Key, list[Obj]] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def uncached(self) -> Cluster:
        """The wrapped cluster, for reads that must be fresh."""
        return self._inner

    def new_phase(self) -> None:
        """Forget everything: the next phase starts from the cluster's current state."""
        with self._lock:
            self._lists.clear()

    def invalidate(self, api_version: str | None = None, kind: str | None = None) -> None:
        """Forget one kind's cached lists (every kind when ``kind`` is None)."""
        with self._lock:
            if kind is None:
                self._lists.clear()
                return
            for key in [k for k in self._lists if (k[0], k[1]) == (api_version, kind)]:
                del self._lists[key]

    # -- reads -----------------------------------------------------------------------------------

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> builtins.list[Obj]:
        if not self._enabled:
            return self._inner.list(api_version, kind, namespace, label_selector)
        key: _Key = (api_version, kind, namespace or None, label_selector or "")
        with self._lock:
            cached = self._answer(key)
            if cached is not None:
                self.hits += 1
                return clone(cached)
        items = self._inner.list(api_version, kind, namespace, label_selector)
        with self._lock:
            self.misses += 1
            self._lists[key] = clone(items)
        return items

    def get(self, ref: ObjectRef) -> Obj | None:
        if not self._enabled:
            return self._inner.get(ref)
        with self._lock:
            covering = self._covering(ref.api_version, ref.kind, ref.namespace or None, "")
            found = next((o for o in covering or () if ObjectRef.of(o) == ref), None)
            if covering is not None and (found is not None or ref.namespace):
                self.hits += 1
                return clone(found)
        return self._inner.get(ref)

    def pod_logs(self, namespace: str, name: str, container: str | None = None, tail_lines: int | None = None) -> str:
        return self._inner.pod_logs(namespace, name, container, tail_lines)

    # -- writes ----------------------------------------------------------------------------------

    def apply(
        self,
        obj: Mapping[str, Any],
        *,
        field_manager: str = FIELD_MANAGER,
        dry_run: bool = False,
        force: bool = True,
    ) -> Obj:
        result = self._inner.apply(obj, field_manager=field_manager, dry_run=dry_run, force=force)
        if not dry_run:
            self.invalidate(str(obj.get("apiVersion")), str(obj.get("kind")))
        return result

    def patch(
        self,
        ref: ObjectRef,
        patch: Any,
        *,
        patch_type: PatchType = PatchType.MERGE,
        dry_run: bool = False,
        field_manager: str = FIELD_MANAGER,
    ) -> Obj:
        result = self._inner.patch(ref, patch, patch_type=patch_type, dry_run=dry_run, field_manager=field_manager)
        if not dry_run:
            self.invalidate(ref.api_version, ref.kind)
        return result

    def delete(
        self,
        ref: ObjectRef,
        *,
        dry_run: bool = False,
        propagation: Propagation = Propagation.BACKGROUND,
    ) -> Obj | None:
        result = self._inner.delete(ref, dry_run=dry_run, propagation=propagation)
        if not dry_run:
            # Dependents of any kind go with a cascading delete; orphaning rewrites their ownerReferences.
            self.invalidate()
        return result

    # -- internals -------------------------------------------------------------------------------

    def _answer(self, key: _Key) -> builtins.list[Obj] | None:
        """The cached answer to a list question, exact or filtered from a broader cached list."""
        if key in self._lists:
            return self._lists[key]
        api_version, kind, namespace, selector = key
        covering = self._covering(api_version, kind, namespace, selector)
        if covering is None:
            return None
        wanted = parse_selector(selector)
        return [o for o in covering if wanted.matches(labels_of(o))]

    def _covering(self, api_version: str, kind: str, namespace: str | None, selector: str) -> builtins.list[Obj] | None:
        """Objects of a cached list that covers ``namespace`` (all when None), before selector filtering."""
        candidates: list[_Key] = [(api_version, kind, None, "")]
        if namespace is not None:
            candidates.append((api_version, kind, namespace, ""))
        if selector:
            candidates.append((api_version, kind, None, selector))
            if namespace is not None:
                candidates.append((api_version, kind, namespace, selector))
        for candidate in candidates:
            if candidate in self._lists:
                items = self._lists[candidate]
                return [o for o in items if namespace is None or ObjectRef.of(o).namespace == namespace]
        return None
