"""The indexed, read-only view of a platform that every mesh rule is evaluated against.

``MeshView.build(objects)`` indexes a set of plain manifest dicts once: namespaces, workloads
(Deployment/StatefulSet/DaemonSet/ReplicaSet/Job and bare Pods) with their pods, services, mesh
policies grouped per namespace, the Istio/Linkerd control planes and their configuration. The
semantic modules (``injection``, ``mtls``, ``authz``, ``linkerd``, ``flows``) read only this view, so
evaluating thousands of flows costs dictionary lookups, not rescans of every object.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

import yaml

from runbook_engine.kube.selectors import Selector, selector_from_object

Obj = dict[str, Any]

WORKLOAD_KINDS: frozenset[str] = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"})
#: Istio's default root namespace when the mesh config does not name one.
DEFAULT_ROOT_NAMESPACE = "istio-system"
DEFAULT_TRUST_DOMAIN = "cluster.local"
#: Linkerd's default ``clusterNetworks`` (https://linkerd.io/2/reference/cluster-configuration/).
DEFAULT_CLUSTER_NETWORKS: tuple[str, ...] = ("10.0.0.0/8", "100.64.0.0/10", "172.16.0.0/12", "192.168.0.0/16")


class Mesh(StrEnum):
    """Which data plane a workload is enrolled in."""

    ISTIO_SIDECAR = "istio-sidecar"
    ISTIO_AMBIENT = "istio-ambient"
    LINKERD = "linkerd"
    NONE = "none"

    @property
    def is_istio(self) -> bool:
        return self in (Mesh.ISTIO_SIDECAR, Mesh.ISTIO_AMBIENT)


class ProxyForm(StrEnum):
    """How the proxy is attached: a classic container, a native (init, restartPolicy Always) sidecar,
    the node's ztunnel (ambient), or nothing."""

    CONTAINER = "container"
    NATIVE_SIDECAR = "native-sidecar"
    AMBIENT = "ambient"
    NONE = "none"


def meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def name_of(obj: Mapping[str, Any]) -> str:
    return str(meta(obj).get("name", ""))


def namespace_of(obj: Mapping[str, Any]) -> str:
    return str(meta(obj).get("namespace") or "default")


def labels(obj: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in (meta(obj).get("labels") or {}).items()}


def annotations_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in (meta(obj).get("annotations") or {}).items()}


def ref(obj: Mapping[str, Any]) -> str:
    """``<kind> <ns>/<name>`` as SREs read it in a reason chain."""
    ns = meta(obj).get("namespace")
    return f"{obj.get('kind')} {ns}/{name_of(obj)}" if ns else f"{obj.get('kind')} {name_of(obj)}"


def age_key(obj: Mapping[str, Any]) -> tuple[str, str]:
    """Sort key, oldest first; objects without a creationTimestamp (not yet applied) count as newest."""
    return (str(meta(obj).get("creationTimestamp") or "9999"), name_of(obj))


def api_group(obj: Mapping[str, Any]) -> str:
    api_version = str(obj.get("apiVersion", ""))
    return api_version.rpartition("/")[0] if "/" in api_version else ""


@dataclass
class Workload:
    """A controller (or a bare pod) with its pod template and the pods it currently runs."""

    kind: str
    namespace: str
    name: str
    obj: Obj
    template: Obj
    selector: Selector
    pods: list[Obj] = field(default_factory=list)

    @cached_property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @cached_property
    def template_labels(self) -> dict[str, str]:
        return labels(self.template)

    @cached_property
    def template_annotations(self) -> dict[str, str]:
        return annotations_of(self.template)

    @property
    def pod_spec(self) -> Mapping[str, Any]:
        return self.template.get("spec") or {}

    @property
    def service_account(self) -> str:
        spec = self.pod_spec
        return str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")

    def container_port(self, port: int | str) -> int | None:
        """Resolve a port number or a named container port to its number."""
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        for container in self.pod_spec.get("containers") or []:
            for p in container.get("ports") or []:
                if p.get("name") == port:
                    return int(p["containerPort"])
        return None


