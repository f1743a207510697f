"""A snapshot of the platform as the data plane sees it: who is who, where, and with which proxy.

``MeshView`` is taken once from the store (one listing per kind) and answers the questions every
connection rule asks: which pod stands for a workload, which pods back a service port, which
dataplane a pod has, which mesh policies exist. Callers take a fresh view after the store changes.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property

from runbook_engine.kube.selectors import selector_from_object
from runbook_engine.sandbox.physics import objects as o
from runbook_engine.sandbox.physics.control_plane import ControlPlane

WORKLOAD_KINDS = (
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("batch/v1", "Job"),
)
EXTERNAL_CLIENT_IP = "203.0.113.10"  # TEST-NET-3: a caller on the internet
NODE_IP = "10.0.0.1"  # the kubelet's and kube-apiserver's source address on the pod network


class Dataplane(StrEnum):
    NONE = "none"
    SIDECAR = "istio-sidecar"
    AMBIENT = "istio-ambient"
    LINKERD = "linkerd"

    @property
    def istio(self) -> bool:
        return self in (Dataplane.SIDECAR, Dataplane.AMBIENT)


class PeerKind(StrEnum):
    POD = "pod"
    KUBELET = "kubelet"
    APISERVER = "kube-apiserver"
    EXTERNAL = "external"


@dataclass(frozen=True)
class Peer:
    """The calling side of a connection."""

    kind: PeerKind
    namespace: str = ""
    workload: str = ""
    service_account: str = ""
    ip: str = ""
    pod: o.Obj | None = None
    dataplane: Dataplane = Dataplane.NONE

    @property
    def label(self) -> str:
        return f"{self.namespace}/{self.workload}" if self.namespace else self.kind.value


@dataclass(frozen=True)
class Target:
    """The called side: a service port and the pod that answers it, or an external host."""

    host: str
    port: int
    namespace: str = ""
    service: str = ""
    target_port: int = 0
    port_name: str = ""
    app_protocol: str = ""
    pod: o.Obj | None = None
    workload: str = ""
    dataplane: Dataplane = Dataplane.NONE
    external: bool = False

    @property
    def fqdn(self) -> str:
        return self.host if self.external else f"{self.service}.{self.namespace}.svc.cluster.local"


def pod_dataplane(pod: o.Obj) -> Dataplane:
    if o.has_container(pod, o.ISTIO_PROXY):
        return Dataplane.SIDECAR
    if o.has_container(pod, o.LINKERD_PROXY):
        return Dataplane.LINKERD
    if o.annotations_of(pod).get(o.AMBIENT_REDIRECTION) == "enabled":
        return Dataplane.AMBIENT
    return Dataplane.NONE


def pod_ready(pod: o.Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions")
    if not o.is_running(pod):
        return False
    if not conditions:
        return True
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def newest(pods: list[o.Obj]) -> o.Obj | None:
    """The pod that stands for a workload: the newest running one (a rollout's new generation)."""
    ranked = sorted(
        pods,
        key=lambda p: (pod_ready(p), o.is_running(p), o.meta(p).get("creationTimestamp", ""), o.name_of(p)),
    )
    return ranked[-1] if ranked else None


def ip_in(ip: str, cidrs: list[str]) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
        return any(addr in ipaddress.ip_network(c.strip(), strict=False) for c in cidrs if c.strip())
    except ValueError:
        return False


class MeshView:
    """One consistent reading of the objects the data plane cares about; everything is read lazily
    and at most once, so a view is cheap for questions that need little (e.g. one pod's proxy)."""

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        self._kinds: dict[tuple[str, ...], list[o.Obj]] = {}

    @classmethod
    def take(cls, cp: ControlPlane) -> MeshView:
        return cls(cp)

    @cached_property
    def pods(self) -> list[o.Obj]:
        return self.cp.store.scan("v1", "Pod")

    @cached_property
    def namespaces(self) -> dict[str, o.Obj]:
        return {o.name_of(n): n for n in self.cp.store.scan("v1", "Namespace")}

    @cached_property
    def _pods_by_namespace(self) -> dict[str, list[o.Obj]]:
        index: dict[str, list[o.Obj]] = {}
        for pod in self.pods:
            index.setdefault(o.namespace_of(pod), []).append(pod)
        return index

    def objects(self, api_version: str, kind: str, namespace: str | None = None) -> list[o.Obj]:
        return self.cp.store.scan(api_version, kind, namespace)

    def kinds(self, kind: str, *api_versions: str) -> list[o.Obj]:
        """Every object of a kind across the given API versions (read once per view)."""
        key = (kind, *api_versions)
        if key not in self._kinds:
            self._kinds[key] = [obj for av in api_versions for obj in self.objects(av, kind)]
        return self._kinds[key]

    @cached_property
    def trust_domain(self) -> str:
        return self.cp.trust_domain()

    @cached_property
    def root_namespace(self) -> str:
        return self.cp.root_namespace()

    @cached_property
    def ztunnel_nodes(self) -> set[str]:
        return self.cp.ztunnel_nodes()

    @cached_property
    def spire_agent_nodes(self) -> set[str]:
        return self.cp.spire_agent_nodes()

    def pods_in(self, namespace: str) -> list[o.Obj]:
        return self._pods_by_namespace.get(namespace, [])

    def workload_pods(self, namespace: str, workload: str) -> list[o.Obj]:
        for api_version, kind in WORKLOAD_KINDS:
            owner = self.cp.store.peek(api_version, kind, namespace, workload)
            if owner is not None:
                sel = selector_from_object(o.spec(owner).get("selector"))
                return [p for p in self.pods_in(namespace) if sel.matches(o.labels(p))]
        return [
            p for p in self.pods_in(namespace) if o.workload_name(p) == workload or o.name_of(p) == workload
        ]

    def service_pods(self, service: o.Obj) -> list[o.Obj]:
        selector = o.spec(service).get("selector") or {}
        if not selector:
            return []
        ns = o.namespace_of(service)
        return [p for p in self.pods_in(ns) if all(o.labels(p).get(k) == str(v) for k, v in selector.items())]

    def pod_by_ip(self, ip: str) -> o.Obj | None:
        return next((p for p in self.pods if o.pod_ip(p) == ip), None)

    def peer_for_pod(self, pod: o.Obj) -> Peer:
        return Peer(
            PeerKind.POD,
            o.namespace_of(pod),
            o.workload_name(pod),
            o.service_account(pod),
            o.pod_ip(pod),
            pod,
            pod_dataplane(pod),
        )
