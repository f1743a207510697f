"""Effective Istio PeerAuthentication mode for one workload port.

Precedence (https://istio.io/latest/docs/reference/config/security/peer_authentication/): a
workload-specific policy (with a selector) over the namespace-wide policy over the mesh-wide policy
in the root namespace; ``portLevelMtls`` of the workload policy overrides its port; ``UNSET``
inherits from the level above; with nothing set the mode is PERMISSIVE. Where several policies tie
at one level, the oldest wins. In ambient mode ztunnel always speaks mTLS, so DISABLE is treated
as PERMISSIVE (https://istio.io/latest/docs/ambient/usage/l4-policy/).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from runbook_engine.kube.selectors import selector_from_object
from runbook_engine.sandbox.physics import objects as o
from runbook_engine.sandbox.physics.topology import MeshView

PA_VERSIONS = ("security.istio.io/v1", "security.istio.io/v1beta1")


class MtlsMode(StrEnum):
    STRICT = "STRICT"
    PERMISSIVE = "PERMISSIVE"
    DISABLE = "DISABLE"
    UNSET = "UNSET"


@dataclass(frozen=True)
class EffectiveMode:
    mode: MtlsMode
    source: str  # which policy decided, e.g. "PeerAuthentication istio-system/default"


def _mode(value: object) -> MtlsMode:
    try:
        return MtlsMode(str(value or "UNSET").upper())
    except ValueError:
        return MtlsMode.UNSET


def _oldest(policies: list[o.Obj]) -> o.Obj | None:
    ranked = sorted(policies, key=lambda p: (o.meta(p).get("creationTimestamp", ""), o.name_of(p)))
    return ranked[0] if ranked else None


def effective_mode(view: MeshView, pod: o.Obj, port: int) -> EffectiveMode:
    policies = view.kinds("PeerAuthentication", *PA_VERSIONS)
    ns = o.namespace_of(pod)
    pod_labels = o.labels(pod)
    mesh = _oldest(
        [p for p in policies if o.namespace_of(p) == view.root_namespace and not o.spec(p).get("selector")]
    )
    namespace = _oldest([p for p in policies if o.namespace_of(p) == ns and not o.spec(p).get("selector")])
    workload = _oldest(
        [
            p
            for p in policies
            if o.namespace_of(p) == ns
            and o.spec(p).get("selector")
            and selector_from_object(o.spec(p)["selector"]).matches(pod_labels)
        ]
    )
    result = EffectiveMode(MtlsMode.PERMISSIVE, "default (no PeerAuthentication)")
    for level in (mesh, namespace, workload):
        if level is None:
            continue
        mode = _mode((o.spec(level).get("mtls") or {}).get("mode"))
        if mode is not MtlsMode.UNSET:
            result = EffectiveMode(mode, f"PeerAuthentication {o.namespace_of(level)}/{o.name_of(level)}")
    if workload is not None:
        levels = {str(k): v for k, v in (o.spec(workload).get("portLevelMtls") or {}).items()}
        port_level = levels.get(str(port))
        mode = _mode((port_level or {}).get("mode"))
        if mode is not MtlsMode.UNSET:
            source = f"PeerAuthentication {ns}/{o.name_of(workload)} portLevelMtls[{port}]"
            result = EffectiveMode(mode, source)
    return result
