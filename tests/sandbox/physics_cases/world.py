"""Builds small mesh platforms in a bare sandbox ``Store`` for the physics tests.

Objects are created through ``Store.create`` (so the injection webhook runs, as it would for a
controller-created pod) and then given the status a kubelet would report.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import yaml

from runbook_engine.sandbox.physics import MeshPhysics
from runbook_engine.sandbox.store import Store

Obj = dict[str, Any]
_ips = itertools.count(10)


class World:
    """A store plus the mesh physics, with helpers to install control planes and workloads."""

    def __init__(self, tmp: Path | None = None) -> None:
        self.store = Store()
        self.physics = MeshPhysics(self.store, ca_dir=tmp)
        self.physics.install()
        self._clock = itertools.count(1)

    # -- generic ---------------------------------------------------------------------------------
    def create(self, obj: Obj) -> Obj:
        meta = obj.setdefault("metadata", {})
        n = next(self._clock)
        meta.setdefault("creationTimestamp", f"2026-01-01T{n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z")
        return self.store.create(obj)

    def apply(self, obj: Obj) -> Obj:
        meta = obj["metadata"]
        current = self.store.get(obj["apiVersion"], obj["kind"], meta.get("namespace", ""), meta["name"])
        if current is None:
            return self.create(obj)
        obj["metadata"] = {**current["metadata"], **meta}
        return self.store.update(obj)

    def apply_yaml(self, text: str) -> None:
        for doc in yaml.safe_load_all(text):
            if doc:
                self.apply(doc)

    def namespace(
        self, name: str, labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None
    ) -> None:
        """Create a namespace, or merge labels/annotations into an existing one (``kubectl label``)."""
        current = self.store.get("v1", "Namespace", "", name) or {"metadata": {}}
        merged_labels = {**(current["metadata"].get("labels") or {}), **(labels or {})}
        merged_ann = {**(current["metadata"].get("annotations") or {}), **(annotations or {})}
        self.apply(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": name, "labels": merged_labels, "annotations": merged_ann},
            }
        )

    # -- control planes ----------------------------------------------------------------------------
    def istiod(
        self,
        *,
        native: bool = False,
        trust_domain: str | None = None,
        ttl: str | None = None,
        spire_template: bool = False,
        ready: bool = True,
        failure_policy: str = "Fail",
    ) -> None:
        self.namespace("istio-system")
        env = [{"name": "ENABLE_NATIVE_SIDECARS", "value": "true" if native else "false"}]
        if ttl:
            env.append({"name": "DEFAULT_WORKLOAD_CERT_TTL", "value": ttl})
        self.apply(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "istiod", "namespace": "istio-system"},
                "spec": {
                    "selector": {"matchLabels": {"app": "istiod"}},
                    "template": {"spec": {"containers": [{"name": "discovery", "image": "pilot", "env": env}]}},
                },
                "status": {"readyReplicas": 1 if ready else 0, "replicas": 1},
            }
        )
        self.apply(
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "MutatingWebhookConfiguration",
                "metadata": {"name": "istio-sidecar-injector"},
                "webhooks": [{"name": "namespace.sidecar-injector.istio.io", "failurePolicy": failure_policy}],
            }
        )
        mesh = {"trustDomain": trust_domain} if trust_domain else {}
        self.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "istio", "namespace": "istio-system"},
                "data": {"mesh": yaml.safe_dump(mesh)},
            }
        )
        if spire_template:
            config = yaml.safe_dump({"defaultTemplates": ["sidecar", "spire"]})
            self.apply(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "istio-sidecar-injector", "namespace": "istio-system"},
                    "data": {"config": config},
                }
            )

    def spire(
        self, *, trust_domain: str = "example.org", ttl: str = "1h", agent_nodes: tuple[str, ...] = ("node-1",)
    ) -> None:
        self.namespace("spire-server")
        self.apply(
            {
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "metadata": {"name": "spire-server", "namespace": "spire-server"},
                "spec": {"selector": {"matchLabels": {"app": "spire-server"}}},
                "status": {"readyReplicas": 1, "replicas": 1},
            }
        )
        conf = f'server {{\n  trust_domain = "{trust_domain}"\n  default_x509_svid_ttl = "{ttl}"\n}}\n'
        self.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "spire-server", "namespace": "spire-server"},
                "data": {"server.conf": conf},
            }
        )
        for node in agent_nodes:
            self.system_pod("spire-server", f"spire-agent-{node}", "spire-agent", node)

    def ztunnel(self, *nodes: str) -> None:
        self.namespace("istio-system")
        for node in nodes:
            self.system_pod("istio-system", f"ztunnel-{node}", "ztunnel", node)

    def linkerd(self, default_policy: str | None = None) -> None:
        self.namespace("linkerd")
        for name in ("linkerd-destination", "linkerd-identity"):
            self.apply(
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {"name": name, "namespace": "linkerd"},
                    "spec": {"selector": {"matchLabels": {"app": name}}},
                    "status": {"readyReplicas": 1},
                }
            )
        if default_policy:
            values = yaml.safe_dump({"proxy": {"defaultInboundPolicy": default_policy}})
            self.apply(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "linkerd-config", "namespace": "linkerd"},
                    "data": {"values": values},
                }
            )

    def system_pod(self, ns: str, name: str, app: str, node: str) -> None:
        self.run_pod(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": ns, "labels": {"app": app}},
                "spec": {"nodeName": node, "containers": [{"name": app, "image": app}]},
            }
        )

    # -- workloads ---------------------------------------------------------------------------------
    def workload(
        self,
        ns: str,
        name: str,
        *,
        port: int = 8080,
        sa: str | None = None,
        node: str = "node-1",
        pod_labels: dict[str, str] | None = None,
        pod_annotations: dict[str, str] | None = None,
        service: bool = True,
        init: list[Obj] | None = None,
        pod_name: str | None = None,
        service_port: int | None = None,
        image: str | None = None,
        args: list[str] | None = None,
        port_name: str = "http",
        app_protocol: str | None = None,
    ) -> Obj:
        """A Deployment-like workload: a selector, one running pod, and a Service on ``port``."""
        self.namespace(ns)
        labels = {"app": name, **(pod_labels or {})}
        self.apply(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"selector": {"matchLabels": {"app": name}}},
            }
        )
        if service:
            self.apply(
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": name, "namespace": ns},
                    "spec": {
                        "selector": {"app": name},
                        "ports": [
                            {
                                "name": port_name,
                                "port": service_port or port,
                                "targetPort": port,
                                **({"appProtocol": app_protocol} if app_protocol else {}),
                            }
                        ],
                    },
                }
            )
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name or f"{name}-{next(self._clock)}",
                "namespace": ns,
                "labels": labels,
                "annotations": pod_annotations or {},
            },
            "spec": {
                "nodeName": node,
                "serviceAccountName": sa or name,
                "initContainers": init or [],
                "containers": [
                    {
                        "name": "app",
                        "image": image or f"example/{name}",
                        "args": args or [],
                        "ports": [{"name": "http", "containerPort": port}],
                        "readinessProbe": {"httpGet": {"path": "/ready", "port": port}},
                    }
                ],
            },
        }
        return self.run_pod(pod)

    def run_pod(self, pod: Obj) -> Obj:
        created = self.create(pod)
        created["status"] = {
            "phase": "Running",
            "podIP": f"10.244.0.{next(_ips)}",
            "conditions": [{"type": "Ready", "status": "True"}],
        }
        return self.store.update(created)

    def restart(self, ns: str, name: str) -> Obj:
        """Replace a workload's pods with a new one (what a rollout restart does)."""
        old = [p for p in self.store.list("v1", "Pod", ns) if p["metadata"]["labels"].get("app") == name]
        template = old[0]
        for p in old:
            self.store.delete("v1", "Pod", ns, p["metadata"]["name"])
        spec = template["spec"]
        spec["containers"] = [c for c in spec["containers"] if c["name"] not in ("istio-proxy", "linkerd-proxy")]
        spec["initContainers"] = [
            c
            for c in spec.get("initContainers") or []
            if c["name"] not in ("istio-init", "istio-proxy", "linkerd-init", "linkerd-proxy")
        ]
        spec["volumes"] = []
        meta = {k: v for k, v in template["metadata"].items() if k in ("namespace", "labels")}
        meta["labels"] = {
            k: v for k, v in meta["labels"].items() if not k.startswith(("security.istio.io", "service.istio.io"))
        }
        meta["name"] = f"{name}-{next(self._clock)}"
        return self.run_pod({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
