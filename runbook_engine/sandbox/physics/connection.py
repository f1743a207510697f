"""Connection physics: what the caller of a flow observes, and why.

The client side decides what it sends (plaintext, Istio mTLS, Linkerd mTLS, or TLS of its own):
an Istio sidecar originates mTLS when the destination is meshed (auto mTLS, by the endpoint's
``security.istio.io/tlsMode=istio`` label) or a DestinationRule says ``ISTIO_MUTUAL``, and sends
plaintext under ``tls.mode: DISABLE``; ztunnel always speaks mTLS (HBONE) to meshed destinations;
Linkerd proxies speak mTLS to Linkerd proxies. The server side applies its effective
PeerAuthentication (STRICT resets plaintext) and then authorization (Istio or Linkerd): a denial
is HTTP 403 ``RBAC: access denied`` where the proxy speaks HTTP, a reset otherwise.
Callers from outside the mesh — kubelet probes, the kube-apiserver calling webhooks, external
clients — are plaintext. HTTP probes are rewritten through pilot-agent and keep working under
STRICT (https://istio.io/latest/docs/ops/configuration/mesh/app-health-check/); ztunnel lets the
node's probes through (https://istio.io/latest/docs/ambient/architecture/traffic-redirection/).
A sidecar detects the protocol of every outbound connection to a port that does not declare one
(a Service port named ``<protocol>[-suffix]`` or with ``appProtocol``) by waiting for the client's
first bytes; a server-first protocol (MySQL, SMTP, a Postgres pooler that greets first) never sends
them and ``meshConfig.protocolDetectionTimeout`` is ``0s`` (no timeout) by default, so the caller hangs,
whatever the server's enrolment
(https://istio.io/latest/docs/ops/deployment/application-requirements/#server-first-protocols,
https://istio.io/latest/docs/ops/configuration/traffic-management/protocol-selection/).

Egress to ``external:host:port`` from a sidecar: a host without a ServiceEntry goes to
PassthroughCluster under the default ``outboundTrafficPolicy: ALLOW_ANY`` with the application's bytes
untouched (BlackHoleCluster under ``REGISTRY_ONLY``), its undeclared port still sniffed as above
(https://istio.io/latest/docs/tasks/traffic-management/egress/egress-control/). A ServiceEntry
registers the host and declares the port's protocol; a DestinationRule for that host with
``tls.mode`` SIMPLE/MUTUAL/ISTIO_MUTUAL then makes the sidecar originate TLS, which collides with an
application that speaks TLS itself (double TLS: the handshake fails,
https://istio.io/latest/docs/ops/common-problems/network-issues/#double-tls); ``tls.mode: DISABLE`` on
that port lets the application's own TLS pass through. Each port is judged separately.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from runbook_engine.kube.flow import Flow, Outcome, Protocol
from runbook_engine.sandbox.physics import objects as o
from runbook_engine.sandbox.physics.control_plane import ControlPlane
from runbook_engine.sandbox.physics.faults import MeshFaults
from runbook_engine.sandbox.physics.identity import linkerd_identity
from runbook_engine.sandbox.physics.istio_authz import Enforcer, Request, Waypoint, authorize
from runbook_engine.sandbox.physics.istio_authz import glob as host_glob
from runbook_engine.sandbox.physics.linkerd_policy import LinkerdClient, authorize_linkerd
from runbook_engine.sandbox.physics.peer_auth import MtlsMode, effective_mode
from runbook_engine.sandbox.physics.svid import IdentityService, identity_status
from runbook_engine.sandbox.physics.topology import (
    EXTERNAL_CLIENT_IP,
    NODE_IP,
    Dataplane,
    MeshView,
    Peer,
    PeerKind,
    Target,
    newest,
    pod_dataplane,
    pod_ready,
)

DR_VERSIONS = ("networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3")
HTTP_PROTOCOLS = (Protocol.HTTP, Protocol.GRPC)
#: Protocols a Service port can declare by name prefix or appProtocol; any other port is sniffed.
DECLARABLE_PROTOCOLS = frozenset(
    {"http", "http2", "https", "grpc", "grpc-web", "tcp", "tls", "mongo", "mysql", "redis", "udp"}
)
ORIGINATING_TLS_MODES = ("SIMPLE", "MUTUAL", "ISTIO_MUTUAL")


class Wire(StrEnum):
    """What leaves the client side."""

    PLAIN = "plaintext"
    ISTIO_MTLS = "istio-mtls"
    LINKERD_MTLS = "linkerd-mtls"
    OTHER_TLS = "tls"  # a DestinationRule SIMPLE/MUTUAL: TLS that is not the mesh's


@dataclass
class FlowResult:
    """The outcome of one flow with its reason chain and what the proxies on the way saw."""

    outcome: Outcome
    reasons: list[str]
    client: Peer | None = None
    target: Target | None = None
    wire: Wire = Wire.PLAIN
    server_saw_request: bool = False  # the server-side proxy handled it (for telemetry)
    http_status: int = 0  # what an HTTP client gets (0: no HTTP response)
    extra: dict[str, Any] = field(default_factory=dict)


def _done(outcome: Outcome, reasons: list[str], **kw: Any) -> FlowResult:
    status = {Outcome.OK: 200, Outcome.DENIED_403: 403}.get(outcome, 0)
    return FlowResult(outcome, reasons, http_status=kw.pop("http_status", status), **kw)


# -- resolution ------------------------------------------------------------------------------------
def resolve_client(view: MeshView, source: str) -> Peer | None:
    if source == "kubelet":
        return Peer(PeerKind.KUBELET, ip=NODE_IP)
    if source == "kube-apiserver":
        return Peer(PeerKind.APISERVER, ip=NODE_IP)
    if source.startswith("external:"):
        return Peer(PeerKind.EXTERNAL, workload=source.removeprefix("external:"), ip=EXTERNAL_CLIENT_IP)
    ns, _, workload = source.partition("/")
    pod = newest([p for p in view.workload_pods(ns, workload) if o.is_running(p)])
    return view.peer_for_pod(pod) if pod is not None else None


def resolve_service(view: MeshView, namespace: str, name: str, port: int) -> tuple[Target | None, str]:
    """The service port's target: the pod that answers (newest ready endpoint) and its port."""
    svc = view.cp.store.peek("v1", "Service", namespace, name)
    if svc is None:
        return None, f"service {namespace}/{name} does not exist"
    entry = next((p for p in o.spec(svc).get("ports") or [] if int(p.get("port", 0)) == port), None)
    if entry is None:
        return None, f"service {namespace}/{name} has no port {port}"
    pods = [p for p in view.service_pods(svc) if pod_ready(p)]
    pod = newest(pods)
    if pod is None:
        return None, f"service {namespace}/{name} has no ready endpoints"
    target_port = _target_port(entry.get("targetPort", port), pod)
    return Target(
        host=f"{name}.{namespace}.svc.cluster.local",
        port=port,
        namespace=namespace,
        service=name,
        target_port=target_port,
        port_name=str(entry.get("name", "")),
        app_protocol=str(entry.get("appProtocol") or ""),
        pod=pod,
        workload=o.workload_name(pod),
        dataplane=pod_dataplane(pod),
    ), ""