@dataclass(frozen=True)
class MeshConfig:
    """The parts of Istio's mesh config (ConfigMap ``istio``, key ``mesh``) that change semantics."""

    root_namespace: str = DEFAULT_ROOT_NAMESPACE
    trust_domain: str = DEFAULT_TRUST_DOMAIN
    trust_domain_aliases: tuple[str, ...] = ()
    outbound_policy: str = "ALLOW_ANY"
    enable_auto_mtls: bool = True
    extension_providers: frozenset[str] = frozenset()
    enable_prometheus_merge: bool = True


@dataclass(frozen=True)
class LinkerdConfig:
    """Linkerd control-plane facts: installed, namespace, trust domain, default inbound policy."""

    installed: bool = False
    namespace: str = "linkerd"
    trust_domain: str = DEFAULT_TRUST_DOMAIN
    default_policy: str = "all-unauthenticated"
    cluster_networks: tuple[str, ...] = DEFAULT_CLUSTER_NETWORKS


def _template_of(obj: Obj) -> Obj:
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    return dict(spec.get("template") or {})


def _parse_mesh_config(text: str) -> MeshConfig:
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        return MeshConfig()
    outbound = (data.get("outboundTrafficPolicy") or {}).get("mode", "ALLOW_ANY")
    providers = frozenset(str(p.get("name")) for p in data.get("extensionProviders") or [])
    return MeshConfig(
        root_namespace=str(data.get("rootNamespace") or DEFAULT_ROOT_NAMESPACE),
        trust_domain=str(data.get("trustDomain") or DEFAULT_TRUST_DOMAIN),
        trust_domain_aliases=tuple(str(a) for a in data.get("trustDomainAliases") or ()),
        outbound_policy=str(outbound),
        enable_auto_mtls=bool(data.get("enableAutoMtls", True)),
        extension_providers=providers,
        enable_prometheus_merge=bool(data.get("enablePrometheusMerge", True)),
    )


def _container_env(obj: Mapping[str, Any], var: str) -> str | None:
    spec = _template_of(dict(obj)).get("spec") or {}
    for container in spec.get("containers") or []:
        for env in container.get("env") or []:
            if env.get("name") == var:
                return str(env.get("value", ""))
    return None


