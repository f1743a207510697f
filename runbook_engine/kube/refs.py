"""Object references and the one registry of kinds, keyed by ``(apiVersion, kind)``.

Every layer resolves kinds here: the sandbox serves discovery from it, ``KubeCluster`` turns a kind
into a REST path with it, and mesh CRDs are ordinary entries. CRDs found at run time are added with
``KindRegistry.register``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from runbook_engine.errors import NotFoundError

ALL_VERBS: tuple[str, ...] = (
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
)


@dataclass(frozen=True)
class KindInfo:
    """What the API knows about one kind: its REST name, scope and short names."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0] if "/" in self.api_version else ""

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        """The REST path of this kind's collection (or of one object when ``name`` is given)."""
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        return f"{base}/{name}" if name else base


@dataclass(frozen=True, order=True)
class ObjectRef:
    """Identity of one object: ``(api_version, kind, namespace, name)``; namespace is "" if cluster-scoped."""

    api_version: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ObjectRef:
        meta = obj.get("metadata") or {}
        return cls(
            str(obj.get("apiVersion", "")),
            str(obj.get("kind", "")),
            str(meta.get("namespace") or ""),
            str(meta.get("name", "")),
        )

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind}/{where}{self.name}"

    @property
    def key(self) -> str:
        """A stable, file-name-safe identifier, e.g. ``apps_v1.Deployment.sre.api``."""
        av = self.api_version.replace("/", "_")
        return f"{av}.{self.kind}.{self.namespace or '_'}.{self.name}"


@dataclass
class KindRegistry:
    """Thread-safe registry of kinds, looked up by (apiVersion, kind) or by (group, version, plural)."""

    _by_kind: dict[tuple[str, str], KindInfo] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def register(self, info: KindInfo) -> KindInfo:
        with self._lock:
            self._by_kind[(info.api_version, info.kind)] = info
        return info

    def unregister(self, api_version: str, kind: str) -> None:
        with self._lock:
            self._by_kind.pop((api_version, kind), None)

    def get(self, api_version: str, kind: str) -> KindInfo:
        info = self.find(api_version, kind)
        if info is None:
            raise NotFoundError(
                f"unknown kind {kind} in {api_version}",
                status=404,
                reason="NotFound",
                hint="check apiVersion and kind, or install the CRD that defines it",
            )
        return info

    def find(self, api_version: str, kind: str) -> KindInfo | None:
        with self._lock:
            return self._by_kind.get((api_version, kind))

    def by_plural(self, group: str, version: str, plural: str) -> KindInfo | None:
        api_version = f"{group}/{version}" if group else version
        with self._lock:
            for info in self._by_kind.values():
                if info.api_version == api_version and info.plural == plural:
                    return info
        return None

    def __iter__(self) -> Iterator[KindInfo]:
        with self._lock:
            return iter(list(self._by_kind.values()))

    def copy(self) -> KindRegistry:
        with self._lock:
            return KindRegistry(dict(self._by_kind))


def _kinds(api_version: str, rows: Iterable[tuple[str, str, bool, tuple[str, ...]]]) -> list[KindInfo]:
    return [KindInfo(api_version, kind, plural, ns, short) for kind, plural, ns, short in rows]


BUILTIN_KINDS: tuple[KindInfo, ...] = tuple(
    _kinds(
        "v1",
        [
            ("Namespace", "namespaces", False, ("ns",)),
            ("Node", "nodes", False, ("no",)),
            ("Pod", "pods", True, ("po",)),
            ("Service", "services", True, ("svc",)),
            ("Endpoints", "endpoints", True, ("ep",)),
            ("ServiceAccount", "serviceaccounts", True, ("sa",)),
            ("ConfigMap", "configmaps", True, ("cm",)),
            ("Secret", "secrets", True, ()),
            ("Event", "events", True, ("ev",)),
        ],
    )
    + _kinds(
        "apps/v1",
        [
            ("Deployment", "deployments", True, ("deploy",)),
            ("ReplicaSet", "replicasets", True, ("rs",)),
            ("StatefulSet", "statefulsets", True, ("sts",)),
            ("DaemonSet", "daemonsets", True, ("ds",)),
        ],
    )
    + _kinds("batch/v1", [("Job", "jobs", True, ()), ("CronJob", "cronjobs", True, ("cj",))])
    + _kinds("coordination.k8s.io/v1", [("Lease", "leases", True, ())])
    + _kinds(
        "apiextensions.k8s.io/v1",
        [("CustomResourceDefinition", "customresourcedefinitions", False, ("crd", "crds"))],
    )
    + _kinds(
        "admissionregistration.k8s.io/v1",
        [
            ("MutatingWebhookConfiguration", "mutatingwebhookconfigurations", False, ()),
            ("ValidatingWebhookConfiguration", "validatingwebhookconfigurations", False, ()),
        ],
    )
    + _kinds("networking.k8s.io/v1", [("NetworkPolicy", "networkpolicies", True, ("netpol",))])
    + _kinds(
        "security.istio.io/v1",
        [
            ("PeerAuthentication", "peerauthentications", True, ("pa",)),
            ("AuthorizationPolicy", "authorizationpolicies", True, ("ap",)),
            ("RequestAuthentication", "requestauthentications", True, ("ra",)),
        ],
    )
    + _kinds(
        "networking.istio.io/v1",
        [
            ("ServiceEntry", "serviceentries", True, ("se",)),
            ("DestinationRule", "destinationrules", True, ("dr",)),
            ("VirtualService", "virtualservices", True, ("vs",)),
            ("Gateway", "gateways", True, ("gw",)),
            ("Sidecar", "sidecars", True, ()),
        ],
    )
    + _kinds(
        "gateway.networking.k8s.io/v1",
        [("Gateway", "gateways", True, ("gtw",)), ("HTTPRoute", "httproutes", True, ())],
    )
    + _kinds("gateway.networking.k8s.io/v1alpha2", [("TCPRoute", "tcproutes", True, ())])
    + _kinds(
        "policy.linkerd.io/v1beta3",
        [("Server", "servers", True, ("srv",))],
    )
    + _kinds(
        "policy.linkerd.io/v1beta1",
        [("ServerAuthorization", "serverauthorizations", True, ("saz",)), ("HTTPRoute", "httproutes", True, ())],
    )
    + _kinds(
        "policy.linkerd.io/v1alpha1",
        [
            ("AuthorizationPolicy", "authorizationpolicies", True, ()),
            ("MeshTLSAuthentication", "meshtlsauthentications", True, ()),
            ("NetworkAuthentication", "networkauthentications", True, ()),
        ],
    )
    + _kinds("spire.spiffe.io/v1alpha1", [("ClusterSPIFFEID", "clusterspiffeids", False, ())])
)

#: Kinds with a status subresource in real clusters.
STATUS_KINDS: frozenset[str] = frozenset(
    {"Pod", "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob", "Node", "Namespace",
     "Service", "CustomResourceDefinition"}
)


def default_registry() -> KindRegistry:
    """A fresh registry holding every built-in and mesh kind."""
    reg = KindRegistry()
    for info in BUILTIN_KINDS:
        subs: tuple[str, ...] = ("status",) if info.kind in STATUS_KINDS and info.api_version in _CORE_GROUPS else ()
        if info.kind == "Pod":
            subs = ("status", "log")
        reg.register(KindInfo(**{**info.__dict__, "subresources": subs}))
    return reg


_CORE_GROUPS = frozenset({"v1", "apps/v1", "batch/v1", "apiextensions.k8s.io/v1"})

#: The process-wide registry; clients add discovered CRDs to it.
REGISTRY: KindRegistry = default_registry()
