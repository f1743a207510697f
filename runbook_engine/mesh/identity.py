"""Workload identities (SPIFFE IDs) and the principal matching Istio authorization uses.

- Istio: ``spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>``; authorization policies name
  the principal without the scheme, ``<td>/ns/<ns>/sa/<sa>``
  (https://istio.io/latest/docs/concepts/security/#istio-identity).
- Linkerd: ``<sa>.<ns>.serviceaccount.identity.<control-plane-ns>.<trust-domain>``
  (https://linkerd.io/2/features/automatic-mtls/).
- SPIRE (ClusterSPIFFEID): the controller manager's template, by default
  ``spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/{{ .PodSpec.ServiceAccountName }}``
  (https://github.com/spiffe/spire-controller-manager/blob/main/docs/clusterspiffeid-crd.md).

Principal matching follows the AuthorizationPolicy reference: exact, prefix ``abc*``, suffix ``*abc``
and ``*`` (any non-empty value). A principal's trust domain is expanded to the mesh trust domain and
every ``trustDomainAliases`` entry when it names any of them, and ``cluster.local`` in a policy always
points at the current trust domain and its aliases
(https://istio.io/latest/docs/tasks/security/authorization/authz-td-migration/#best-practices).
"""

from __future__ import annotations

import re

from runbook_engine.mesh.model import DEFAULT_TRUST_DOMAIN, MeshConfig

_TEMPLATE_VAR = re.compile(r"\{\{\s*\.([A-Za-z.]+)\s*\}\}")


def istio_principal(trust_domain: str, namespace: str, service_account: str) -> str:
    return f"{trust_domain}/ns/{namespace}/sa/{service_account}"


def istio_spiffe_id(trust_domain: str, namespace: str, service_account: str) -> str:
    return "spiffe://" + istio_principal(trust_domain, namespace, service_account)


def linkerd_identity(
    namespace: str, service_account: str, *, trust_domain: str = DEFAULT_TRUST_DOMAIN, control_ns: str = "linkerd"
) -> str:
    return f"{service_account}.{namespace}.serviceaccount.identity.{control_ns}.{trust_domain}"


def spire_spiffe_id(template: str, *, trust_domain: str, namespace: str, service_account: str, pod: str) -> str:
    """Render a ClusterSPIFFEID ``spiffeIDTemplate`` for one pod (the common template variables)."""
    values = {
        "TrustDomain": trust_domain,
        "PodMeta.Namespace": namespace,
        "PodMeta.Name": pod,
        "PodSpec.ServiceAccountName": service_account,
    }
    return _TEMPLATE_VAR.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def namespace_of_principal(principal: str) -> str | None:
    """The namespace encoded in an Istio principal (``<td>/ns/<ns>/sa/<sa>``)."""
    parts = principal.split("/")
    return parts[2] if len(parts) >= 5 and parts[1] == "ns" else None


def string_match(pattern: str, value: str | None) -> bool:
    """Istio's string matching for authorization values: exact, ``prefix*``, ``*suffix``, ``*``."""
    if not value:
        return False
    if pattern == "*":
        return True
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    return value == pattern


def expand_principal(pattern: str, mesh: MeshConfig) -> tuple[str, ...]:
    """The patterns a policy principal stands for once trust-domain aliases are applied."""
    td, sep, rest = pattern.partition("/")
    if not sep or not rest.startswith("ns/"):
        return (pattern,)
    bundle = (mesh.trust_domain, *mesh.trust_domain_aliases)
    if td == DEFAULT_TRUST_DOMAIN or td in bundle:
        return tuple(f"{d}/{rest}" for d in dict.fromkeys((*bundle, td)))
    return (pattern,)


def principal_matches(pattern: str, principal: str | None, mesh: MeshConfig) -> bool:
    """Whether an Istio principal (no ``spiffe://``) matches a policy pattern."""
    if not principal:
        return False
    value = principal.removeprefix("spiffe://")
    return any(string_match(p, value) for p in expand_principal(pattern, mesh))


def linkerd_identity_matches(pattern: str, identity: str | None) -> bool:
    """MeshTLSAuthentication/ServerAuthorization identities: exact, ``*`` or a ``*.suffix`` wildcard."""
    if not identity:
        return False
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return identity.endswith(pattern[1:])
    return identity == pattern
