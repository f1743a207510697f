"""Istio transport security: the mTLS mode a server port accepts and the TLS settings a client uses.

Server side, PeerAuthentication (https://istio.io/latest/docs/reference/config/security/
peer_authentication/ and https://istio.io/latest/docs/concepts/security/#peer-authentication):

- precedence: workload (selector) policy > namespace-wide policy > mesh-wide policy (no selector, in
  the root namespace from mesh config ``rootNamespace``, default ``istio-system``) > PERMISSIVE;
- ``UNSET`` inherits the parent's mode; ``portLevelMtls`` is keyed by the workload (container) port
  and only honoured on policies with a workload selector;
- policies with a selector in the root namespace are ignored;
- when several policies sit at the same level, the oldest (``creationTimestamp``) wins;
- ambient (ztunnel) cannot DISABLE mTLS: such policies are ignored
  (https://istio.io/latest/docs/ambient/usage/l4-policy/#peer-authentication).

Client side, DestinationRule TLS (https://istio.io/latest/docs/reference/config/networking/
destination-rule/#ClientTLSSettings): the rule for a host is looked up in the client's namespace,
then the destination's, then the root namespace (https://istio.io/latest/docs/ops/best-practices/
traffic-management/#cross-namespace-configuration); within a namespace the most specific host wins.
``portLevelSettings`` for the service port override the top-level ``tls``. ``exportTo`` and subsets
are not modelled. Short hosts are qualified with the rule's namespace and ``svc.cluster.local``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from runbook_engine.kube.selectors import selector_from_object
from runbook_engine.mesh.model import MeshView, Obj, Workload, age_key, ref

CLUSTER_DOMAIN = "svc.cluster.local"


class MtlsMode(StrEnum):
    UNSET = "UNSET"
    DISABLE = "DISABLE"
    PERMISSIVE = "PERMISSIVE"
    STRICT = "STRICT"


class ClientTls(StrEnum):
    """DestinationRule ``trafficPolicy.tls.mode``."""

    DISABLE = "DISABLE"
    SIMPLE = "SIMPLE"
    MUTUAL = "MUTUAL"
    ISTIO_MUTUAL = "ISTIO_MUTUAL"


@dataclass(frozen=True)
class ModeResolution:
    """The effective mTLS mode of one workload port, and where it comes from."""

    mode: MtlsMode
    source: str
    reasons: list[str] = field(default_factory=list)


def _mode(value: Any) -> MtlsMode:
    text = str(value or "UNSET").upper()
    return MtlsMode(text) if text in MtlsMode.__members__ else MtlsMode.UNSET


def _pa_mode(pa: Mapping[str, Any]) -> MtlsMode:
    return _mode(((pa.get("spec") or {}).get("mtls") or {}).get("mode"))


def _has_selector(pa: Mapping[str, Any]) -> bool:
    return bool((pa.get("spec") or {}).get("selector"))


def _policies(view: MeshView, ns: str) -> tuple[Obj | None, list[Obj]]:
    """(oldest namespace-wide policy, selector policies oldest first) of one namespace."""
    key = ("pa", ns)
    if key not in view.cache:
        items = sorted(view.objects("PeerAuthentication", ns), key=age_key)
        ns_wide = next((p for p in items if not _has_selector(p)), None)
        root = ns == view.mesh.root_namespace
        selected = [] if root else [p for p in items if _has_selector(p)]
        view.cache[key] = (ns_wide, selected)
    cached: tuple[Obj | None, list[Obj]] = view.cache[key]
    return cached


def workload_policy(view: MeshView, wl: Workload) -> Obj | None:
    """The oldest selector PeerAuthentication that selects the workload's pods."""
    _, selected = _policies(view, wl.namespace)
    pod_labels = wl.template_labels
    for pa in selected:
        if selector_from_object((pa.get("spec") or {}).get("selector")).matches(pod_labels):
            return pa
    return None


def _port_mode(pa: Mapping[str, Any], port: int) -> MtlsMode:
    levels = (pa.get("spec") or {}).get("portLevelMtls") or {}
    entry = levels.get(port, levels.get(str(port)))
    return _mode((entry or {}).get("mode")) if entry is not None else MtlsMode.UNSET