class MeshView:
    """An immutable index over a set of manifests; build once, query many times."""

    def __init__(self) -> None:
        self.namespaces: dict[str, Obj] = {}
        self.workloads: dict[str, Workload] = {}
        self.services: dict[str, Obj] = {}
        self.workloads_by_ns: dict[str, list[Workload]] = defaultdict(list)
        self.by_kind: dict[str, list[Obj]] = defaultdict(list)
        self.by_kind_ns: dict[tuple[str, str], list[Obj]] = defaultdict(list)
        self.mesh = MeshConfig()
        self.linkerd = LinkerdConfig()
        self.istio_revisions: dict[str, Obj] = {}
        self.revision_tags: dict[str, str] = {}
        self.native_sidecars = False
        self.ztunnel_installed = False
        self.ztunnel_nodes: frozenset[str] | None = None
        self.restarted: frozenset[str] = frozenset()
        self.cache: dict[tuple[Any, ...], Any] = {}

    # ----- construction -------------------------------------------------------------------
    @classmethod
    def build(cls, objects: Iterable[Mapping[str, Any]], *, restarted: Iterable[str] = ()) -> MeshView:
        """Index ``objects``. ``restarted`` names workloads (``ns/name``) whose pods are predicted from
        their template (as after a rollout restart) instead of read from the pods in ``objects``."""
        view = cls()
        view.restarted = frozenset(restarted)
        pods: list[Obj] = []
        for raw in objects:
            obj = dict(raw)
            kind = str(obj.get("kind", ""))
            view.by_kind[kind].append(obj)
            view.by_kind_ns[(kind, namespace_of(obj))].append(obj)
            view._index_one(kind, obj, pods)
        view._attach_pods(pods)
        view._index_control_planes()
        return view

    def _index_one(self, kind: str, obj: Obj, pods: list[Obj]) -> None:
        if kind == "Namespace":
            self.namespaces[name_of(obj)] = obj
        elif kind == "Service" and not api_group(obj):
            self.services[f"{namespace_of(obj)}/{name_of(obj)}"] = obj
        elif kind == "Pod":
            pods.append(obj)
        elif kind in WORKLOAD_KINDS and not self._owned_by_workload(obj):
            spec = obj.get("spec") or {}
            template = _template_of(obj)
            sel = spec.get("selector") or {"matchLabels": labels(template)}
            wl = Workload(kind, namespace_of(obj), name_of(obj), obj, template, selector_from_object(sel))
            self.workloads[wl.key] = wl

    @staticmethod
    def _owned_by_workload(obj: Obj) -> bool:
        """ReplicaSets of a Deployment and Jobs of a CronJob are indexed through their owner."""
        owners = meta(obj).get("ownerReferences") or []
        return any(o.get("kind") in ("Deployment", "CronJob") for o in owners)

    def _attach_pods(self, pods: list[Obj]) -> None:
        by_ns = self.workloads_by_ns
        bare_pods: list[Workload] = []
        for wl in self.workloads.values():
            by_ns[wl.namespace].append(wl)
        for pod in pods:
            owner = self._owner_of(pod, by_ns[namespace_of(pod)])
            if owner is None:
                bare = Workload("Pod", namespace_of(pod), name_of(pod), pod, pod, Selector(), [pod])
                if bare.key not in self.workloads:
                    self.workloads[bare.key] = bare
                    bare_pods.append(bare)
            else:
                owner.pods.append(pod)
        for bare in bare_pods:
            by_ns[bare.namespace].append(bare)

    def _owner_of(self, pod: Obj, candidates: list[Workload]) -> Workload | None:
        """The workload running ``pod``: through its ownerReferences (a Deployment's ReplicaSet is
        ``<deployment>-<hash>``), else the first controller in the namespace whose selector matches."""
        for owner in meta(pod).get("ownerReferences") or []:
            name = str(owner.get("name", ""))
            if owner.get("kind") == "ReplicaSet":
                name = name.rpartition("-")[0] or name
            found = self.workloads.get(f"{namespace_of(pod)}/{name}")
            if found is not None and found.kind != "Pod":
                return found
        pod_labels = labels(pod)
        return next((w for w in candidates if w.kind != "Pod" and w.selector.matches(pod_labels)), None)

    def _index_control_planes(self) -> None:
        for dep in self.by_kind.get("Deployment", []):
            lab = labels(dep)
            if lab.get("app") == "istiod" or name_of(dep).startswith("istiod"):
                rev = lab.get("istio.io/rev") or "default"
                self.istio_revisions[rev] = dep
                if (_container_env(dep, "ENABLE_NATIVE_SIDECARS") or "").lower() == "true":
                    self.native_sidecars = True
        for mwc in self.by_kind.get("MutatingWebhookConfiguration", []):
            lab = labels(mwc)
            if "istio.io/tag" in lab and "istio.io/rev" in lab:
                self.revision_tags[lab["istio.io/tag"]] = lab["istio.io/rev"]
        self._index_mesh_config()
        self._index_ztunnel()
        self._index_linkerd()

    def _index_mesh_config(self) -> None:
        namespaces = {namespace_of(d) for d in self.istio_revisions.values()} or {DEFAULT_ROOT_NAMESPACE}
        for cm in self.by_kind.get("ConfigMap", []):
            if name_of(cm) == "istio" and namespace_of(cm) in namespaces:
                text = (cm.get("data") or {}).get("mesh")
                if text:
                    self.mesh = _parse_mesh_config(str(text))
                return

    def _index_ztunnel(self) -> None:
        for ds in self.by_kind.get("DaemonSet", []):
            if name_of(ds) == "ztunnel" or labels(ds).get("app") == "ztunnel":
                self.ztunnel_installed = True
                wl = self.workloads.get(f"{namespace_of(ds)}/{name_of(ds)}")
                if wl is not None and wl.pods:
                    self.ztunnel_nodes = frozenset(str((p.get("spec") or {}).get("nodeName", "")) for p in wl.pods)

    def _index_linkerd(self) -> None:
        injector = next((d for d in self.by_kind.get("Deployment", []) if name_of(d) == "linkerd-proxy-injector"), None)
        if injector is None:
            return
        ns = namespace_of(injector)
        values: Mapping[str, Any] = {}
        for cm in self.by_kind_ns.get(("ConfigMap", ns), []):
            if name_of(cm) == "linkerd-config":
                loaded = yaml.safe_load(str((cm.get("data") or {}).get("values") or "")) or {}
                values = loaded if isinstance(loaded, dict) else {}
        proxy = values.get("proxy") or {}
        networks = str(values.get("clusterNetworks") or ",".join(DEFAULT_CLUSTER_NETWORKS))
        self.linkerd = LinkerdConfig(
            installed=True,
            namespace=ns,
            trust_domain=str(values.get("identityTrustDomain") or DEFAULT_TRUST_DOMAIN),
            default_policy=str(
                proxy.get("defaultInboundPolicy")
                or (values.get("policyController") or {}).get("defaultAllowPolicy")
                or "all-unauthenticated"
            ),
            cluster_networks=tuple(n.strip() for n in networks.split(",") if n.strip()),
        )

    # ----- queries ------------------------------------------------------------------------
    def objects(self, kind: str, namespace: str | None = None, group: str | None = None) -> list[Obj]:
        """Objects of ``kind`` (optionally in one namespace and one API group)."""
        found = self.by_kind.get(kind, []) if namespace is None else self.by_kind_ns.get((kind, namespace), [])
        if group is None or not found:
            return found
        key = ("objects", kind, namespace, group)
        in_group: list[Obj] | None = self.cache.get(key)
        if in_group is None:
            in_group = self.cache[key] = [o for o in found if api_group(o) == group]
        return in_group

    def namespace_labels(self, ns: str) -> dict[str, str]:
        """The namespace's labels (one shared dict per namespace: do not modify it)."""
        return self._namespace_meta(ns)[0]

    def namespace_annotations(self, ns: str) -> dict[str, str]:
        """The namespace's annotations (one shared dict per namespace: do not modify it)."""
        return self._namespace_meta(ns)[1]

    def _namespace_meta(self, ns: str) -> tuple[dict[str, str], dict[str, str]]:
        key = ("namespace-meta", ns)
        found: tuple[dict[str, str], dict[str, str]] | None = self.cache.get(key)
        if found is None:
            obj = self.namespaces.get(ns)
            found = self.cache[key] = (labels(obj), annotations_of(obj)) if obj else ({}, {})
        return found

    def workload(self, ns: str, name: str) -> Workload | None:
        return self.workloads.get(f"{ns}/{name}")

    def workloads_for_service(self, svc: Obj) -> list[Workload]:
        """Workloads whose pod template the Service's selector matches (same namespace), in index order."""
        key = ("svc-backends", namespace_of(svc), name_of(svc))
        found: list[Workload] | None = self.cache.get(key)
        if found is None:
            sel = (svc.get("spec") or {}).get("selector") or {}
            want = {str(k): str(v) for k, v in sel.items()}
            found = self.cache[key] = self._labelled(namespace_of(svc), want) if want else []
        return found

    def _labelled(self, ns: str, want: Mapping[str, str]) -> list[Workload]:
        """Workloads of ``ns`` whose template carries every label of ``want``: the workloads indexed under
        one of those labels, filtered by the others (the index keeps ``workloads_by_ns`` order)."""
        index = self._label_index()
        candidates = min((index.get((ns, k, v), []) for k, v in want.items()), key=len)
        return [w for w in candidates if want.items() <= w.template_labels.items()]

    def _label_index(self) -> dict[tuple[str, str, str], list[Workload]]:
        """``(namespace, label, value)`` -> the workloads whose template has that label, built on first use."""
        key = ("label-index",)
        index: dict[tuple[str, str, str], list[Workload]] | None = self.cache.get(key)
        if index is None:
            index = self.cache[key] = defaultdict(list)
            for ns, workloads in self.workloads_by_ns.items():
                for wl in workloads:
                    for label, value in wl.template_labels.items():
                        index[(ns, label, value)].append(wl)
        return index
