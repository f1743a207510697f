"""Linkerd inbound authorization for one request arriving at one meshed pod port.

From https://linkerd.io/2/reference/authorization-policy/ and https://linkerd.io/2/features/server-policy/:

- Default policy, ``config.linkerd.io/default-inbound-policy`` on the pod template > on the namespace >
  the cluster default (``proxy.defaultInboundPolicy``, ``all-unauthenticated`` unless installed
  otherwise): ``all-unauthenticated`` allows everything; ``all-authenticated`` and
  ``cluster-authenticated`` require a meshed (mTLS) client (one cluster is modelled, so the two agree);
  ``cluster-unauthenticated`` allows clients from the cluster networks; ``deny`` denies everything;
  ``audit`` allows everything and flags it.
- A ``Server`` selecting the pod and port switches that port to explicit authorization: traffic is
  denied unless an ``AuthorizationPolicy`` (target: the Server, its namespace, or an HTTPRoute attached
  to the Server and matching the request) or a legacy ``ServerAuthorization`` authorizes it.
- An AuthorizationPolicy authorizes a client that satisfies *all* its ``requiredAuthenticationRefs``:
  ``MeshTLSAuthentication`` (``identities`` with ``*`` wildcards, or ``identityRefs`` to
  ServiceAccounts/Namespaces), ``NetworkAuthentication`` (``networks`` CIDRs with ``except``), or a
  ServiceAccount directly.
- Denied HTTP requests get a 403; denied TCP connections are refused (reset).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from runbook_engine.kube.selectors import selector_from_object
from runbook_engine.mesh.authz import AuthzDecision
from runbook_engine.mesh.identity import linkerd_identity, linkerd_identity_matches
from runbook_engine.mesh.model import MeshView, Obj, Workload, labels, name_of, namespace_of, ref

LINKERD_POLICY = "policy.linkerd.io"
POLICY_ANNOTATION = "config.linkerd.io/default-inbound-policy"


class DefaultPolicy(StrEnum):
    ALL_UNAUTHENTICATED = "all-unauthenticated"
    ALL_AUTHENTICATED = "all-authenticated"
    CLUSTER_AUTHENTICATED = "cluster-authenticated"
    CLUSTER_UNAUTHENTICATED = "cluster-unauthenticated"
    DENY = "deny"
    AUDIT = "audit"


@dataclass(frozen=True)
class LinkerdClient:
    """What the server-side proxy knows of the caller."""

    identity: str | None
    ip: str | None
    in_cluster: bool
    http: bool
    method: str = "GET"
    path: str = "/"


def _parse_policy(value: str) -> DefaultPolicy | None:
    return DefaultPolicy(value) if value in DefaultPolicy._value2member_map_ else None


def default_policy(view: MeshView, wl: Workload) -> tuple[DefaultPolicy, str]:
    """The default inbound policy of a workload's pods and where it is set."""
    for where, source in (
        (f"pod template of {wl.key}", wl.template_annotations),
        (f"namespace {wl.namespace}", view.namespace_annotations(wl.namespace)),
    ):
        parsed = _parse_policy(source.get(POLICY_ANNOTATION, ""))
        if parsed is not None:
            return parsed, f"{POLICY_ANNOTATION}={parsed.value} on {where}"
    parsed = _parse_policy(view.linkerd.default_policy) or DefaultPolicy.ALL_UNAUTHENTICATED
    return parsed, f"cluster default inbound policy {parsed.value}"


