"""Flow outcomes: what a caller observes on one traffic edge, with a reason chain an SRE can read.

``evaluate_flow(view, flow)`` walks the edge the way the data plane does:

1. *Caller*: a workload (meshed or not), ``external:<name>`` (from outside the cluster: plaintext, no
   identity), ``kubelet`` (probes) or ``kube-apiserver`` (admission webhooks; it speaks its own TLS,
   which the mesh sees as opaque plaintext TCP, and has no mesh identity).
2. *Destination*: ``<ns>/<service>:<port>`` resolved through the Service selector and ``targetPort``
   (name or number) to a workload and container port; when no Service has that port, a workload of
   that name and its container port (how probe and scrape edges are named).
3. *Transport*: what the client proxy sends. Istio sidecars use auto mTLS (mTLS to pods with an Istio
   proxy, plaintext to others and to ports whose PeerAuthentication is DISABLE) unless a
   DestinationRule sets ``tls.mode`` (https://istio.io/latest/docs/concepts/security/#auto-mutual-tls);
   ztunnel (ambient) always uses HBONE mTLS to meshed pods; Linkerd only to Linkerd pods.
4. *Server acceptance*: STRICT rejects plaintext (reset); PERMISSIVE must sniff the first bytes, so a
   server-first protocol from a plaintext client stalls (hang)
   (https://istio.io/latest/docs/ops/deployment/application-requirements/#server-first-protocols and
   https://istio.io/latest/docs/ops/common-problems/network-issues/#mysql-connectivity-troubleshooting);
   TLS originated by a sidecar (DR SIMPLE/MUTUAL) or Istio mTLS to a pod that cannot terminate it is a
   TLS error.
5. *Authorization*: Istio AuthorizationPolicy (sidecar, ztunnel or waypoint) or Linkerd policy.
   Denied HTTP gets 403 from a sidecar/waypoint/Linkerd proxy ("RBAC: access denied"; gRPC gets
   PERMISSION_DENIED, reported as ``denied_403`` too); denied TCP (and anything at ztunnel) is reset.

Probes: Istio rewrites HTTP, gRPC and TCP probes to the sidecar agent by default
(``sidecar.istio.io/rewriteAppHTTPProbers``), so STRICT and authorization do not affect them; without
the rewrite an HTTP probe is plaintext from a caller without identity, while a TCP probe only sees the
sidecar's open listener (https://istio.io/latest/docs/ops/configuration/mesh/app-health-check/).
Ambient exempts kubelet probes from ztunnel policy (https://istio.io/latest/docs/ambient/usage/
networkpolicy/), and Linkerd authorizes probes by default
(https://linkerd.io/2/features/server-policy/).

Egress to ``external:<host>:<port>`` from a sidecar: without a ServiceEntry the destination is
unknown to the mesh; with ``outboundTrafficPolicy: ALLOW_ANY`` (the default) the sidecar forwards the
application's bytes untouched (PassthroughCluster), with ``REGISTRY_ONLY`` it drops them
(https://istio.io/latest/docs/tasks/traffic-management/egress/egress-control/). Outbound traffic to a
port without a declared protocol is sniffed, which a server-first protocol never satisfies (hang).
With a ServiceEntry, a DestinationRule ``tls.mode`` of SIMPLE/MUTUAL makes the sidecar originate TLS
(https://istio.io/latest/docs/tasks/traffic-management/egress/egress-tls-origination/): that is
correct for an application speaking plaintext to an ``HTTP`` port, and *double TLS* (a TLS error) when
the application does its own TLS, the usual case for managed databases and APIs. This module assumes
the application speaks TLS itself to external ports unless the ServiceEntry declares the port
``HTTP``/``HTTP2``/``GRPC`` or the flow is plain HTTP on port 80; the fix the docs give is a
DestinationRule ``tls.mode: DISABLE`` for each such port (or not originating TLS at all).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from runbook_engine.kube.flow import Flow, Outcome, Protocol
from runbook_engine.mesh import authz, linkerd
from runbook_engine.mesh.identity import istio_principal, linkerd_identity
from runbook_engine.mesh.injection import Enrolment, workload_enrolment
from runbook_engine.mesh.model import Mesh, MeshView, Obj, ProxyForm, Workload, labels, name_of, namespace_of, ref
from runbook_engine.mesh.mtls import (
    ClientTls,
    MtlsMode,
    client_sidecar,
    dr_tls,
    effective_mode,
    egress_visible,
    find_destination_rule,
    find_service_entry,
    outbound_policy,
    qualify_host,
    service_entry_for_host,
)

HTTP_PROTOCOLS = frozenset({"http", "http2", "grpc", "grpc-web"})
OPAQUE_PROTOCOLS = frozenset({"tcp", "tls", "https", "mongo", "mysql", "redis"})
#: Linkerd's default opaque ports (https://linkerd.io/2/features/protocol-detection/).
LINKERD_OPAQUE_PORTS = frozenset({25, 587, 3306, 4444, 5432, 6379, 9300, 11211})
NO_PROXY = Enrolment(False, Mesh.NONE, ProxyForm.NONE)
#: Ports an Istio sidecar serves itself and ``istio-init`` leaves out of the inbound redirection
#: (https://istio.io/latest/docs/ops/deployment/application-requirements/#ports-used-by-istio).
SIDECAR_OWN_PORTS: dict[int, str] = {
    15020: "istio-agent: merged Prometheus metrics and health",
    15021: "health checks",
    15090: "Envoy Prometheus telemetry",
}


class CallerKind(StrEnum):
    WORKLOAD = "workload"
    EXTERNAL = "external"
    KUBELET = "kubelet"
    APISERVER = "kube-apiserver"


class Transport(StrEnum):
    """What travels on the wire from the client side."""

    PLAINTEXT = "plaintext"
    ISTIO_MTLS = "istio-mtls"
    LINKERD_MTLS = "linkerd-mtls"
    TLS_ORIGINATED = "tls-originated"


@dataclass(frozen=True)
class FlowResult:
    """The predicted outcome of one flow and the chain of reasons that leads to it."""

    flow: Flow
    outcome: Outcome
    reasons: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        return "; ".join(self.reasons)

    @property
    def as_expected(self) -> bool | None:
        """Whether the outcome is the flow's ``expect`` (``None`` when the flow expects nothing).

        ``expect`` is an outcome (``ok``, ``reset``…) or an HTTP status: 2xx/3xx mean ``ok`` and 403
        means ``denied_403``."""
        if self.flow.expect is None:
            return None
        expect = self.flow.expect.lower()
        if expect.isdigit():
            wanted = Outcome.DENIED_403 if expect == "403" else Outcome.OK if expect[0] in "23" else None
            return wanted is self.outcome
        return expect == self.outcome.value


@dataclass(frozen=True)
class Caller:
    label: str
    kind: CallerKind
    workload: Workload | None = None
    enrolment: Enrolment = NO_PROXY
    ip: str | None = None
    in_cluster: bool = True


@dataclass(frozen=True)
class Target:
    label: str
    namespace: str
    service: str
    service_port: int
    workload: Workload
    target_port: int
    protocol: str
    host: str


class _Stop(Exception):
    """Internal: the flow's outcome is decided before the last step."""

    def __init__(self, outcome: Outcome, reason: str) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason


