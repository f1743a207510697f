"""The live platform as a ``MeshView``: the objects mesh semantics needs, read from the cluster once.

Checks that ask mesh questions (is this workload meshed, what mode does this port accept, what
would this flow do) build the view here and then use ``runbook_engine.mesh`` on it; they never
re-implement the rules. ConfigMaps are read only from the control planes' namespaces (Istio's mesh
config, Linkerd's values), not from every namespace.
"""

from __future__ import annotations

from runbook_engine.kube.cluster import Cluster, Obj
from runbook_engine.mesh import MeshView

#: (apiVersion, kind) of everything the mesh view indexes besides ConfigMaps.
VIEW_KINDS: tuple[tuple[str, str], ...] = (
    ("v1", "Namespace"),
    ("v1", "Pod"),
    ("v1", "Service"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
    ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"),
    ("security.istio.io/v1", "PeerAuthentication"),
    ("security.istio.io/v1", "AuthorizationPolicy"),
    ("networking.istio.io/v1", "DestinationRule"),
    ("networking.istio.io/v1", "ServiceEntry"),
    ("networking.istio.io/v1", "Sidecar"),
    ("gateway.networking.k8s.io/v1", "Gateway"),
    ("policy.linkerd.io/v1beta3", "Server"),
    ("policy.linkerd.io/v1beta1", "ServerAuthorization"),
    ("policy.linkerd.io/v1beta1", "HTTPRoute"),
    ("policy.linkerd.io/v1alpha1", "AuthorizationPolicy"),
    ("policy.linkerd.io/v1alpha1", "MeshTLSAuthentication"),
    ("policy.linkerd.io/v1alpha1", "NetworkAuthentication"),
)

#: Deployments whose namespace holds a control plane's configuration.
CONTROL_PLANE_DEPLOYMENTS = ("istiod", "linkerd-proxy-injector", "linkerd-identity")
ISTIO_NAMESPACE = "istio-system"


def control_plane_namespaces(deployments: list[Obj]) -> set[str]:
    """Namespaces of istiod (any revision) and the Linkerd control plane, plus ``istio-system``."""
    found = {ISTIO_NAMESPACE}
    for dep in deployments:
        name = str(dep["metadata"].get("name", ""))
        if name in CONTROL_PLANE_DEPLOYMENTS or name.startswith("istiod-"):
            found.add(str(dep["metadata"].get("namespace", "")))
    return found


def live_objects(cluster: Cluster) -> list[Obj]:
    """Every object the mesh view needs, one list call per kind."""
    objects: list[Obj] = []
    for api_version, kind in VIEW_KINDS:
        objects.extend(_with_kind(cluster.list(api_version, kind), api_version, kind))
    deployments = [o for o in objects if o.get("kind") == "Deployment"]
    for ns in sorted(control_plane_namespaces(deployments)):
        objects.extend(_with_kind(cluster.list("v1", "ConfigMap", ns), "v1", "ConfigMap"))
    return objects


def _with_kind(items: list[Obj], api_version: str, kind: str) -> list[Obj]:
    """List items as full manifests (a list response may omit apiVersion and kind on items)."""
    return [{**item, "apiVersion": item.get("apiVersion") or api_version, "kind": item.get("kind") or kind}
            for item in items]


def live_view(cluster: Cluster) -> MeshView:
    """The mesh view of the cluster as it is now."""
    return MeshView.build(live_objects(cluster))