def _in_networks(ip: str | None, networks: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a client address is in one of ``networks`` (``cidr`` minus ``except``); an unknown
    address only matches a network that covers every address (``0.0.0.0/0``, ``::/0``)."""
    try:
        return _in_networks_checked(ip, networks)
    except ValueError:
        return False


def _in_networks_checked(ip: str | None, networks: Sequence[Mapping[str, Any]]) -> bool:
    for net in networks:
        cidr = ipaddress.ip_network(str(net.get("cidr")), strict=False)
        if ip is None:
            if cidr.prefixlen == 0:
                return True
            continue
        address = ipaddress.ip_address(ip)
        if address.version != cidr.version or address not in cidr:
            continue
        excluded = [ipaddress.ip_network(str(e), strict=False) for e in net.get("except") or []]
        if not any(address.version == e.version and address in e for e in excluded):
            return True
    return False


def _in_cluster(view: MeshView, client: LinkerdClient) -> bool:
    if client.ip is None:
        return client.in_cluster
    return _in_networks(client.ip, [{"cidr": c} for c in view.linkerd.cluster_networks])


def _default_decision(view: MeshView, wl: Workload, client: LinkerdClient) -> AuthzDecision:
    policy, source = default_policy(view, wl)
    allowed = {
        DefaultPolicy.ALL_UNAUTHENTICATED: True,
        DefaultPolicy.AUDIT: True,
        DefaultPolicy.ALL_AUTHENTICATED: client.identity is not None,
        DefaultPolicy.CLUSTER_AUTHENTICATED: client.identity is not None,
        DefaultPolicy.CLUSTER_UNAUTHENTICATED: _in_cluster(view, client),
        DefaultPolicy.DENY: False,
    }[policy]
    verdict = "allows" if allowed else "denies"
    note = " (audit: allowed, flagged in logs and metrics)" if policy is DefaultPolicy.AUDIT else ""
    return AuthzDecision(allowed, [f"no Server selects the port; {source} {verdict} the request{note}"], source)


# ----- Servers and their authorizations ------------------------------------------------------------------
def server_for(view: MeshView, wl: Workload, target_port: int) -> Obj | None:
    """The Linkerd Server that selects ``wl``'s pods on ``target_port``, if any."""
    for server in view.objects("Server", wl.namespace, LINKERD_POLICY):
        spec = server.get("spec") or {}
        if not selector_from_object(spec.get("podSelector")).matches(wl.template_labels):
            continue
        if wl.container_port(spec.get("port", -1)) == target_port:
            return server
    return None


def _identity_of(view: MeshView, ns: str, sa: str) -> str:
    return linkerd_identity(ns, sa, trust_domain=view.linkerd.trust_domain, control_ns=view.linkerd.namespace)


def _mesh_tls_ok(view: MeshView, auth: Mapping[str, Any], client: LinkerdClient) -> bool:
    if client.identity is None:
        return False
    spec = auth.get("spec") or {}
    if any(linkerd_identity_matches(str(i), client.identity) for i in spec.get("identities") or []):
        return True
    for target in spec.get("identityRefs") or []:
        kind, name = target.get("kind"), str(target.get("name", ""))
        ns = str(target.get("namespace") or namespace_of(auth))
        if kind == "ServiceAccount" and (name == "*" or client.identity == _identity_of(view, ns, name)):
            return True
        if kind == "Namespace" and f".{name}.serviceaccount.identity." in client.identity:
            return True
    return False


def _auth_ref_ok(view: MeshView, policy: Obj, target: Mapping[str, Any], client: LinkerdClient) -> bool:
    kind, name = target.get("kind"), str(target.get("name", ""))
    ns = str(target.get("namespace") or namespace_of(policy))
    if kind == "ServiceAccount":
        return client.identity == _identity_of(view, ns, name)
    found = next((o for o in view.objects(str(kind), ns, LINKERD_POLICY) if name_of(o) == name), None)
    if found is None:
        return False
    if kind == "MeshTLSAuthentication":
        return _mesh_tls_ok(view, found, client)
    if kind == "NetworkAuthentication":
        return _in_networks(client.ip, (found.get("spec") or {}).get("networks") or [])
    return False


def _route_matches(route: Mapping[str, Any], client: LinkerdClient) -> bool:
    if not client.http:
        return False
    for rule in (route.get("spec") or {}).get("rules") or [{}]:
        matches = rule.get("matches") or [{}]
        for match in matches:
            path = match.get("path") or {}
            value = str(path.get("value", "/"))
            path_ok = client.path == value if path.get("type") == "Exact" else client.path.startswith(value)
            method_ok = not match.get("method") or str(match["method"]).upper() == client.method.upper()
            if path_ok and method_ok:
                return True
    return False


def _routes_of(view: MeshView, server: Obj) -> dict[str, Obj]:
    found: dict[str, Obj] = {}
    for route in view.objects("HTTPRoute", namespace_of(server)):
        parents = (route.get("spec") or {}).get("parentRefs") or []
        if any(p.get("kind") == "Server" and p.get("name") == name_of(server) for p in parents):
            found[name_of(route)] = route
    return found


def _policy_applies(policy: Obj, server: Obj, routes: Mapping[str, Obj], client: LinkerdClient) -> bool:
    target = (policy.get("spec") or {}).get("targetRef") or {}
    kind, name = target.get("kind"), target.get("name")
    if kind == "Server":
        return name == name_of(server)
    if kind == "Namespace":
        return name in (None, namespace_of(server))
    if kind == "HTTPRoute" and name in routes:
        return _route_matches(routes[str(name)], client)
    return False


def _authorization_policies(view: MeshView, server: Obj, client: LinkerdClient) -> tuple[bool, list[str]]:
    routes = _routes_of(view, server)
    tried: list[str] = []
    for policy in view.objects("AuthorizationPolicy", namespace_of(server), LINKERD_POLICY):
        if not _policy_applies(policy, server, routes, client):
            continue
        refs = (policy.get("spec") or {}).get("requiredAuthenticationRefs") or []
        if all(_auth_ref_ok(view, policy, r, client) for r in refs):
            return True, [f"{ref(policy)} authorizes the client"]
        tried.append(ref(policy))
    return False, tried


def _server_authorization_ok(view: MeshView, saz: Obj, client: LinkerdClient) -> bool:
    spec_client = (saz.get("spec") or {}).get("client") or {}
    networks = spec_client.get("networks")
    if networks and not _in_networks(client.ip, networks):
        return False
    if spec_client.get("unauthenticated"):
        return True
    mesh_tls = spec_client.get("meshTLS") or {}
    if client.identity is None:
        return False
    if mesh_tls.get("unauthenticatedTLS"):
        return True
    if any(linkerd_identity_matches(str(i), client.identity) for i in mesh_tls.get("identities") or []):
        return True
    for sa in mesh_tls.get("serviceAccounts") or []:
        ns = str(sa.get("namespace") or namespace_of(saz))
        if client.identity == _identity_of(view, ns, str(sa.get("name", ""))):
            return True
    return False


def _server_authorizations(view: MeshView, server: Obj, client: LinkerdClient) -> tuple[bool, list[str]]:
    tried: list[str] = []
    for saz in view.objects("ServerAuthorization", namespace_of(server), LINKERD_POLICY):
        target = (saz.get("spec") or {}).get("server") or {}
        selects = target.get("name") == name_of(server) or (
            bool(target.get("selector")) and selector_from_object(target["selector"]).matches(labels(server))
        )
        if not selects:
            continue
        if _server_authorization_ok(view, saz, client):
            return True, [f"{ref(saz)} authorizes the client"]
        tried.append(ref(saz))
    return False, tried


def decide(view: MeshView, wl: Workload, target_port: int, client: LinkerdClient) -> AuthzDecision:
    """Linkerd's inbound decision for ``client`` calling ``wl`` on container port ``target_port``."""
    server = server_for(view, wl, target_port)
    if server is None:
        return _default_decision(view, wl, client)
    ok, reasons = _authorization_policies(view, server, client)
    if not ok:
        ok_saz, saz_reasons = _server_authorizations(view, server, client)
        ok, reasons = ok_saz, (saz_reasons if ok_saz else reasons + saz_reasons)
    if ok:
        return AuthzDecision(True, [f"{ref(server)} selects port {target_port}", *reasons], ref(server))
    tried = f" (none of {', '.join(reasons)} matches)" if reasons else " and nothing authorizes it"
    return AuthzDecision(False, [f"{ref(server)} selects port {target_port}{tried}: denied"], ref(server))
