"""Sidecar injection at pod creation: the Istio and Linkerd mutating webhooks.

Injection happens only when a pod is created (a label on a namespace changes nothing until the
pods are recreated), exactly as with the real webhooks. Istio's rules follow
https://istio.io/latest/docs/setup/additional-setup/sidecar-injection/#controlling-the-injection-policy:
the namespace label ``istio-injection=enabled`` or ``istio.io/rev=<rev>`` selects pods; the pod
label ``sidecar.istio.io/inject`` overrides (``true`` opts a pod in even in an unlabelled
namespace, ``false`` opts out), and the legacy pod annotation ``sidecar.istio.io/inject: "false"``
still opts out. Linkerd injects when ``linkerd.io/inject: enabled`` is on the namespace or the pod
(``disabled`` on the pod opts out) — https://linkerd.io/2/features/proxy-injection/.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from runbook_engine.errors import ClusterError
from runbook_engine.sandbox.physics import objects as o
from runbook_engine.sandbox.physics.control_plane import ControlPlane
from runbook_engine.sandbox.store import Store

ISTIO_VERSION = "1.24.2"
LINKERD_VERSION = "edge-24.11.8"


@dataclass(frozen=True)
class IstioSelection:
    """Whether the Istio webhook selects a pod, for which revision, and why."""

    selected: bool
    revision: str
    reason: str


def istio_selection(pod: o.Obj, namespace: o.Obj | None, cp: ControlPlane) -> IstioSelection:
    ns_labels, pod_labels = o.labels(namespace), o.labels(pod)
    if o.namespace_of(pod) in o.SYSTEM_NAMESPACES or o.spec(pod).get("hostNetwork"):
        return IstioSelection(False, "", "system namespace or hostNetwork pod")
    if pod_labels.get(o.ISTIO_INJECT) == "false" or o.annotations_of(pod).get(o.ISTIO_INJECT) == "false":
        return IstioSelection(False, "", "pod opted out with sidecar.istio.io/inject=false")
    if ns_labels.get(o.ISTIO_INJECTION_LABEL) == "disabled":
        return IstioSelection(False, "", "namespace has istio-injection=disabled")
    revision = pod_labels.get(o.ISTIO_REV_LABEL) or ns_labels.get(o.ISTIO_REV_LABEL) or "default"
    if ns_labels.get(o.ISTIO_INJECTION_LABEL) == "enabled":
        revision = "default"
    wanted = (
        ns_labels.get(o.ISTIO_INJECTION_LABEL) == "enabled"
        or o.ISTIO_REV_LABEL in ns_labels
        or o.ISTIO_REV_LABEL in pod_labels
        or pod_labels.get(o.ISTIO_INJECT) == "true"
    )
    if not wanted:
        return IstioSelection(False, "", "namespace not labelled for injection")
    if cp.injector_webhook() is None or (cp.istiod(revision) is None and revision != "default"):
        return IstioSelection(False, revision, f"no injector webhook for revision {revision}")
    return IstioSelection(True, revision, "selected by the sidecar injector")


def linkerd_selected(pod: o.Obj, namespace: o.Obj | None) -> bool:
    pod_value = o.annotations_of(pod).get(o.LINKERD_INJECT)
    if pod_value is not None:
        return pod_value == "enabled"
    return o.annotations_of(namespace).get(o.LINKERD_INJECT) == "enabled"


class InjectionWebhook:
    """A ``Store.admission`` hook playing the Istio and Linkerd injectors on Pod create."""

    def __init__(self, control_plane: ControlPlane) -> None:
        self.cp = control_plane

    def __call__(self, store: Store, obj: o.Obj) -> None:
        if obj.get("kind") != "Pod" or obj.get("apiVersion") != "v1":
            return
        if o.has_container(obj, o.ISTIO_PROXY) or o.has_container(obj, o.LINKERD_PROXY):
            return
        namespace = store.peek("v1", "Namespace", "", o.namespace_of(obj))
        selection = istio_selection(obj, namespace, self.cp)
        if selection.selected:
            self._inject_istio(obj, selection.revision)
        elif linkerd_selected(obj, namespace) and self.cp.linkerd_ready():
            # linkerd-proxy-injector's webhook is fail-open: without a ready control plane the
            # pod is admitted unmeshed.
            inject_linkerd(obj, namespace)

    def _inject_istio(self, pod: o.Obj, revision: str) -> None:
        if not self.cp.istiod_ready(revision):
            if self.cp.injector_fails_closed():
                raise ClusterError(
                    'Internal error occurred: failed calling webhook "namespace.sidecar-injector.istio.io": '
                    'failed to call webhook: Post "https://istiod.istio-system.svc:443/inject?timeout=10s": '
                    'no endpoints available for service "istiod"',
                    status=500,
                    reason="InternalError",
                )
            return
        istiod = self.cp.istiod(revision)
        native = istiod is not None and istiod.native_sidecars
        spire = self.cp.spire_template_default() or "spire" in o.annotations_of(pod).get(
            o.ISTIO_TEMPLATES_ANNOTATION, ""
        )
        inject_istio(pod, revision, native=native, spire=spire)


def _proxy_container(name: str, image: str, args: list[str], ports: list[dict[str, Any]]) -> o.Obj:
    return {
        "name": name,
        "image": image,
        "args": args,
        "ports": ports,
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
    }


def inject_istio(pod: o.Obj, revision: str, *, native: bool, spire: bool) -> None:
    """Add ``istio-init`` and ``istio-proxy`` the way Istio's injection template does."""
    spec = pod.setdefault("spec", {})
    image = f"{o.ISTIO_PROXY_IMAGE}:{ISTIO_VERSION}"
    init = {
        "name": o.ISTIO_INIT,
        "image": image,
        "args": ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*"],
    }
    proxy = _proxy_container(
        o.ISTIO_PROXY,
        image,
        ["proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local"],
        [{"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}],
    )
    proxy["readinessProbe"] = {"httpGet": {"path": "/healthz/ready", "port": 15021}, "periodSeconds": 15}
    probers = _rewrite_probes(pod)
    proxy["env"] = [{"name": "ISTIO_META_WORKLOAD_NAME", "value": o.workload_name(pod)}]
    if probers:
        proxy["env"].append({"name": "ISTIO_KUBE_APP_PROBERS", "value": json.dumps(probers, sort_keys=True)})
    volumes = ["istio-envoy", "istio-data", "istio-podinfo", "istio-token", "istiod-ca-cert"]
    spec.setdefault("volumes", []).extend({"name": v, "emptyDir": {}} for v in volumes)
    if spire:
        spec["volumes"].append(
            {"name": "workload-socket", "csi": {"driver": o.SPIFFE_CSI_DRIVER, "readOnly": True}}
        )
        proxy["volumeMounts"] = [{"name": "workload-socket", "mountPath": "/run/secrets/workload-spiffe-uds"}]
    inits = spec.setdefault("initContainers", [])
    if native:
        proxy["restartPolicy"] = "Always"
        inits[:0] = [init, proxy]
    else:
        inits.insert(0, init)
        spec.setdefault("containers", []).append(proxy)
    _mark_istio(pod, revision, spire)


def _mark_istio(pod: o.Obj, revision: str, spire: bool) -> None:
    meta = pod.setdefault("metadata", {})
    lbl = meta.setdefault("labels", {})
    lbl[o.ISTIO_TLS_MODE_LABEL] = "istio"
    lbl.setdefault("service.istio.io/canonical-name", o.workload_name(pod))
    lbl.setdefault("service.istio.io/canonical-revision", lbl.get("version", "latest"))
    status = {"initContainers": [o.ISTIO_INIT], "containers": [o.ISTIO_PROXY], "revision": revision}
    ann = meta.setdefault("annotations", {})
    ann[o.ISTIO_STATUS_ANNOTATION] = json.dumps(status, sort_keys=True)
    if ann.get("prometheus.istio.io/merge-metrics", "").lower() != "false":
        # metrics merging: istio-agent serves the app's metrics with its own on 15020, outside the
        # inbound redirection (https://istio.io/latest/docs/ops/integrations/prometheus/)
        ann.update({"prometheus.io/scrape": "true", "prometheus.io/port": "15020",
                    "prometheus.io/path": "/stats/prometheus"})
    if spire:
        ann.setdefault(o.ISTIO_TEMPLATES_ANNOTATION, "sidecar,spire")


def _rewrite_probes(pod: o.Obj) -> dict[str, Any]:
    """Point HTTP, TCP and gRPC probes at the agent's port 15020, as Istio does unless told not to.

    https://istio.io/latest/docs/ops/configuration/mesh/app-health-check/ : with the rewrite, the
    kubelet's plaintext probe reaches pilot-agent, which calls the app locally (or checks its TCP
    port without the redirection), so probes keep working under STRICT mTLS.
    """
    if o.annotations_of(pod).get(o.ISTIO_REWRITE_PROBES) == "false":
        return {}
    probers: dict[str, Any] = {}
    for container in pod.get("spec", {}).get("containers") or []:
        for kind, short in (
            ("livenessProbe", "livez"),
            ("readinessProbe", "readyz"),
            ("startupProbe", "startupz"),
        ):
            probe = container.get(kind) or {}
            handler = next((h for h in ("httpGet", "tcpSocket", "grpc") if h in probe), None)
            if handler is not None:
                path = f"/app-health/{container['name']}/{short}"
                probers[path] = {handler: probe.pop(handler)}
                probe["httpGet"] = {"path": path, "port": 15020, "scheme": "HTTP"}
    return probers


def inject_linkerd(pod: o.Obj, namespace: o.Obj | None = None) -> None:
    """Add ``linkerd-init`` and ``linkerd-proxy`` (a native sidecar when the pod asks for one).

    The namespace's ``config.linkerd.io/*`` annotations are copied onto the pod, as the proxy
    injector does: the proxy reads its configuration (e.g. the default inbound policy) when it is
    injected, so changing them takes a restart.
    """
    spec = pod.setdefault("spec", {})
    image = f"cr.l5d.io/linkerd/proxy:{LINKERD_VERSION}"
    init = {
        "name": o.LINKERD_INIT,
        "image": "cr.l5d.io/linkerd/proxy-init:v2.4.1",
        "args": ["--incoming-proxy-port", "4143", "--outgoing-proxy-port", "4140", "--proxy-uid", "2102"],
    }
    proxy = _proxy_container(
        o.LINKERD_PROXY,
        image,
        [],
        [{"containerPort": 4143, "name": "linkerd-proxy"}, {"containerPort": 4191, "name": "linkerd-admin"}],
    )
    proxy["readinessProbe"] = {"httpGet": {"path": "/ready", "port": 4191}}
    inits = spec.setdefault("initContainers", [])
    if o.truthy(o.annotations_of(pod).get(o.LINKERD_NATIVE_SIDECAR)):
        proxy["restartPolicy"] = "Always"
        inits[:0] = [init, proxy]
    else:
        inits.insert(0, init)
        spec.setdefault("containers", []).insert(0, proxy)
    meta = pod.setdefault("metadata", {})
    meta.setdefault("labels", {})["linkerd.io/control-plane-ns"] = o.LINKERD_NAMESPACE
    ann = meta.setdefault("annotations", {})
    for key, value in o.annotations_of(namespace).items():
        if key.startswith("config.linkerd.io/"):
            ann.setdefault(key, value)
    ann["linkerd.io/proxy-version"] = LINKERD_VERSION
    ann["linkerd.io/identity-mode"] = "default"