# ----- resolution --------------------------------------------------------------------------------------
def _pod_ip(wl: Workload | None) -> str | None:
    for pod in wl.pods if wl else []:
        ip = (pod.get("status") or {}).get("podIP")
        if ip:
            return str(ip)
    return None


def resolve_caller(view: MeshView, flow: Flow) -> Caller:
    """Who calls: a workload (with its enrolment and address) or a caller outside the mesh."""
    key = ("caller", flow.source)
    found = view.cache.get(key)
    if found is None:
        found = view.cache[key] = _resolve_caller(view, flow.source)
    caller: Caller = found
    return caller


def _resolve_caller(view: MeshView, source: str) -> Caller:
    if source == "kubelet":
        return Caller("kubelet", CallerKind.KUBELET)
    if source == "kube-apiserver":
        return Caller("kube-apiserver", CallerKind.APISERVER)
    if source.startswith("external:"):
        return Caller(source, CallerKind.EXTERNAL, in_cluster=False)
    ns, name = source.split("/", 1)
    wl = view.workload(ns, name)
    if wl is None:
        return Caller(source, CallerKind.WORKLOAD)
    return Caller(source, CallerKind.WORKLOAD, wl, workload_enrolment(view, wl), _pod_ip(wl))


def declared_protocol(port: Mapping[str, Any]) -> str:
    """A Service/ServiceEntry port's protocol: ``appProtocol`` wins over the ``<proto>-`` name prefix."""
    app = str(port.get("appProtocol") or "").lower()
    if app:
        return {"kubernetes.io/h2c": "http2", "kubernetes.io/ws": "http"}.get(app, app)
    prefix = str(port.get("name") or "").lower().split("-", 1)[0]
    return prefix if prefix in HTTP_PROTOCOLS | OPAQUE_PROTOCOLS else ""


