"""Shorthand manifests for mesh case files, expanded into the plain objects a cluster would hold.

A case object is either a full manifest (it has ``kind``) or one of these shorthands:
``namespace``, ``deploy``, ``service``, ``istiod``, ``ztunnel``, ``linkerd``, ``pa`` (PeerAuthentication),
``ap`` (Istio AuthorizationPolicy), ``dr`` (DestinationRule), ``se`` (ServiceEntry), ``sidecar``,
``webhook``. Keys are documented beside each builder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

Obj = dict[str, Any]
ISTIO_SECURITY = "security.istio.io/v1"
ISTIO_NETWORKING = "networking.istio.io/v1"


def _split(ref: str) -> tuple[str, str]:
    ns, _, name = ref.partition("/")
    return ns, name


def _meta(ref: str, spec: Obj, **extra: Any) -> Obj:
    ns, name = _split(ref)
    meta: Obj = {"name": name, "namespace": ns, **extra}
    if spec.get("created"):
        meta["creationTimestamp"] = spec["created"]
    if spec.get("annotations") is not None and "annotations" not in meta:
        meta["annotations"] = spec["annotations"]
    if spec.get("labels") is not None and "labels" not in meta:
        meta["labels"] = spec["labels"]
    return meta


def _proxy(containers: list[Obj], init: list[Obj], proxy: str) -> None:
    if proxy == "container":
        containers.append({"name": "istio-proxy", "image": "proxyv2"})
    elif proxy == "native":
        init.append({"name": "istio-proxy", "image": "proxyv2", "restartPolicy": "Always"})
    elif proxy == "linkerd":
        containers.append({"name": "linkerd-proxy", "image": "proxy"})


def _pod_spec(spec: Obj, proxy: str) -> Obj:
    ports = [{"containerPort": int(p), "name": f"p{p}"} for p in spec.get("ports", [8080])]
    app: Obj = {"name": "app", "image": "app", "ports": ports}
    for kind, probe in (spec.get("probes") or {}).items():
        app[kind] = probe
    containers, init = [app], []
    _proxy(containers, init, proxy)
    pod_spec: Obj = {"serviceAccountName": spec.get("sa", "default"), "containers": containers}
    if init:
        pod_spec["initContainers"] = init
    return pod_spec


def deploy(spec: Obj) -> Iterator[Obj]:
    """``deploy: ns/name``; ``sa``, ``labels``/``annotations`` (template), ``proxy`` (none|container|
    native|linkerd), ``ports``, ``probes``, ``pod`` (run one pod: ``proxy``, ``labels``, ``ip``, ``node``)."""
    ns, name = _split(spec["deploy"])
    tmpl_labels = {"app": name, **(spec.get("labels") or {})}
    template = {
        "metadata": {"labels": tmpl_labels, "annotations": spec.get("annotations") or {}},
        "spec": _pod_spec(spec, spec.get("proxy", "none")),
    }
    yield {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": {"matchLabels": {"app": name}}, "template": template},
    }
    pod = spec.get("pod")
    if pod is not None:
        pod = pod or {}
        yield {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{name}-0",
                "namespace": ns,
                "labels": {**tmpl_labels, **(pod.get("labels") or {})},
                "annotations": {**(spec.get("annotations") or {}), **(pod.get("annotations") or {})},
            },
            "spec": {**_pod_spec(spec, pod.get("proxy", spec.get("proxy", "none"))), "nodeName": pod.get("node", "n1")},
            "status": {"podIP": pod.get("ip", "10.0.0.9")},
        }


def service(spec: Obj) -> Iterator[Obj]:
    """``service: ns/name``; ``port``, ``targetPort``, ``portName`` (default http), ``appProtocol``,
    ``selector`` (default ``app: name``), ``labels``."""
    _, name = _split(spec["service"])
    port: Obj = {"name": spec.get("portName", "http"), "port": spec.get("port", 80)}
    port["targetPort"] = spec.get("targetPort", 8080)
    if spec.get("appProtocol"):
        port["appProtocol"] = spec["appProtocol"]
    yield {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(spec["service"], spec),
        "spec": {"selector": spec.get("selector", {"app": name}), "ports": [port]},
    }


def namespace(spec: Obj) -> Iterator[Obj]:
    """``namespace: name``; ``labels``, ``annotations``."""
    meta = {"name": spec["namespace"], "labels": spec.get("labels") or {}, "annotations": spec.get("annotations") or {}}
    yield {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def istiod(spec: Obj) -> Iterator[Obj]:
    """``istiod: <revision>`` (``default`` for no revision label); ``native`` (ENABLE_NATIVE_SIDECARS);
    ``mesh`` (mesh config dict, written to ConfigMap istio-system/istio)."""
    rev = spec["istiod"]
    lab = {"app": "istiod"} if rev == "default" else {"app": "istiod", "istio.io/rev": rev}
    env = [{"name": "ENABLE_NATIVE_SIDECARS", "value": "true"}] if spec.get("native") else []
    name = "istiod" if rev == "default" else f"istiod-{rev}"
    container = {"name": "discovery", "image": "pilot", "env": env}
    yield {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "istio-system", "labels": lab},
        "spec": {
            "selector": {"matchLabels": lab},
            "template": {"metadata": {"labels": lab}, "spec": {"containers": [container]}},
        },
    }
    if spec.get("mesh") is not None:
        data = {"mesh": yaml.safe_dump(spec["mesh"])}
        yield {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "istio", "namespace": "istio-system"},
            "data": data,
        }


def ztunnel(spec: Obj) -> Iterator[Obj]:
    """``ztunnel: true``: the ztunnel DaemonSet in istio-system."""
    lab = {"app": "ztunnel"}
    template = {"metadata": {"labels": lab}, "spec": {"containers": [{"name": "istio-proxy", "image": "ztunnel"}]}}
    yield {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "ztunnel", "namespace": "istio-system", "labels": lab},
        "spec": {"selector": {"matchLabels": lab}, "template": template},
    }


def linkerd(spec: Obj) -> Iterator[Obj]:
    """``linkerd: {values}``: the proxy injector and ConfigMap linkerd/linkerd-config with ``values``."""
    lab = {"linkerd.io/control-plane-component": "proxy-injector"}
    template = {
        "metadata": {"labels": lab},
        "spec": {"containers": [{"name": "proxy-injector", "image": "controller"}]},
    }
    yield {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "linkerd-proxy-injector", "namespace": "linkerd", "labels": lab},
        "spec": {"selector": {"matchLabels": lab}, "template": template},
    }
    values = yaml.safe_dump(spec["linkerd"] or {})
    yield {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "linkerd-config", "namespace": "linkerd"},
        "data": {"values": values},
    }


def peer_authentication(spec: Obj) -> Iterator[Obj]:
    """``pa: ns/name``; ``mode``, ``selector`` (matchLabels), ``portLevel`` {port: mode}, ``created``."""
    body: Obj = {}
    if spec.get("mode"):
        body["mtls"] = {"mode": spec["mode"]}
    if spec.get("selector"):
        body["selector"] = {"matchLabels": spec["selector"]}
    if spec.get("portLevel"):
        body["portLevelMtls"] = {int(p): {"mode": m} for p, m in spec["portLevel"].items()}
    yield {
        "apiVersion": ISTIO_SECURITY,
        "kind": "PeerAuthentication",
        "metadata": _meta(spec["pa"], spec),
        "spec": body,
    }


def _raw(api_version: str, kind: str, key: str) -> Callable[[Obj], Iterator[Obj]]:
    def build(spec: Obj) -> Iterator[Obj]:
        meta = _meta(spec[key], spec)
        if spec.get("dryRun"):
            meta["annotations"] = {**(meta.get("annotations") or {}), "istio.io/dry-run": "true"}
        yield {"apiVersion": api_version, "kind": kind, "metadata": meta, "spec": spec.get("spec") or {}}

    return build


def webhook(spec: Obj) -> Iterator[Obj]:
    """``webhook: name``; ``service`` ns/name, ``port``."""
    ns, name = _split(spec["service"])
    hook = {
        "name": f"{spec['webhook']}.example.com",
        "clientConfig": {"service": {"namespace": ns, "name": name, "port": spec.get("port", 443)}},
    }
    yield {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": spec["webhook"]},
        "webhooks": [hook],
    }


BUILDERS: dict[str, Callable[[Obj], Iterator[Obj]]] = {
    "namespace": namespace,
    "deploy": deploy,
    "service": service,
    "istiod": istiod,
    "ztunnel": ztunnel,
    "linkerd": linkerd,
    "pa": peer_authentication,
    "ap": _raw(ISTIO_SECURITY, "AuthorizationPolicy", "ap"),
    "dr": _raw(ISTIO_NETWORKING, "DestinationRule", "dr"),
    "se": _raw(ISTIO_NETWORKING, "ServiceEntry", "se"),
    "sidecar": _raw(ISTIO_NETWORKING, "Sidecar", "sidecar"),
    "server": _raw("policy.linkerd.io/v1beta3", "Server", "server"),
    "saz": _raw("policy.linkerd.io/v1beta1", "ServerAuthorization", "saz"),
    "lap": _raw("policy.linkerd.io/v1alpha1", "AuthorizationPolicy", "lap"),
    "mtlsauth": _raw("policy.linkerd.io/v1alpha1", "MeshTLSAuthentication", "mtlsauth"),
    "netauth": _raw("policy.linkerd.io/v1alpha1", "NetworkAuthentication", "netauth"),
    "webhook": webhook,
}


def expand(entries: list[Obj]) -> list[Obj]:
    """Expand shorthand entries into manifests; full manifests pass through."""
    out: list[Obj] = []
    for entry in entries:
        if "kind" in entry:
            out.append(entry)
            continue
        key = next(iter(entry), None)  # the shorthand's first key names its builder
        if key not in BUILDERS:
            raise ValueError(f"unknown shorthand object: {entry}")
        out.extend(BUILDERS[str(key)](entry))
    return out


def case_params(directory: Path, objects_key: str) -> list[Any]:
    """One pytest param ``(case, objects)`` per case of each ``*.yaml`` file in ``directory``: the objects are
    the file's ``fixtures`` the case ``use``s, then the case's own ``objects_key`` list."""
    params = []
    for path in sorted(directory.glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        fixtures = data.get("fixtures") or {}
        for case in data["cases"]:
            objects = [o for name in case.get("use") or [] for o in fixtures[name]] + (case.get(objects_key) or [])
            params.append(pytest.param(case, objects, id=f"{path.stem}::{case['id']}"))
    return params
