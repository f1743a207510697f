"""Which authority gives a pod its identity, and the SVID it presents.

A pod with an Istio proxy gets its certificate from istiod's CA, unless its proxy was injected with
the ``spire`` template (the SPIFFE CSI driver volume ``csi.spiffe.io``, see
https://istio.io/latest/docs/ops/integrations/spire/): then the SPIRE agent on its node issues it,
under SPIRE's trust domain and ``default_x509_svid_ttl``. No agent on the node (or no ready SPIRE
server) means no SVID: the proxy never becomes ready. Linkerd proxies get theirs from
linkerd-identity. When the issuing control plane is down, held certificates stop renewing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from runbook_engine.sandbox.physics import objects as o
from runbook_engine.sandbox.physics.control_plane import DEFAULT_CERT_TTL
from runbook_engine.sandbox.physics.identity import Authority, IdentityIssuer, IssuedCert
from runbook_engine.sandbox.physics.topology import Dataplane, MeshView, pod_dataplane


@dataclass(frozen=True)
class IdentityStatus:
    authority: Authority | None
    available: bool
    reason: str


def uses_spire(pod: o.Obj) -> bool:
    return any(
        (v.get("csi") or {}).get("driver") == o.SPIFFE_CSI_DRIVER for v in o.spec(pod).get("volumes") or []
    )


def identity_status(view: MeshView, pod: o.Obj) -> IdentityStatus:
    dataplane = pod_dataplane(pod)
    if dataplane is Dataplane.NONE:
        return IdentityStatus(None, False, "no proxy: the workload has no mesh identity")
    if dataplane is Dataplane.LINKERD:
        return IdentityStatus(Authority.LINKERD, view.cp.linkerd_ready(), "issued by linkerd-identity")
    if uses_spire(pod):
        node = o.node_of(pod)
        if not view.cp.spire_ready():
            return IdentityStatus(Authority.SPIRE, False, "SPIRE server not ready: no SVID")
        if node not in view.spire_agent_nodes:
            return IdentityStatus(Authority.SPIRE, False, f"no SPIRE agent on node {node}: no SVID")
        return IdentityStatus(Authority.SPIRE, True, f"SVID from the SPIRE agent on {node}")
    if not view.cp.istiods():
        return IdentityStatus(Authority.ISTIOD, False, "istiod is not installed")
    return IdentityStatus(Authority.ISTIOD, True, "certificate from istiod's CA")


class IdentityService:
    """Issues (and caches) the certificates workloads present."""

    def __init__(self, issuer: IdentityIssuer) -> None:
        self.issuer = issuer

    def expired(self, view: MeshView, pod: o.Obj) -> str | None:
        """Why the pod's istiod-issued certificate is no longer valid (istiod down, TTL passed), or None."""
        status = identity_status(view, pod)
        if status.authority is not Authority.ISTIOD or any(
            view.cp.istiod_ready(r) for r in view.cp.istiods()
        ):
            return None
        held = self.issuer.held(
            Authority.ISTIOD, view.trust_domain, o.namespace_of(pod), o.service_account(pod)
        )
        if held is None or not held.expired(dt.datetime.now(dt.UTC)):
            return None
        return f"certificate expired at {held.leaf.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ} and istiod is down"

    def certificate(self, view: MeshView, pod: o.Obj) -> IssuedCert | None:
        status = identity_status(view, pod)
        if status.authority is None or not status.available:
            return None
        ns, sa = o.namespace_of(pod), o.service_account(pod)
        if status.authority is Authority.SPIRE:
            return self.issuer.svid(
                Authority.SPIRE, view.cp.spire_trust_domain(), ns, sa, view.cp.spire_svid_ttl()
            )
        if status.authority is Authority.LINKERD:
            # linkerd-identity issues 24h leaf certificates by default
            return self.issuer.svid(Authority.LINKERD, "cluster.local", ns, sa, DEFAULT_CERT_TTL)
        istiods = view.cp.istiods()
        istiod = istiods.get("default") or next(iter(istiods.values()))
        renew = view.cp.istiod_ready(next(k for k, v in istiods.items() if v is istiod))
        return self.issuer.svid(Authority.ISTIOD, view.trust_domain, ns, sa, istiod.cert_ttl, renew=renew)