def _service_target(view: MeshView, flow: Flow, svc: Obj, entry: Mapping[str, Any]) -> Target:
    backends = view.workloads_for_service(svc)
    if not backends:
        raise _Stop(Outcome.RESET, f"Service {flow.dest_host} selects no pods: no endpoints, connection refused")
    wl = backends[0]
    raw_target = entry.get("targetPort", entry.get("port"))
    target_port = wl.container_port(raw_target)
    if target_port is None:
        raise _Stop(Outcome.RESET, f"{wl.key} has no container port named {raw_target!r}: no endpoints")
    ns, name = flow.dest_host.split("/", 1)
    host = qualify_host(name, ns)
    return Target(f"{flow.dest_host}:{flow.port}", ns, name, flow.port, wl, target_port, declared_protocol(entry), host)


def resolve_target(view: MeshView, flow: Flow) -> Target:
    """The workload and container port behind ``<ns>/<service>:<port>`` (or ``<ns>/<workload>:<port>``)."""
    key = ("target", flow.to)
    found = view.cache.get(key)
    if found is None:
        try:
            found = _resolve_target(view, flow)
        except _Stop as stop:
            found = stop
        view.cache[key] = found
    if isinstance(found, _Stop):
        raise found
    target: Target = found
    return target


def target_resolution(view: MeshView, flow: Flow) -> Target | tuple[Outcome, str]:
    """``resolve_target``, or the outcome and reason where resolution stops, without raising."""
    try:
        return resolve_target(view, flow)
    except _Stop as stop:
        return stop.outcome, stop.reason


def _resolve_target(view: MeshView, flow: Flow) -> Target:
    """A Service port first (a Service selecting several workloads resolves to the first of them),
    else a workload of that name with the flow's port as its container port."""
    ns, name = flow.dest_host.split("/", 1)
    svc = view.services.get(f"{ns}/{name}")
    if svc is not None:
        for entry in (svc.get("spec") or {}).get("ports") or []:
            if int(entry.get("port", -1)) == flow.port:
                return _service_target(view, flow, svc, entry)
    wl = view.workload(ns, name)
    if wl is not None:
        return Target(f"{flow.dest_host}:{flow.port}", ns, name, flow.port, wl, flow.port, "", qualify_host(name, ns))
    if svc is not None:
        raise _Stop(Outcome.RESET, f"Service {flow.dest_host} has no port {flow.port}")
    raise _Stop(Outcome.RESET, f"no Service or workload {flow.dest_host}: the name does not resolve")


# ----- transport ---------------------------------------------------------------------------------------
def _describe_caller(caller: Caller) -> str:
    if caller.kind is CallerKind.EXTERNAL:
        return f"caller {caller.label} is outside the cluster (plaintext, no mesh identity)"
    if caller.kind is CallerKind.APISERVER:
        return "caller kube-apiserver is outside the mesh (its own TLS, no mesh identity)"
    if caller.kind is CallerKind.KUBELET:
        return "caller kubelet is outside the mesh (plaintext, no mesh identity)"
    if caller.workload is None:
        return f"caller {caller.label} is not in the inventory; assumed to have no proxy"
    if not caller.enrolment.meshed:
        return f"caller {caller.label} has no proxy ({'; '.join(caller.enrolment.reasons[-1:])})"
    return f"caller {caller.label} is meshed ({caller.enrolment.mesh.value}, {caller.enrolment.form.value})"


def _server_first_sniffed(flow: Flow, target: Target) -> bool:
    return flow.protocol is Protocol.SERVER_FIRST and target.protocol == ""


