"""Well-known names (labels, annotations, namespaces, containers) and small manifest accessors.

Every label and annotation the mesh physics reads or writes is named here once, with the product
that defines it, so the rules elsewhere read like the documentation they come from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Obj = dict[str, Any]

# Istio (https://istio.io/latest/docs/setup/additional-setup/sidecar-injection/)
ISTIO_NAMESPACE = "istio-system"
ISTIO_INJECTION_LABEL = "istio-injection"
ISTIO_REV_LABEL = "istio.io/rev"
ISTIO_INJECT = "sidecar.istio.io/inject"  # pod label (preferred) or annotation (legacy)
ISTIO_STATUS_ANNOTATION = "sidecar.istio.io/status"
ISTIO_REWRITE_PROBES = "sidecar.istio.io/rewriteAppHTTPProbers"
ISTIO_TEMPLATES_ANNOTATION = "inject.istio.io/templates"
ISTIO_TLS_MODE_LABEL = "security.istio.io/tlsMode"
ISTIO_DRY_RUN_ANNOTATION = "istio.io/dry-run"
ISTIO_PROXY = "istio-proxy"
ISTIO_INIT = "istio-init"
ISTIO_PROXY_IMAGE = "docker.io/istio/proxyv2"
# Ambient (https://istio.io/latest/docs/ambient/usage/add-workloads/)
DATAPLANE_MODE_LABEL = "istio.io/dataplane-mode"
AMBIENT_REDIRECTION = "ambient.istio.io/redirection"
USE_WAYPOINT_LABEL = "istio.io/use-waypoint"
# Linkerd (https://linkerd.io/2/features/proxy-injection/)
LINKERD_NAMESPACE = "linkerd"
LINKERD_INJECT = "linkerd.io/inject"
LINKERD_PROXY = "linkerd-proxy"
LINKERD_INIT = "linkerd-init"
LINKERD_NATIVE_SIDECAR = "config.alpha.linkerd.io/proxy-enable-native-sidecar"
LINKERD_DEFAULT_POLICY = "config.linkerd.io/default-inbound-policy"
# SPIRE (https://istio.io/latest/docs/ops/integrations/spire/)
SPIRE_NAMESPACES = ("spire-server", "spire", "spire-system")
SPIFFE_CSI_DRIVER = "csi.spiffe.io"
# The sandbox's own knob: an init container that needs the network before the app starts
# (e.g. one that fetches secrets); value "true" (every init container) or a comma list of names.
INIT_NEEDS_NETWORK = "sandbox.runbook.dev/init-needs-network"

SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})


def meta(obj: Mapping[str, Any]) -> Obj:
    return dict(obj.get("metadata") or {})


def name_of(obj: Mapping[str, Any]) -> str:
    return str(meta(obj).get("name", ""))


def namespace_of(obj: Mapping[str, Any]) -> str:
    return str(meta(obj).get("namespace") or "")


def labels(obj: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in (meta(obj or {}).get("labels") or {}).items()}


def annotations_of(obj: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in (meta(obj or {}).get("annotations") or {}).items()}


def spec(obj: Mapping[str, Any] | None) -> Obj:
    return dict((obj or {}).get("spec") or {})


def containers(pod: Mapping[str, Any]) -> list[Obj]:
    return list(spec(pod).get("containers") or [])


def init_containers(pod: Mapping[str, Any]) -> list[Obj]:
    return list(spec(pod).get("initContainers") or [])


def container_env(container: Mapping[str, Any]) -> dict[str, str]:
    return {str(e.get("name")): str(e.get("value", "")) for e in container.get("env") or [] if "name" in e}


def has_container(pod: Mapping[str, Any], name: str) -> bool:
    return any(c.get("name") == name for c in containers(pod) + init_containers(pod))


def is_native_sidecar(container: Mapping[str, Any]) -> bool:
    return container.get("restartPolicy") == "Always"


def pod_ip(pod: Mapping[str, Any]) -> str:
    return str((pod.get("status") or {}).get("podIP") or "")


def node_of(pod: Mapping[str, Any]) -> str:
    return str(spec(pod).get("nodeName") or "")


def service_account(pod: Mapping[str, Any]) -> str:
    return str(spec(pod).get("serviceAccountName") or spec(pod).get("serviceAccount") or "default")


def is_running(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and not meta(pod).get("deletionTimestamp")


def ready_replicas(obj: Mapping[str, Any] | None) -> int:
    return int(((obj or {}).get("status") or {}).get("readyReplicas") or 0)


def truthy(value: str | None) -> bool:
    return str(value or "").strip().lower() in ("true", "enabled", "yes", "1")


def first(items: Iterable[Obj]) -> Obj | None:
    return next(iter(items), None)


def workload_name(pod: Mapping[str, Any]) -> str:
    """The workload a pod belongs to, as Istio's telemetry names it (Deployment, not ReplicaSet)."""
    owners = meta(pod).get("ownerReferences") or []
    owner = next((o for o in owners if o.get("controller")), owners[0] if owners else None)
    if owner is None:
        return labels(pod).get("app") or name_of(pod)
    name = str(owner.get("name", ""))
    if owner.get("kind") == "ReplicaSet":
        pth = labels(pod).get("pod-template-hash")
        if pth and name.endswith(f"-{pth}"):
            return name[: -len(pth) - 1]
        return name.rsplit("-", 1)[0] if "-" in name else name
    if owner.get("kind") == "Job" and labels(pod).get("batch.kubernetes.io/cronjob-name"):
        return labels(pod)["batch.kubernetes.io/cronjob-name"]
    return name