def _target_port(value: Any, pod: o.Obj) -> int:
    if isinstance(value, int) or str(value).isdigit():
        return int(value)
    for c in o.containers(pod):
        for p in c.get("ports") or []:
            if p.get("name") == value:
                return int(p.get("containerPort", 0))
    return 0


def resolve_target(view: MeshView, flow: Flow) -> tuple[Target | None, str]:
    if flow.is_external_destination:
        return Target(host=flow.dest_host, port=flow.port, external=True), ""
    return resolve_service(view, flow.dest_namespace or "", flow.dest_service, flow.port)


# -- DestinationRules ------------------------------------------------------------------------------
def _dr_host_matches(dr: o.Obj, fqdn: str) -> bool:
    """Short names in a DestinationRule's host are relative to the rule's namespace."""
    host = str(o.spec(dr).get("host", ""))
    if fqdn.endswith(".svc.cluster.local") and "*" not in host:
        if "." not in host:
            host = f"{host}.{o.namespace_of(dr)}.svc.cluster.local"
        elif not host.endswith(".cluster.local"):
            host = f"{host}.svc.cluster.local"
    return host_glob(host, fqdn) if host.startswith("*") else host == fqdn


def destination_rule(view: MeshView, client_ns: str, fqdn: str) -> o.Obj | None:
    """The DestinationRule that applies: client namespace, then the service's, then the root's."""
    target_ns = fqdn.split(".")[1] if fqdn.endswith(".svc.cluster.local") else ""
    rules = [d for d in view.kinds("DestinationRule", *DR_VERSIONS) if _dr_host_matches(d, fqdn)]
    for ns in (client_ns, target_ns, view.root_namespace):
        found = [d for d in rules if o.namespace_of(d) == ns]
        if found:
            return sorted(found, key=lambda d: -len(str(o.spec(d).get("host", ""))))[0]
    return None