def _sidecar_transport(
    view: MeshView, client: Workload, target: Target, server: Enrolment, flow: Flow
) -> tuple[Transport, str]:
    sidecar = client_sidecar(view, client)
    if not egress_visible(sidecar, client.namespace, target.host, target.namespace):
        policy, source = outbound_policy(view, sidecar)
        if policy == "REGISTRY_ONLY":
            raise _Stop(
                Outcome.RESET, f"{ref(sidecar or {})} does not import {target.host} and {source} is REGISTRY_ONLY"
            )
        return Transport.PLAINTEXT, f"{ref(sidecar or {})} does not import {target.host}: passthrough sends plaintext"
    if _server_first_sniffed(flow, target):
        raise _Stop(
            Outcome.HANG,
            f"{target.label} declares no protocol: the client sidecar sniffs for the first bytes, "
            "which a server-first protocol never sends (name the port tcp-… or set appProtocol)",
        )
    dr = find_destination_rule(view, target.host, client_ns=client.namespace, dest_ns=target.namespace, client=client)
    tls, where = dr_tls(dr, target.service_port) if dr else (None, "")
    if tls is ClientTls.DISABLE:
        return Transport.PLAINTEXT, f"{where} sets DISABLE: the client sidecar sends plaintext"
    if tls is ClientTls.ISTIO_MUTUAL:
        return Transport.ISTIO_MTLS, f"{where} sets ISTIO_MUTUAL"
    if tls in (ClientTls.SIMPLE, ClientTls.MUTUAL):
        return Transport.TLS_ORIGINATED, f"{where} sets {tls.value}: the client sidecar originates TLS"
    return _auto_mtls(view, target, server)


def _auto_mtls(view: MeshView, target: Target, server: Enrolment) -> tuple[Transport, str]:
    if not view.mesh.enable_auto_mtls:
        return Transport.PLAINTEXT, "auto mTLS is disabled in mesh config and no DestinationRule sets TLS"
    if not server.mesh.is_istio:
        return Transport.PLAINTEXT, f"{target.workload.key} has no Istio proxy: auto mTLS sends plaintext"
    mode = effective_mode(view, target.workload, target.target_port, ambient=server.mesh is Mesh.ISTIO_AMBIENT)
    if mode.mode is MtlsMode.DISABLE:
        return Transport.PLAINTEXT, f"auto mTLS sends plaintext: {target.label} is DISABLE via {mode.source}"
    return Transport.ISTIO_MTLS, "auto mTLS: the server has an Istio proxy"


def client_transport(
    view: MeshView, caller: Caller, target: Target, server: Enrolment, flow: Flow
) -> tuple[Transport, str]:
    """What the caller side puts on the wire towards ``target``."""
    mesh = caller.enrolment.mesh if caller.enrolment.meshed else Mesh.NONE
    if mesh is Mesh.ISTIO_SIDECAR and caller.workload is not None:
        return _sidecar_transport(view, caller.workload, target, server, flow)
    if mesh is Mesh.ISTIO_AMBIENT:
        if server.mesh.is_istio:
            return Transport.ISTIO_MTLS, "ztunnel carries the connection over HBONE (mTLS)"
        return Transport.PLAINTEXT, f"{target.workload.key} is not in the Istio mesh: ztunnel sends plaintext"
    if mesh is Mesh.LINKERD:
        if server.mesh is Mesh.LINKERD:
            return Transport.LINKERD_MTLS, "linkerd-proxy to linkerd-proxy: mTLS"
        return Transport.PLAINTEXT, f"{target.workload.key} has no linkerd-proxy: Linkerd sends plaintext"
    return Transport.PLAINTEXT, ""


# ----- server side ----------------------------------------------------------------------------------------
def _istio_accepts(view: MeshView, transport: Transport, target: Target, server: Enrolment, flow: Flow) -> str:
    mode = effective_mode(view, target.workload, target.target_port, ambient=server.mesh is Mesh.ISTIO_AMBIENT)
    where = f"{target.label} (port {target.target_port}) is {mode.mode.value} via {mode.source}"
    if transport is Transport.TLS_ORIGINATED:
        raise _Stop(Outcome.TLS_ERROR, f"{where}; a sidecar-originated TLS connection carries no Istio certificate")
    if transport is Transport.ISTIO_MTLS:
        if mode.mode is MtlsMode.DISABLE:
            raise _Stop(Outcome.TLS_ERROR, f"{where}: the server proxy does not terminate mTLS")
        return where
    if mode.mode is MtlsMode.STRICT:
        raise _Stop(Outcome.RESET, f"{where}: plaintext is rejected, connection reset")
    # ztunnel takes HBONE on its own port and passes plaintext through without inspecting it
    sidecar = server.mesh is Mesh.ISTIO_SIDECAR
    if sidecar and mode.mode is MtlsMode.PERMISSIVE and flow.protocol is Protocol.SERVER_FIRST:
        raise _Stop(
            Outcome.HANG,
            f"{where}: PERMISSIVE waits for the client's first bytes to detect TLS, "
            "a server-first protocol waits for the server: the connection stalls",
        )
    return where


