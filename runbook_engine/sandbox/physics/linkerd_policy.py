"""Linkerd inbound authorization for a meshed (linkerd-proxy) server.

https://linkerd.io/2/reference/authorization-policy/ : a port not selected by any ``Server`` uses the
default inbound policy — the pod annotation ``config.linkerd.io/default-inbound-policy`` (the
injector copies the namespace's onto the pod), else the cluster default from the control plane's
config (``all-unauthenticated``).
A port selected by a ``Server`` admits only clients authorized by an ``AuthorizationPolicy``
(targeting the Server or its namespace, every ``requiredAuthenticationRefs`` satisfied:
``MeshTLSAuthentication`` identities/identityRefs, ``NetworkAuthentication`` networks) or a
``ServerAuthorization``; everything else gets the Server's ``accessPolicy`` (default ``deny``).
Kubelet probes are authorized by default on ports no Server selects, and on a Server that no
HTTPRoute attaches to (https://linkerd.io/2/features/server-policy/).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runbook_engine.kube.selectors import selector_from_object
from runbook_engine.sandbox.physics import objects as o
from runbook_engine.sandbox.physics.istio_authz import Decision, glob
from runbook_engine.sandbox.physics.topology import MeshView, ip_in

SERVER_VERSIONS = ("policy.linkerd.io/v1beta3", "policy.linkerd.io/v1beta2", "policy.linkerd.io/v1beta1")
AUTHZ_VERSIONS = ("policy.linkerd.io/v1alpha1",)
SAZ_VERSIONS = ("policy.linkerd.io/v1beta1",)


@dataclass(frozen=True)
class LinkerdClient:
    identity: str  # "<sa>.<ns>.serviceaccount.identity.linkerd.<td>" when meshed with Linkerd, else ""
    ip: str
    kubelet_probe: bool = False


def _port_matches(server: o.Obj, pod: o.Obj, port: int) -> bool:
    want = o.spec(server).get("port")
    if isinstance(want, int) or str(want).isdigit():
        return int(str(want)) == port
    return any(
        p.get("name") == want and int(p.get("containerPort", 0)) == port
        for c in o.containers(pod)
        for p in c.get("ports") or []
    )


def _servers(view: MeshView, pod: o.Obj, port: int) -> list[o.Obj]:
    return [
        s
        for s in view.kinds("Server", *SERVER_VERSIONS)
        if o.namespace_of(s) == o.namespace_of(pod)
        and selector_from_object(o.spec(s).get("podSelector")).matches(o.labels(pod))
        and _port_matches(s, pod, port)
    ]


ROUTE_VERSIONS = ("policy.linkerd.io/v1beta3", "policy.linkerd.io/v1beta2", "policy.linkerd.io/v1beta1",
                  "gateway.networking.k8s.io/v1")


def _routes_of(view: MeshView, server: o.Obj) -> list[o.Obj]:
    """The HTTPRoutes whose parentRefs name ``server``."""
    return [
        r
        for r in view.kinds("HTTPRoute", *ROUTE_VERSIONS)
        if o.namespace_of(r) == o.namespace_of(server)
        and any(
            ref.get("kind") == "Server" and ref.get("name") == o.name_of(server)
            for ref in o.spec(r).get("parentRefs") or []
        )
    ]


def default_policy(view: MeshView, pod: o.Obj) -> tuple[str, str]:
    """The pod's default inbound policy: its own annotation (copied from the namespace at injection
    time) or the cluster default; a namespace annotation added later needs a restart."""
    if value := o.annotations_of(pod).get(o.LINKERD_DEFAULT_POLICY):
        return value, "pod annotation"
    return view.cp.linkerd_default_policy(), "cluster default"


def policy_allows(policy: str, client: LinkerdClient, networks: list[str]) -> bool:
    in_cluster = ip_in(client.ip, networks)
    return {
        "all-unauthenticated": True,
        "all-authenticated": bool(client.identity),
        "cluster-unauthenticated": in_cluster,
        "cluster-authenticated": bool(client.identity) and in_cluster,
        "audit": True,
    }.get(policy, False)


def _mtls_auth_ok(auth: o.Obj, client: LinkerdClient) -> bool:
    spec = o.spec(auth)
    if not client.identity:
        return False
    if any(glob(str(i), client.identity) for i in spec.get("identities") or []):
        return True
    for ref in spec.get("identityRefs") or []:
        kind, name = ref.get("kind"), str(ref.get("name", ""))
        ns = str(ref.get("namespace") or o.namespace_of(auth))
        if kind == "ServiceAccount" and client.identity.startswith(f"{name}.{ns}.serviceaccount."):
            return True
        if kind == "Namespace" and f".{name}.serviceaccount." in client.identity:
            return True
    return False


def _network_auth_ok(auth: o.Obj, client: LinkerdClient) -> bool:
    for net in o.spec(auth).get("networks") or []:
        if ip_in(client.ip, [str(net.get("cidr", ""))]) and not ip_in(
            client.ip, [str(x) for x in net.get("except") or []]
        ):
            return True
    return False


def _authn_ref_ok(view: MeshView, ref: dict[str, Any], ns: str, client: LinkerdClient) -> bool:
    kind, name = ref.get("kind"), str(ref.get("name", ""))
    target_ns = str(ref.get("namespace") or ns)
    if kind == "ServiceAccount":
        return client.identity.startswith(f"{name}.{target_ns}.serviceaccount.")
    auth = view.cp.store.peek("policy.linkerd.io/v1alpha1", str(kind), target_ns, name)
    if auth is None:
        return False
    return _mtls_auth_ok(auth, client) if kind == "MeshTLSAuthentication" else _network_auth_ok(auth, client)


def _authorization_policies_allow(view: MeshView, server: o.Obj, client: LinkerdClient) -> str | None:
    ns = o.namespace_of(server)
    for ap in view.kinds("AuthorizationPolicy", *AUTHZ_VERSIONS):
        target = o.spec(ap).get("targetRef") or {}
        if o.namespace_of(ap) != ns:
            continue
        if not (
            (target.get("kind") == "Server" and target.get("name") == o.name_of(server))
            or target.get("kind") == "Namespace"
        ):
            continue
        refs = o.spec(ap).get("requiredAuthenticationRefs") or []
        if all(_authn_ref_ok(view, r, ns, client) for r in refs):
            return f"AuthorizationPolicy {ns}/{o.name_of(ap)}"
    return None


def _server_authorizations_allow(view: MeshView, server: o.Obj, client: LinkerdClient) -> str | None:
    ns = o.namespace_of(server)
    for saz in view.kinds("ServerAuthorization", *SAZ_VERSIONS):
        target = o.spec(saz).get("server") or {}
        selects = target.get("name") == o.name_of(server) or (
            "selector" in target and selector_from_object(target["selector"]).matches(o.labels(server))
        )
        if o.namespace_of(saz) == ns and selects and _saz_client_ok(o.spec(saz).get("client") or {}, client):
            return f"ServerAuthorization {ns}/{o.name_of(saz)}"
    return None


def _saz_client_ok(spec: dict[str, Any], client: LinkerdClient) -> bool:
    networks = [str(n.get("cidr", "")) for n in spec.get("networks") or []]
    if networks and not ip_in(client.ip, networks):
        return False
    if spec.get("unauthenticated"):
        return True
    mtls = spec.get("meshTLS") or {}
    if not client.identity:
        return False
    if mtls.get("unauthenticatedTLS") or any(
        glob(str(i), client.identity) for i in mtls.get("identities") or []
    ):
        return True
    return any(
        client.identity.startswith(f"{sa.get('name')}.{sa.get('namespace') or ''}")
        for sa in mtls.get("serviceAccounts") or []
    )


def authorize_linkerd(view: MeshView, pod: o.Obj, port: int, client: LinkerdClient) -> Decision:
    networks = view.cp.linkerd_cluster_networks()
    servers = _servers(view, pod, port)
    if not servers:
        if client.kubelet_probe:
            return Decision(True, "kubelet probes are authorized by default")
        policy, where = default_policy(view, pod)
        ok = policy_allows(policy, client, networks)
        return Decision(
            ok, f"default inbound policy {policy} ({where}) {'admits' if ok else 'rejects'} the client"
        )
    server = servers[0]
    if client.kubelet_probe and not _routes_of(view, server):
        # Probe routes stay authorized on a Server without HTTPRoutes; once routes are declared,
        # probes must be authorized like any request (https://linkerd.io/2/features/server-policy/).
        return Decision(True, f"kubelet probes are authorized by default on Server {o.name_of(server)}")
    found = _authorization_policies_allow(view, server, client) or _server_authorizations_allow(
        view, server, client
    )
    if found:
        return Decision(True, f"{found} authorizes the client on Server {o.name_of(server)}")
    access = str(o.spec(server).get("accessPolicy") or "deny")
    ok = policy_allows(access, client, networks)
    return Decision(
        ok, f"Server {o.name_of(server)} has no authorization for the client; accessPolicy {access}"
    )