def dr_tls_mode(dr: o.Obj | None, port: int) -> str | None:
    if dr is None:
        return None
    policy = o.spec(dr).get("trafficPolicy") or {}
    for setting in policy.get("portLevelSettings") or []:
        if int((setting.get("port") or {}).get("number", -1)) == port and "tls" in setting:
            return str((setting.get("tls") or {}).get("mode", "DISABLE")).upper()
    tls = policy.get("tls")
    return str(tls.get("mode", "DISABLE")).upper() if isinstance(tls, dict) else None


# -- the physics -----------------------------------------------------------------------------------
class ConnectionPhysics:
    """Evaluates connections over one ``MeshView``."""

    def __init__(self, view: MeshView, identities: IdentityService | None = None) -> None:
        self.view = view
        self.identities = identities  # when given, expired certificates (istiod down) break mTLS

    def _identity_problem(self, pod: o.Obj) -> str | None:
        status = identity_status(self.view, pod)
        if not status.available:
            return status.reason
        return self.identities.expired(self.view, pod) if self.identities is not None else None

    def flow(self, flow: Flow) -> FlowResult:
        client = resolve_client(self.view, flow.source)
        if client is None:
            return _done(Outcome.HANG, [f"{flow.source} has no running pod to send from"])
        target, why = resolve_target(self.view, flow)
        if target is None:
            return _done(Outcome.RESET, [why], client=client)
        return self.connect(client, target, flow.protocol, flow.path, flow.method)

    def connect(
        self, client: Peer, target: Target, protocol: Protocol, path: str = "/", method: str = "GET"
    ) -> FlowResult:
        broken = self._dataplane_broken(client, target, protocol)
        if broken is not None:
            return broken
        if target.external:
            return self._egress(client, target, protocol)
        if client.kind is PeerKind.KUBELET:
            probe = self._kubelet_probe(client, target, protocol)
            if probe is not None:
                return probe
        sniffed = self._sniffing_stalls(client, target, protocol)
        if sniffed is not None:
            return sniffed
        wire = self._wire(client, target)
        no_identity = self._client_without_identity(client, target, wire, protocol)
        if no_identity is not None:
            return no_identity
        if target.dataplane.istio:
            return self._istio_inbound(client, target, protocol, wire, path, method)
        if target.dataplane is Dataplane.LINKERD:
            return self._linkerd_inbound(client, target, protocol, wire)
        if wire in (Wire.ISTIO_MTLS, Wire.OTHER_TLS):
            reason = (
                f"client sends TLS ({wire.value}, DestinationRule) to {target.fqdn}, "
                "whose workload has no proxy and speaks plaintext"
            )
            return self._failed(Outcome.TLS_ERROR, [reason], client, target, wire, protocol)
        return _done(
            Outcome.OK,
            [f"{target.workload} has no proxy: plaintext accepted"],
            client=client,
            target=target,
            wire=wire,
        )

    # -- pieces ------------------------------------------------------------------------------------
    def _dataplane_broken(self, client: Peer, target: Target, protocol: Protocol) -> FlowResult | None:
        """A side whose node proxy is gone, or a server proxy without a certificate, takes no traffic."""
        for side, pod, dp in (
            ("client", client.pod, client.dataplane),
            ("server", target.pod, target.dataplane),
        ):
            if pod is None or dp is not Dataplane.AMBIENT:
                continue
            node = o.node_of(pod)
            if node not in self.view.ztunnel_nodes:
                reason = f"{side} pod is redirected to ztunnel, but no ztunnel runs on node {node}"
                return _done(Outcome.RESET, [reason], client=client, target=target)
        if target.pod is not None and target.dataplane in (Dataplane.SIDECAR, Dataplane.LINKERD):
            problem = self._identity_problem(target.pod)
            if problem is not None:
                reason = f"server proxy has no valid certificate: {problem}"
                return self._failed(Outcome.TLS_ERROR, [reason], client, target, Wire.PLAIN, protocol)
        return None

    def _client_without_identity(
        self, client: Peer, target: Target, wire: Wire, protocol: Protocol
    ) -> FlowResult | None:
        if client.pod is None or wire not in (Wire.ISTIO_MTLS, Wire.LINKERD_MTLS):
            return None
        problem = None if client.dataplane is Dataplane.AMBIENT else self._identity_problem(client.pod)
        if problem is None:
            return None
        reason = f"client proxy has no valid certificate to originate mTLS: {problem}"
        return self._failed(Outcome.TLS_ERROR, [reason], client, target, wire, protocol)

    @staticmethod
    def _sniffing_stalls(client: Peer, target: Target, protocol: Protocol) -> FlowResult | None:
        """A client sidecar sniffing an undeclared port waits forever for a server-first protocol."""
        if client.dataplane is not Dataplane.SIDECAR or protocol is not Protocol.SERVER_FIRST:
            return None
        if declares_protocol(target.port_name, target.app_protocol):
            return None
        reason = (
            f"{target.fqdn}:{target.port} declares no protocol (port name {target.port_name!r}, no "
            "appProtocol): the client sidecar waits for the first bytes to detect it, and a server-first "
            "protocol never sends them (protocolDetectionTimeout 0s)"
        )
        return _done(Outcome.HANG, [reason], client=client, target=target)

    def _wire(self, client: Peer, target: Target) -> Wire:
        if client.dataplane is Dataplane.SIDECAR:
            mode = dr_tls_mode(destination_rule(self.view, client.namespace, target.fqdn), target.port)
            if mode == "DISABLE":
                return Wire.PLAIN
            if mode == "ISTIO_MUTUAL":
                return Wire.ISTIO_MTLS
            if mode in ("SIMPLE", "MUTUAL"):
                return Wire.OTHER_TLS
            meshed = target.dataplane is Dataplane.AMBIENT or (
                o.labels(target.pod).get(o.ISTIO_TLS_MODE_LABEL) == "istio"
            )
            return Wire.ISTIO_MTLS if meshed else Wire.PLAIN  # auto mTLS
        if client.dataplane is Dataplane.AMBIENT:
            return Wire.ISTIO_MTLS if target.dataplane.istio else Wire.PLAIN
        if client.dataplane is Dataplane.LINKERD and target.dataplane is Dataplane.LINKERD:
            return Wire.LINKERD_MTLS
        return Wire.PLAIN

    @staticmethod
    def _http_proxy(client: Peer, protocol: Protocol) -> bool:
        return client.dataplane is Dataplane.SIDECAR and protocol in HTTP_PROTOCOLS

    def _kubelet_probe(self, client: Peer, target: Target, protocol: Protocol) -> FlowResult | None:
        pod = target.pod or {}
        if target.dataplane is Dataplane.SIDECAR:
            if protocol in HTTP_PROTOCOLS and o.annotations_of(pod).get(o.ISTIO_REWRITE_PROBES) != "false":
                reason = "HTTP probe rewritten by the sidecar injector and served by pilot-agent on :15020"
                return _done(Outcome.OK, [reason], client=client, target=target)
            if protocol not in HTTP_PROTOCOLS:
                # https://istio.io/latest/docs/ops/configuration/mesh/app-health-check/ : every
                # redirected port looks open while the sidecar runs
                return _done(
                    Outcome.OK,
                    ["the sidecar accepts the kubelet's TCP probe connection"],
                    client=client,
                    target=target,
                )
            return None
        if target.dataplane is Dataplane.AMBIENT:
            return _done(
                Outcome.OK,
                ["ztunnel lets the kubelet's probes from the node through"],
                client=client,
                target=target,
            )
        return None

    def _istio_inbound(
        self, client: Peer, target: Target, protocol: Protocol, wire: Wire, path: str, method: str
    ) -> FlowResult:
        pod = target.pod or {}
        eff = effective_mode(self.view, pod, target.target_port)
        mode = eff.mode
        if target.dataplane is Dataplane.AMBIENT and mode is MtlsMode.DISABLE:
            mode = MtlsMode.PERMISSIVE
        reasons = [f"server mTLS mode {mode.value} ({eff.source}); client sends {wire.value}"]
        failure = self._mtls_gate(mode, wire)
        if failure is not None:
            outcome, why = failure
            return self._failed(outcome, [*reasons, why], client, target, wire, protocol)
        if (
            target.dataplane is Dataplane.SIDECAR
            and mode is MtlsMode.PERMISSIVE
            and wire is Wire.PLAIN
            and protocol is Protocol.SERVER_FIRST
        ):
            # https://istio.io/latest/docs/ops/common-problems/network-issues/#mysql-connectivity-troubleshooting
            why = (
                "PERMISSIVE inspects the client's first bytes for TLS, and a server-first client sends "
                "none: the connection stalls"
            )
            return _done(Outcome.HANG, [*reasons, why], client=client, target=target, wire=wire)
        principal = ""
        if wire is Wire.ISTIO_MTLS and client.pod is not None:
            td = self._client_trust_domain(client)
            principal = f"{td}/ns/{client.namespace}/sa/{client.service_account}"
        request = Request(
            principal,
            client.ip,
            target.target_port,
            _hosts(target),
            method.upper(),
            path,
            http=protocol in HTTP_PROTOCOLS,
        )
        return self._authorize(client, target, wire, protocol, request, reasons)

    @staticmethod
    def _mtls_gate(mode: MtlsMode, wire: Wire) -> tuple[Outcome, str] | None:
        """What the server's inbound listener does with what the client sends, before authorization."""
        if wire is Wire.ISTIO_MTLS and mode is MtlsMode.DISABLE:
            return Outcome.TLS_ERROR, "PeerAuthentication DISABLE but the client originates mTLS"
        if wire is Wire.OTHER_TLS:
            return Outcome.TLS_ERROR, "non-mesh TLS to a mesh listener fails the handshake"
        if wire is not Wire.ISTIO_MTLS and mode is MtlsMode.STRICT:
            return Outcome.RESET, "STRICT rejects plaintext: connection reset"
        return None

    def _failed(
        self,
        outcome: Outcome,
        reasons: list[str],
        client: Peer,
        target: Target,
        wire: Wire,
        protocol: Protocol,
    ) -> FlowResult:
        """A failed connection; an HTTP client behind a sidecar gets a 503 from its own proxy."""
        status = 503 if self._http_proxy(client, protocol) else 0
        return _done(outcome, reasons, client=client, target=target, wire=wire, http_status=status)

    def _authorize(
        self,
        client: Peer,
        target: Target,
        wire: Wire,
        protocol: Protocol,
        request: Request,
        reasons: list[str],
    ) -> FlowResult:
        waypoint = self._waypoint(target)
        enforcer = Enforcer.SIDECAR if target.dataplane is Dataplane.SIDECAR else Enforcer.ZTUNNEL
        if waypoint is not None:
            enforcer = Enforcer.WAYPOINT
            reasons.append(f"traffic goes through waypoint {waypoint.namespace}/{waypoint.name}")
        decision = authorize(self.view, target.pod or {}, request, enforcer, waypoint)
        reasons.append(decision.reason)
        common: dict[str, Any] = {"client": client, "target": target, "wire": wire}
        if decision.allowed:
            return _done(Outcome.OK, reasons, server_saw_request=True, **common)
        if request.http and enforcer.l7:
            return _done(
                Outcome.DENIED_403, [*reasons, "RBAC: access denied"], server_saw_request=True, **common
            )
        return self._failed(
            Outcome.RESET,
            [*reasons, "authorization denied the connection: reset"],
            client,
            target,
            wire,
            protocol,
        )

    def _waypoint(self, target: Target) -> Waypoint | None:
        """The waypoint of an ambient service: ``istio.io/use-waypoint`` on the service or its namespace."""
        if target.dataplane is not Dataplane.AMBIENT or not target.service:
            return None
        service = self.view.cp.store.peek("v1", "Service", target.namespace, target.service)
        name = o.labels(service).get(o.USE_WAYPOINT_LABEL) or o.labels(
            self.view.namespaces.get(target.namespace)
        ).get(o.USE_WAYPOINT_LABEL)
        if not name or name == "none":
            return None
        if self.view.cp.store.peek("gateway.networking.k8s.io/v1", "Gateway", target.namespace, name) is None:
            return None
        return Waypoint(target.namespace, name, target.service)

    def _client_trust_domain(self, client: Peer) -> str:
        from runbook_engine.sandbox.physics.svid import uses_spire

        if client.pod is not None and uses_spire(client.pod):
            return self.view.cp.spire_trust_domain()
        return self.view.trust_domain

    def _linkerd_inbound(self, client: Peer, target: Target, protocol: Protocol, wire: Wire) -> FlowResult:
        identity = (
            linkerd_identity(client.namespace, client.service_account) if wire is Wire.LINKERD_MTLS else ""
        )
        lc = LinkerdClient(
            identity, client.ip, kubelet_probe=client.kind is PeerKind.KUBELET and protocol in HTTP_PROTOCOLS
        )
        decision = authorize_linkerd(self.view, target.pod or {}, target.target_port, lc)
        common: dict[str, Any] = {"client": client, "target": target, "wire": wire}
        reasons = [f"client sends {wire.value} to a Linkerd proxy", decision.reason]
        if decision.allowed:
            return _done(Outcome.OK, reasons, server_saw_request=True, **common)
        if protocol in HTTP_PROTOCOLS:
            return _done(Outcome.DENIED_403, reasons, server_saw_request=True, **common)
        return _done(Outcome.RESET, [*reasons, "unauthorized TCP connection: reset"], **common)

    def _egress(self, client: Peer, target: Target, protocol: Protocol) -> FlowResult:
        common: dict[str, Any] = {"client": client, "target": target}
        if client.dataplane is not Dataplane.SIDECAR:
            return _done(
                Outcome.OK,
                [f"{client.label} has no sidecar: its TLS reaches {target.host} untouched"],
                **common,
            )
        registered = _service_entry_covers(self.view, target.host, target.port)
        if not registered:
            return self._passthrough(client, target, protocol)
        if protocol in HTTP_PROTOCOLS:
            return _done(Outcome.OK, ["plain HTTP egress through the sidecar"], **common)
        dr = destination_rule(self.view, client.namespace, target.host)
        mode = dr_tls_mode(dr, target.port)
        where = f"DestinationRule {o.namespace_of(dr or {})}/{o.name_of(dr or {})}"
        if mode in ORIGINATING_TLS_MODES:
            return _done(
                Outcome.TLS_ERROR,
                [
                    f"{where} tls.mode {mode} on port {target.port}: the sidecar originates TLS over the "
                    f"client's own TLS to {target.host}:{target.port} (double TLS)"
                ],
                **common,
            )
        why = f"{where} tls.mode DISABLE" if mode == "DISABLE" else "no DestinationRule originates TLS"
        return _done(
            Outcome.OK,
            [f"ServiceEntry registers {target.host}:{target.port}; {why}: the client's TLS passes through"],
            **common,
        )

    def _passthrough(self, client: Peer, target: Target, protocol: Protocol) -> FlowResult:
        """Egress to a host no ServiceEntry registers: BlackHoleCluster or PassthroughCluster."""
        common: dict[str, Any] = {"client": client, "target": target}
        if self.view.cp.registry_only():
            return _done(
                Outcome.RESET,
                [
                    f"outboundTrafficPolicy REGISTRY_ONLY and no ServiceEntry for "
                    f"{target.host}:{target.port}: BlackHoleCluster"
                ],
                http_status=502,
                **common,
            )
        if protocol is Protocol.SERVER_FIRST:
            return _done(
                Outcome.HANG,
                [
                    f"no ServiceEntry declares {target.host}:{target.port}: the sidecar sniffs the "
                    "undeclared port for the client's first bytes, which a server-first protocol never sends"
                ],
                **common,
            )
        return _done(
            Outcome.OK,
            [f"ALLOW_ANY: PassthroughCluster forwards the client's bytes to {target.host}:{target.port} untouched"],
            **common,
        )