def server_accepts(view: MeshView, transport: Transport, target: Target, server: Enrolment, flow: Flow) -> str:
    """Raise ``_Stop`` when the server side refuses the transport; return the reason it accepts."""
    if server.mesh.is_istio:
        return _istio_accepts(view, transport, target, server, flow)
    if transport in (Transport.ISTIO_MTLS, Transport.TLS_ORIGINATED):
        owner = "linkerd-proxy" if server.mesh is Mesh.LINKERD else "the application (no proxy)"
        raise _Stop(
            Outcome.TLS_ERROR, f"{target.workload.key} cannot terminate {transport.value}: {owner} expects plaintext"
        )
    if server.mesh is Mesh.LINKERD and flow.protocol is Protocol.SERVER_FIRST and not _linkerd_opaque(view, target):
        raise _Stop(
            Outcome.HANG,
            f"{target.label}: linkerd-proxy detects the protocol from the client's first bytes; "
            "mark the port opaque (config.linkerd.io/opaque-ports)",
        )
    state = "meshed with Linkerd" if server.mesh is Mesh.LINKERD else "not meshed"
    return f"{target.workload.key} is {state}: accepts {transport.value}"


def _linkerd_opaque(view: MeshView, target: Target) -> bool:
    sources = [target.workload.template_annotations, view.namespace_annotations(target.namespace)]
    for source in sources:
        value = source.get("config.linkerd.io/opaque-ports")
        if value is not None:
            return str(target.target_port) in {p.strip() for p in value.split(",")}
    return target.target_port in LINKERD_OPAQUE_PORTS


# ----- authorization -----------------------------------------------------------------------------------------
def _principal(view: MeshView, caller: Caller) -> str | None:
    if caller.workload is None:
        return None
    return istio_principal(view.mesh.trust_domain, caller.workload.namespace, caller.workload.service_account)


def _waypoint(view: MeshView, target: Target) -> str | None:
    svc = view.services.get(f"{target.namespace}/{target.service}")
    name = (labels(svc).get("istio.io/use-waypoint") if svc else None) or view.namespace_labels(target.namespace).get(
        "istio.io/use-waypoint"
    )
    if not name or name == "none":
        return None
    gateways = view.objects("Gateway", target.namespace, "gateway.networking.k8s.io")
    return name if any(name_of(g) == name for g in gateways) else None


def _http_visible(flow: Flow, target: Target, caller: Caller) -> bool:
    return (
        flow.protocol in (Protocol.HTTP, Protocol.GRPC)
        and target.protocol not in OPAQUE_PROTOCOLS
        and caller.kind is not CallerKind.APISERVER
    )


def _denied(decision: authz.AuthzDecision, http: bool, l7_enforcer: bool, notes: list[str] | None = None) -> _Stop:
    outcome = Outcome.DENIED_403 if http and l7_enforcer else Outcome.RESET
    tail = "" if outcome is Outcome.RESET else " (RBAC: access denied)"
    return _Stop(outcome, "; ".join([*(notes or []), *decision.reasons]) + tail)