def effective_mode(view: MeshView, wl: Workload, target_port: int | None, *, ambient: bool = False) -> ModeResolution:
    """Resolve the mTLS mode of ``wl`` on container port ``target_port``."""
    key = ("mode", wl.key, target_port, ambient)
    cached = view.cache.get(key)
    if cached is not None:
        result: ModeResolution = cached
        return result
    mesh_pa, _ = _policies(view, view.mesh.root_namespace)
    ns_pa = _policies(view, wl.namespace)[0] if wl.namespace != view.mesh.root_namespace else None
    wl_pa = workload_policy(view, wl)
    mode, source, reasons = MtlsMode.PERMISSIVE, "no PeerAuthentication (Istio default PERMISSIVE)", []
    for level, pa in (("mesh-wide", mesh_pa), ("namespace", ns_pa), ("workload", wl_pa)):
        if pa is None:
            continue
        pa_mode = _pa_mode(pa)
        if pa_mode is MtlsMode.UNSET:
            reasons.append(f"{ref(pa)} ({level}) is UNSET and inherits")
        elif ambient and pa_mode is MtlsMode.DISABLE:
            reasons.append(f"{ref(pa)} ({level}) DISABLE is ignored in ambient mode")
        else:
            mode, source = pa_mode, f"{ref(pa)} ({level})"
    if wl_pa is not None and target_port is not None:
        port_mode = _port_mode(wl_pa, target_port)
        if port_mode is not MtlsMode.UNSET and not (ambient and port_mode is MtlsMode.DISABLE):
            mode, source = port_mode, f"{ref(wl_pa)} portLevelMtls {target_port}"
    result = ModeResolution(mode, source, [*reasons, f"{mode.value} via {source}"])
    view.cache[key] = result
    return result


# ----- hosts, DestinationRules, ServiceEntries ---------------------------------------------------
def qualify_host(host: str, ns: str) -> str:
    """Expand a short host (``reviews``, ``reviews.prod``, ``reviews.prod.svc``) to its FQDN."""
    if host.startswith("*") or host.endswith(CLUSTER_DOMAIN):
        return host
    if "." not in host:
        return f"{host}.{ns}.{CLUSTER_DOMAIN}"
    if host.endswith(".svc"):
        return f"{host}.cluster.local"
    if host.count(".") == 1:
        return f"{host}.{CLUSTER_DOMAIN}"
    return host


def host_matches(pattern: str, host: str) -> bool:
    """Istio host matching: exact, ``*`` or a ``*.suffix`` wildcard."""
    if pattern == "*" or pattern == host:
        return True
    return pattern.startswith("*") and host.endswith(pattern[1:])


def _specificity(pattern: str) -> int:
    return 10_000 if not pattern.startswith("*") else len(pattern)


def _dr_in_namespace(view: MeshView, ns: str, host: str, client: Workload | None) -> Obj | None:
    best: tuple[int, tuple[str, str]] | None = None
    found: Obj | None = None
    for dr in view.objects("DestinationRule", ns):
        spec = dr.get("spec") or {}
        selector = spec.get("workloadSelector")
        if selector and (client is None or not selector_from_object(selector).matches(client.template_labels)):
            continue
        pattern = qualify_host(str(spec.get("host", "")), ns)
        if not host_matches(pattern, host):
            continue
        rank = (-_specificity(pattern), age_key(dr))
        if best is None or rank < best:
            best, found = rank, dr
    return found


def find_destination_rule(
    view: MeshView, host: str, *, client_ns: str | None, dest_ns: str | None, client: Workload | None = None
) -> Obj | None:
    """The DestinationRule a client in ``client_ns`` applies to ``host`` (client ns, dest ns, root ns)."""
    key = ("dr", host, client_ns, dest_ns, client.key if client else None)
    if key in view.cache:
        cached: Obj | None = view.cache[key]
        return cached
    found: Obj | None = None
    for ns in dict.fromkeys(n for n in (client_ns, dest_ns, view.mesh.root_namespace) if n):
        found = _dr_in_namespace(view, ns, host, client)
        if found is not None:
            break
    view.cache[key] = found
    return found


