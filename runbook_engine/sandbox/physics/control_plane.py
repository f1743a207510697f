"""What the mesh control planes installed in the sandbox look like right now.

Read from ordinary objects, as an operator would read them: istiod's Deployment and env, its mesh
ConfigMap, the sidecar-injector webhook, ztunnel and SPIRE agent pods per node, the SPIRE server
and its config, the Linkerd control plane. Mesh faults override what the objects say.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import yaml

from runbook_engine.sandbox.physics import objects as o
from runbook_engine.sandbox.physics.faults import MeshFaults
from runbook_engine.sandbox.store import Store

DEFAULT_TRUST_DOMAIN = "cluster.local"
DEFAULT_CERT_TTL = timedelta(hours=24)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")


def parse_duration(text: str) -> timedelta | None:
    """Go-style durations as istiod and SPIRE take them: ``24h``, ``1h30m``, ``90s``."""
    parts = _DURATION.findall(text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        return None
    unit = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return timedelta(seconds=sum(float(n) * unit[u] for n, u in parts))


@dataclass(frozen=True)
class Istiod:
    """One istiod revision: ``default`` for Deployment ``istiod``, ``<rev>`` for ``istiod-<rev>``."""

    revision: str
    deployment: o.Obj

    @property
    def env(self) -> dict[str, str]:
        pod_spec = o.spec(o.spec(self.deployment).get("template"))
        return {k: v for c in pod_spec.get("containers") or [] for k, v in o.container_env(c).items()}

    @property
    def ready(self) -> bool:
        return o.ready_replicas(self.deployment) > 0

    @property
    def native_sidecars(self) -> bool:
        # https://istio.io/latest/blog/2023/native-sidecars/ : ENABLE_NATIVE_SIDECARS=true on istiod
        return o.truthy(self.env.get("ENABLE_NATIVE_SIDECARS"))

    @property
    def cert_ttl(self) -> timedelta:
        return parse_duration(self.env.get("DEFAULT_WORKLOAD_CERT_TTL", "")) or DEFAULT_CERT_TTL


class ControlPlane:
    """A read-only view of the installed control planes, taken from the store on demand."""

    def __init__(self, store: Store, faults: MeshFaults) -> None:
        self.store = store
        self.faults = faults

    # -- Istio ---------------------------------------------------------------------------------
    def istiods(self) -> dict[str, Istiod]:
        out: dict[str, Istiod] = {}
        for dep in self.store.scan("apps/v1", "Deployment", o.ISTIO_NAMESPACE):
            name = o.name_of(dep)
            if name == "istiod" or name.startswith("istiod-"):
                rev = o.labels(dep).get(o.ISTIO_REV_LABEL) or (name.removeprefix("istiod-") or "default")
                out["default" if name == "istiod" else rev] = Istiod(rev, dep)
        return out

    def istiod(self, revision: str = "default") -> Istiod | None:
        return self.istiods().get(revision)

    def istiod_ready(self, revision: str = "default") -> bool:
        found = self.istiod(revision)
        return found is not None and found.ready and not self.faults.istiod_down

    def injector_webhook(self) -> o.Obj | None:
        """The sidecar-injector MutatingWebhookConfiguration, if istiod installed one."""
        for mwc in self.store.scan("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"):
            if any(
                str(w.get("name", "")).endswith("sidecar-injector.istio.io")
                for w in mwc.get("webhooks") or []
            ):
                return mwc
        return None

    def injector_fails_closed(self) -> bool:
        """Istio's injector is fail-close by default (failurePolicy: Fail).

        https://istio.io/latest/docs/ops/common-problems/injection/ : when injection is enabled for
        a pod and the webhook cannot be reached, the pod creation fails.
        """
        mwc = self.injector_webhook() or {}
        policies = {str(w.get("failurePolicy", "Fail")) for w in mwc.get("webhooks") or []}
        return "Ignore" not in policies

    def mesh_config(self) -> dict[str, Any]:
        cm = self.store.peek("v1", "ConfigMap", o.ISTIO_NAMESPACE, "istio")
        raw = ((cm or {}).get("data") or {}).get("mesh") or ""
        loaded = yaml.safe_load(raw) if raw else None
        return loaded if isinstance(loaded, dict) else {}

    def trust_domain(self) -> str:
        return str(self.mesh_config().get("trustDomain") or DEFAULT_TRUST_DOMAIN)

    def trust_domain_aliases(self) -> list[str]:
        return [str(a) for a in self.mesh_config().get("trustDomainAliases") or []]

    def root_namespace(self) -> str:
        return str(self.mesh_config().get("rootNamespace") or o.ISTIO_NAMESPACE)

    def registry_only(self) -> bool:
        policy = self.mesh_config().get("outboundTrafficPolicy") or {}
        return str(policy.get("mode", "ALLOW_ANY")) == "REGISTRY_ONLY"

    def extension_providers(self) -> set[str]:
        return {str(p.get("name")) for p in self.mesh_config().get("extensionProviders") or []}

    def spire_template_default(self) -> bool:
        """Injector ConfigMap ``defaultTemplates`` includes ``spire`` (all injected pods use SPIRE)."""
        cm = self.store.peek("v1", "ConfigMap", o.ISTIO_NAMESPACE, "istio-sidecar-injector")
        raw = ((cm or {}).get("data") or {}).get("config") or ""
        loaded = yaml.safe_load(raw) if raw else None
        templates = loaded.get("defaultTemplates") if isinstance(loaded, dict) else None
        return isinstance(templates, list) and "spire" in templates

    def ztunnel_nodes(self) -> set[str]:
        """Nodes with a running ztunnel (the ambient node proxy), minus ``ztunnel_missing`` faults."""
        return (
            {
                o.node_of(p)
                for p in self.store.scan("v1", "Pod", o.ISTIO_NAMESPACE)
                if o.is_running(p) and _is_component(p, "ztunnel")
            }
            - self.faults.ztunnel_missing
            - {""}
        )

    def ztunnel_on(self, node: str) -> bool:
        return node in self.ztunnel_nodes()

    # -- SPIRE ---------------------------------------------------------------------------------
    def spire_namespace(self) -> str | None:
        for ns in o.SPIRE_NAMESPACES:
            sts = self.store.peek("apps/v1", "StatefulSet", ns, "spire-server")
            if sts is not None:
                return ns
        return None

    def spire_ready(self) -> bool:
        ns = self.spire_namespace()
        return (
            ns is not None
            and o.ready_replicas(self.store.peek("apps/v1", "StatefulSet", ns, "spire-server")) > 0
        )

    def spire_config(self) -> str:
        ns = self.spire_namespace()
        cm = self.store.peek("v1", "ConfigMap", ns, "spire-server") if ns else None
        return str(((cm or {}).get("data") or {}).get("server.conf") or "")

    def spire_trust_domain(self) -> str:
        """``trust_domain`` from SPIRE's server.conf (HCL or the Helm chart's JSON rendering)."""
        found = re.search(r'"?trust_domain"?\s*[:=]\s*"([^"]+)"', self.spire_config())
        return found.group(1) if found else self.trust_domain()

    def spire_svid_ttl(self) -> timedelta:
        found = re.search(r'"?default_x509_svid_ttl"?\s*[:=]\s*"([^"]+)"', self.spire_config())
        return (parse_duration(found.group(1)) if found else None) or timedelta(hours=1)

    def spire_agent_nodes(self) -> set[str]:
        """Nodes with a running SPIRE agent, minus ``spire_agent_missing`` faults."""
        return (
            {
                o.node_of(p)
                for ns in o.SPIRE_NAMESPACES
                for p in self.store.scan("v1", "Pod", ns)
                if o.is_running(p) and _is_component(p, "spire-agent")
            }
            - self.faults.spire_agent_missing
            - {""}
        )

    # -- Linkerd -------------------------------------------------------------------------------
    def linkerd_ready(self) -> bool:
        return all(
            o.ready_replicas(self.store.peek("apps/v1", "Deployment", o.LINKERD_NAMESPACE, name)) > 0
            for name in ("linkerd-destination", "linkerd-identity")
        )

    def linkerd_default_policy(self) -> str:
        cm = self.store.peek("v1", "ConfigMap", o.LINKERD_NAMESPACE, "linkerd-config")
        raw = ((cm or {}).get("data") or {}).get("values") or ""
        loaded = yaml.safe_load(raw) if raw else None
        proxy = loaded.get("proxy") if isinstance(loaded, dict) else None
        policy = proxy.get("defaultInboundPolicy") if isinstance(proxy, dict) else None
        return str(policy or "all-unauthenticated")

    def linkerd_cluster_networks(self) -> list[str]:
        cm = self.store.peek("v1", "ConfigMap", o.LINKERD_NAMESPACE, "linkerd-config")
        raw = ((cm or {}).get("data") or {}).get("values") or ""
        loaded = yaml.safe_load(raw) if raw else None
        nets = loaded.get("clusterNetworks") if isinstance(loaded, dict) else None
        return str(nets or "10.0.0.0/8,100.64.0.0/10,172.16.0.0/12,192.168.0.0/16").split(",")


def _is_component(pod: o.Obj, app: str) -> bool:
    lbl = o.labels(pod)
    return app in (lbl.get("app"), lbl.get("app.kubernetes.io/name")) or o.name_of(pod).startswith(f"{app}-")