def _istio_authz(
    view: MeshView, caller: Caller, target: Target, server: Enrolment, transport: Transport, flow: Flow
) -> list[str]:
    principal = _principal(view, caller) if transport is Transport.ISTIO_MTLS else None
    http = _http_visible(flow, target, caller)
    req = authz.Request(principal, target.target_port, http, caller.ip, flow.method, flow.path, target.host)
    notes: list[str] = []
    if server.mesh is Mesh.ISTIO_AMBIENT:
        waypoint = _waypoint(view, target)
        if waypoint is not None:
            at_waypoint = authz.evaluate(
                authz.waypoint_policies(view, target.namespace, target.service, waypoint), req, view.mesh
            )
            notes.append(f"traffic to {target.service} goes through waypoint {target.namespace}/{waypoint} (L7)")
            if not at_waypoint.allowed:
                raise _denied(at_waypoint, http, True, notes)
            notes += at_waypoint.reasons
            waypoint_id = istio_principal(view.mesh.trust_domain, target.namespace, waypoint)
            req = authz.Request(waypoint_id, target.target_port, False, None, flow.method, flow.path, target.host)
        else:
            req = authz.Request(principal, target.target_port, False, caller.ip, flow.method, flow.path, target.host)
    decision = authz.evaluate(authz.workload_policies(view, target.workload), req, view.mesh)
    if not decision.allowed:
        raise _denied(decision, http, server.mesh is Mesh.ISTIO_SIDECAR)
    return notes + decision.reasons


def _linkerd_authz(view: MeshView, caller: Caller, target: Target, transport: Transport, flow: Flow) -> list[str]:
    identity = None
    if transport is Transport.LINKERD_MTLS and caller.workload is not None:
        identity = linkerd_identity(
            caller.workload.namespace,
            caller.workload.service_account,
            trust_domain=view.linkerd.trust_domain,
            control_ns=view.linkerd.namespace,
        )
    http = _http_visible(flow, target, caller) and not _linkerd_opaque(view, target)
    client = linkerd.LinkerdClient(identity, caller.ip, caller.in_cluster, http, flow.method, flow.path)
    decision = linkerd.decide(view, target.workload, target.target_port, client)
    if not decision.allowed:
        raise _denied(decision, http, True)
    return decision.reasons


# ----- probes and egress ----------------------------------------------------------------------------------------
def _probe(view: MeshView, flow: Flow, target: Target) -> FlowResult:
    server = workload_enrolment(view, target.workload)
    if server.mesh is Mesh.ISTIO_SIDECAR:
        rewrite = target.workload.template_annotations.get("sidecar.istio.io/rewriteAppHTTPProbers", "true")
        if rewrite.lower() != "false":
            return FlowResult(
                flow,
                Outcome.OK,
                [
                    "kubelet probes are rewritten to the sidecar agent (port 15020): "
                    "unaffected by mTLS and authorization"
                ],
            )
        if flow.protocol is Protocol.TCP:
            return FlowResult(flow, Outcome.OK, ["TCP probe connects to the sidecar's listener, which is always open"])
        caller = Caller("kubelet", CallerKind.KUBELET)
        return _finish(view, flow, caller, target, server, ["probe rewriting is disabled on this pod"])
    if server.mesh is Mesh.ISTIO_AMBIENT:
        return FlowResult(flow, Outcome.OK, ["ambient exempts kubelet probes from ztunnel (SNAT 169.254.7.127)"])
    if server.mesh is Mesh.LINKERD:
        return FlowResult(flow, Outcome.OK, ["Linkerd authorizes kubelet probes by default"])
    return FlowResult(flow, Outcome.OK, [f"{target.workload.key} has no proxy: the probe reaches the application"])


def _app_speaks_tls(flow: Flow, protocol: str) -> bool:
    if protocol in ("HTTP", "HTTP2", "GRPC"):
        return False
    return not (flow.protocol is Protocol.HTTP and flow.port == 80)


def _egress_with_entry(
    view: MeshView, caller: Caller, client: Workload, flow: Flow, found: tuple[Obj, Mapping[str, Any]]
) -> FlowResult:
    se, entry = found
    host, protocol = flow.dest_host, str(entry.get("protocol", "TCP")).upper()
    reasons = [_describe_caller(caller), f"{ref(se)} declares {host}:{flow.port} ({protocol})"]
    dr = find_destination_rule(view, host, client_ns=client.namespace, dest_ns=namespace_of(se), client=client)
    tls, where = dr_tls(dr, flow.port) if dr else (None, "")
    app_tls = _app_speaks_tls(flow, protocol)
    if tls in (ClientTls.SIMPLE, ClientTls.MUTUAL, ClientTls.ISTIO_MUTUAL) and app_tls:
        return FlowResult(
            flow,
            Outcome.TLS_ERROR,
            [
                *reasons,
                f"{where} sets {tls.value}: the sidecar originates TLS "
                "on top of the application's own TLS (double TLS); set tls.mode DISABLE for this port",
            ],
        )
    if tls is ClientTls.ISTIO_MUTUAL:
        return FlowResult(flow, Outcome.TLS_ERROR, [*reasons, f"{where} sets ISTIO_MUTUAL to a host outside the mesh"])
    if tls in (ClientTls.SIMPLE, ClientTls.MUTUAL):
        return FlowResult(flow, Outcome.OK, [*reasons, f"{where} originates TLS for the application's plaintext"])
    note = f"{where} sets DISABLE" if tls is ClientTls.DISABLE else "no DestinationRule sets TLS"
    carried = "the application's own TLS" if app_tls else "the application's plaintext"
    return FlowResult(flow, Outcome.OK, [*reasons, f"{note}: the sidecar passes {carried} through"])