def dr_tls(dr: Mapping[str, Any], service_port: int) -> tuple[ClientTls | None, str]:
    """The TLS mode a DestinationRule sets for ``service_port`` and where (port-level or top-level)."""
    policy = (dr.get("spec") or {}).get("trafficPolicy") or {}
    for setting in policy.get("portLevelSettings") or []:
        if int((setting.get("port") or {}).get("number", -1)) == service_port and setting.get("tls"):
            return _client_tls(setting["tls"]), f"{ref(dr)} portLevelSettings {service_port}"
    if policy.get("tls"):
        return _client_tls(policy["tls"]), f"{ref(dr)} trafficPolicy.tls"
    return None, ""


def _client_tls(tls: Mapping[str, Any]) -> ClientTls:
    text = str(tls.get("mode", "DISABLE")).upper()
    return ClientTls(text) if text in ClientTls.__members__ else ClientTls.DISABLE


def _service_entries(view: MeshView) -> list[Obj]:
    key = ("service-entries",)
    if key not in view.cache:
        view.cache[key] = sorted(view.objects("ServiceEntry"), key=age_key)
    found: list[Obj] = view.cache[key]
    return found


def find_service_entry(view: MeshView, host: str, port: int) -> tuple[Obj, Mapping[str, Any]] | None:
    """A ServiceEntry declaring ``host`` (exact or wildcard) with ``port``, and that port's entry."""
    for se in _service_entries(view):
        spec = se.get("spec") or {}
        if not any(host_matches(str(h), host) for h in spec.get("hosts") or []):
            continue
        for entry in spec.get("ports") or []:
            if int(entry.get("number", -1)) == port:
                return se, entry
    return None


def service_entry_for_host(view: MeshView, host: str) -> Obj | None:
    """Any ServiceEntry that declares ``host``, whatever its ports."""
    for se in _service_entries(view):
        if any(host_matches(str(h), host) for h in (se.get("spec") or {}).get("hosts") or []):
            return se
    return None


# ----- Sidecar resource: outbound policy and egress visibility ---------------------------------------
def client_sidecar(view: MeshView, client: Workload) -> Obj | None:
    """The Sidecar resource configuring ``client`` (selector in its namespace > namespace-wide > root)."""
    key = ("sidecar", client.key)
    if key not in view.cache:
        view.cache[key] = _client_sidecar(view, client)
    found: Obj | None = view.cache[key]
    return found


def _client_sidecar(view: MeshView, client: Workload) -> Obj | None:
    items = sorted(view.objects("Sidecar", client.namespace), key=age_key)
    for sc in items:
        selector = ((sc.get("spec") or {}).get("workloadSelector") or {}).get("labels")
        if selector and selector_from_object({"matchLabels": selector}).matches(client.template_labels):
            return sc
    for sc in items:
        if not (sc.get("spec") or {}).get("workloadSelector"):
            return sc
    for sc in sorted(view.objects("Sidecar", view.mesh.root_namespace), key=age_key):
        if not (sc.get("spec") or {}).get("workloadSelector"):
            return sc
    return None


def outbound_policy(view: MeshView, sidecar: Mapping[str, Any] | None) -> tuple[str, str]:
    """``ALLOW_ANY`` or ``REGISTRY_ONLY`` for a client, and which object decides it."""
    if sidecar is not None:
        mode = ((sidecar.get("spec") or {}).get("outboundTrafficPolicy") or {}).get("mode")
        if mode:
            return str(mode), ref(sidecar)
    return view.mesh.outbound_policy, "mesh config outboundTrafficPolicy"


def egress_visible(sidecar: Mapping[str, Any] | None, client_ns: str, host: str, host_ns: str | None) -> bool:
    """Whether a Sidecar's ``egress.hosts`` (``<ns>/<host>``) import the destination host."""
    if sidecar is None:
        return True
    egress = (sidecar.get("spec") or {}).get("egress")
    if not egress:
        return True
    for listener in egress:
        for item in listener.get("hosts") or []:
            ns_part, _, host_part = str(item).partition("/")
            ns_ok = ns_part == "*" or (ns_part == "." and host_ns == client_ns) or ns_part == host_ns
            if ns_ok and host_matches(host_part, host):
                return True
    return False
