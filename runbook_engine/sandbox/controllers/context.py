"""What every controller shares: the store, the index, the pod runtime, the clock and the allocators."""

from __future__ import annotations

import ipaddress
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from runbook_engine.errors import ConflictError
from runbook_engine.sandbox.controllers.index import KindKey, ObjectIndex, cow_copy
from runbook_engine.sandbox.controllers.util import (
    NODE,
    POD,
    labels_of,
    owner_reference,
    random_suffix,
    template_hash,
    uid_of,
)
from runbook_engine.sandbox.runtime import PodRuntime
from runbook_engine.sandbox.store import Key, Obj, Store

#: Pod IPs come from this range; they are data in pod status and Endpoints, never dialled.
POD_NETWORK = ipaddress.IPv4Network("10.244.0.0/14")


@dataclass(frozen=True)
class Timing:
    """The sandbox's fast clock, in seconds.

    ``step``: scheduling → containers started → first readiness probe; ``probe_period``: how often
    running containers are asked again (readiness and liveness); crash-loop back-off starts at
    ``backoff_base`` and doubles up to ``backoff_cap`` (a real kubelet: 10 s doubling to 5 min).
    """

    step: float = 0.02
    probe_period: float = 2.0
    backoff_base: float = 0.2
    backoff_cap: float = 5.0


@dataclass(frozen=True)
class NodeInfo:
    name: str
    labels: Mapping[str, str]
    ready: bool
    schedulable: bool
    internal_ip: str


class IpAllocator:
    """Hands out pod IPs from ``POD_NETWORK``, never reusing one that a stored pod holds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = 2

    def observe(self, ip: str) -> None:
        """Move past an address already in use (after the manager restarts on persisted state)."""
        try:
            offset = int(ipaddress.IPv4Address(ip)) - int(POD_NETWORK.network_address)
        except ValueError:
            return
        with self._lock:
            if 0 <= offset < POD_NETWORK.num_addresses:
                self._next = max(self._next, offset + 1)

    def allocate(self) -> str:
        with self._lock:
            offset = self._next
            self._next += 1
            if offset % 256 in (0, 255):
                offset = self._next
                self._next += 1
        return str(POD_NETWORK.network_address + offset % POD_NETWORK.num_addresses)


@dataclass
class Context:
    store: Store
    index: ObjectIndex
    runtime: PodRuntime
    timing: Timing = field(default_factory=Timing)
    rng: random.Random = field(default_factory=random.Random)
    ips: IpAllocator = field(default_factory=IpAllocator)
    _nodes: list[NodeInfo] | None = None
    _hashes: dict[tuple[str, int, int], str] = field(default_factory=dict)

    def get(self, key: Key) -> Obj | None:
        """The object from the index's cache (see ``cow_copy`` for what may be changed in place)."""
        return self.index.get(key)

    def children(self, owner: Obj, kind: KindKey) -> list[Obj]:
        """The objects of ``kind`` that ``owner`` controls, from the index."""
        out = []
        for key in self.index.children(uid_of(owner), kind):
            obj = self.get(key)
            if obj is not None:
                out.append(obj)
        return out

    def template_hash(self, owner: Obj, collision_count: int = 0) -> str:
        """The owner's pod-template hash; cached per generation, since only a spec change can change it."""
        meta = owner.get("metadata") or {}
        key = (str(meta.get("uid", "")), int(meta.get("generation", 0)), collision_count)
        cached = self._hashes.get(key)
        if cached is None:
            if len(self._hashes) > 100_000:
                self._hashes.clear()
            cached = self._hashes[key] = template_hash((owner.get("spec") or {}).get("template") or {}, collision_count)
        return cached

    # -- nodes -------------------------------------------------------------------------------
    def invalidate_nodes(self) -> None:
        self._nodes = None

    def nodes(self) -> list[NodeInfo]:
        """Every Node, cached until a Node changes."""
        cached = self._nodes
        if cached is None:
            cached = [info for ns, name in self.index.names(NODE) if (info := self._node_info(name))]
            self._nodes = cached
        return cached

    def node(self, name: str) -> NodeInfo | None:
        return next((n for n in self.nodes() if n.name == name), None)

    def _node_info(self, name: str) -> NodeInfo | None:
        node = self.store.peek("v1", "Node", "", name)
        if node is None:
            return None
        status = node.get("status") or {}
        conditions = status.get("conditions") or []
        ready = all(c.get("status") == "True" for c in conditions if c.get("type") == "Ready")
        addresses = status.get("addresses") or []
        ip = next((str(a.get("address")) for a in addresses if a.get("type") == "InternalIP"), "")
        schedulable = not (node.get("spec") or {}).get("unschedulable")
        return NodeInfo(name, labels_of(node), ready, schedulable, ip)

    # -- pods --------------------------------------------------------------------------------
    def create_pod(self, pod: Obj, *, generate: bool) -> Obj:
        """Create a pod; with ``generate``, its name gets a random five-character suffix."""
        base = str(pod["metadata"]["name"])
        for _ in range(20):
            candidate = {**pod, "metadata": dict(pod["metadata"])}  # the store copies the rest
            if generate:
                candidate["metadata"]["generateName"] = f"{base}-"
                candidate["metadata"]["name"] = f"{base}-{random_suffix(self.rng)}"
            try:
                return cow_copy(self.store.create(candidate, copy_result=False))
            except ConflictError:
                if not generate:
                    raise
        raise ConflictError(f"could not find a free name for pod {base}-*", status=409, reason="AlreadyExists")


def pod_from_template(
    template: Mapping[str, Any], owner: Obj, name: str, extra_labels: Mapping[str, str]
) -> Obj:
    """A pod as a workload controller creates it from its template (before admission and scheduling).

    Its top-level maps are its own; nested structures (containers, volumes) are the template's, to be
    replaced rather than changed in place (``Store.create`` stores a copy).
    """
    tmeta = template.get("metadata") or {}
    spec: dict[str, Any] = dict(template.get("spec") or {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("enableServiceLinks", True)
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": owner["metadata"].get("namespace", ""),
        "labels": {**dict(tmeta.get("labels") or {}), **dict(extra_labels)},
        "ownerReferences": [owner_reference(owner)],
    }
    if tmeta.get("annotations"):
        metadata["annotations"] = dict(tmeta["annotations"])
    return {
        "apiVersion": POD[0],
        "kind": POD[1],
        "metadata": metadata,
        "spec": spec,
        "status": {"phase": "Pending", "qosClass": qos_class(spec)},
    }


def qos_class(spec: Mapping[str, Any]) -> str:
    """``Guaranteed`` / ``Burstable`` / ``BestEffort`` from the containers' requests and limits."""
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    for r in resources:
        limits = r.get("limits") or {}
        requests = r.get("requests") or limits
        if not all(k in limits and requests.get(k) == limits[k] for k in ("cpu", "memory")):
            return "Burstable"
    return "Guaranteed"