def _egress(view: MeshView, flow: Flow, caller: Caller) -> FlowResult:
    head = _describe_caller(caller)
    if caller.enrolment.mesh is not Mesh.ISTIO_SIDECAR or caller.workload is None:
        return FlowResult(flow, Outcome.OK, [head, "no sidecar on the path: the application connects directly"])
    found = find_service_entry(view, flow.dest_host, flow.port)
    if found is not None:
        return _egress_with_entry(view, caller, caller.workload, flow, found)
    reasons = [head]
    partial = service_entry_for_host(view, flow.dest_host)
    if partial is not None:
        reasons.append(f"{ref(partial)} declares {flow.dest_host} but not port {flow.port}")
    policy, source = outbound_policy(view, client_sidecar(view, caller.workload))
    if policy == "REGISTRY_ONLY":
        return FlowResult(
            flow, Outcome.RESET, [*reasons, f"{source} is REGISTRY_ONLY: unknown hosts go to BlackHoleCluster"]
        )
    if flow.protocol is Protocol.SERVER_FIRST:
        return FlowResult(
            flow,
            Outcome.HANG,
            [
                *reasons,
                "undeclared destination port is sniffed; a server-first "
                "protocol never sends first bytes: add a ServiceEntry with protocol TCP",
            ],
        )
    return FlowResult(
        flow, Outcome.OK, [*reasons, f"{source} is ALLOW_ANY: PassthroughCluster forwards the application's bytes"]
    )


# ----- entry points -------------------------------------------------------------------------------------------
def _finish(
    view: MeshView, flow: Flow, caller: Caller, target: Target, server: Enrolment, head: list[str]
) -> FlowResult:
    reasons = [*head, _describe_caller(caller)]
    try:
        transport, why = client_transport(view, caller, target, server, flow)
        if why:
            reasons.append(why)
        reasons.append(server_accepts(view, transport, target, server, flow))
        if server.mesh.is_istio:
            reasons += _istio_authz(view, caller, target, server, transport, flow)
        elif server.mesh is Mesh.LINKERD:
            reasons += _linkerd_authz(view, caller, target, transport, flow)
    except _Stop as stop:
        return FlowResult(flow, stop.outcome, [*reasons, stop.reason])
    return FlowResult(flow, Outcome.OK, reasons)


def evaluate_flow(view: MeshView, flow: Flow) -> FlowResult:
    """Predict what the caller of ``flow`` observes on the platform described by ``view``."""
    caller = resolve_caller(view, flow)
    if flow.is_external_destination:
        return _egress(view, flow, caller)
    try:
        target = resolve_target(view, flow)
    except _Stop as stop:
        return FlowResult(flow, stop.outcome, [stop.reason])
    if caller.kind is CallerKind.KUBELET:
        return _probe(view, flow, target)
    server = workload_enrolment(view, target.workload)
    if server.mesh is Mesh.ISTIO_SIDECAR and target.target_port in SIDECAR_OWN_PORTS:
        what = SIDECAR_OWN_PORTS[target.target_port]
        reason = (f"port {target.target_port} of {target.workload.key} is the sidecar's own ({what}), excluded "
                  "from the inbound redirection: no mTLS or authorization applies")
        return FlowResult(flow, Outcome.OK, [_describe_caller(caller), reason])
    return _finish(view, flow, caller, target, server, [])


def evaluate_all(view: MeshView, flows: Iterable[Flow]) -> list[FlowResult]:
    """Evaluate many flows against one view (its caches make repeated lookups cheap)."""
    return [evaluate_flow(view, f) for f in flows]