def _hosts(target: Target) -> tuple[str, ...]:
    short = f"{target.service}.{target.namespace}"
    return (
        target.fqdn,
        short,
        target.service,
        f"{target.fqdn}:{target.port}",
        f"{short}:{target.port}",
        f"{target.service}:{target.port}",
    )


def declares_protocol(port_name: str, app_protocol: str) -> bool:
    """Whether a Service port selects its protocol explicitly (``appProtocol`` or a name prefix)."""
    if app_protocol:
        return True
    return port_name.lower().split("-", 1)[0] in DECLARABLE_PROTOCOLS


def _service_entry_covers(view: MeshView, host: str, port: int) -> bool:
    for se in view.kinds("ServiceEntry", *DR_VERSIONS):
        spec = o.spec(se)
        hosts_ok = any(
            host_glob(str(h), host) if str(h).startswith("*") else str(h) == host
            for h in spec.get("hosts") or []
        )
        if hosts_ok and any(int(p.get("number", -1)) == port for p in spec.get("ports") or []):
            return True
    return False


def evaluate_flow(store: Any, flow: Flow, faults: MeshFaults | None = None) -> tuple[Outcome, list[str]]:
    """What the flow's caller observes on the sandbox right now, with the reason chain.

    Certificate expiry is judged only by ``MeshPhysics.evaluate``, which knows the issued certificates.
    """
    view = MeshView.take(ControlPlane(store, faults or MeshFaults()))
    result = ConnectionPhysics(view).flow(flow)
    return result.outcome, result.reasons
