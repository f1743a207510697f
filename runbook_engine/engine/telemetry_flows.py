"""Flows observed in mesh telemetry: who called whom over the last hours, from Prometheus.

Two instant queries through the HTTP API's ``/api/v1/query`` endpoint:

- Istio (https://istio.io/latest/docs/reference/config/metrics/): ``istio_requests_total`` and
  ``istio_tcp_connections_opened_total`` summed by source and destination workload and service over
  ``increase(...[<N>h])``. Series with ``source_workload="unknown"`` (a caller without a proxy, seen
  only by the server's sidecar) cannot name their caller and are left out.
- Linkerd (https://linkerd.io/2/reference/proxy-metrics/): outbound ``response_total`` summed by
  ``namespace``, ``deployment``, ``dst_namespace`` and ``dst_deployment``; the destination Service is
  the one selecting that deployment.

Istio's standard metrics carry no port, so a flow's port is the destination Service's port for the
protocol (the first HTTP/gRPC-named port for HTTP and gRPC, else the first port).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any

from runbook_engine.errors import ClusterError
from runbook_engine.kube.flow import Flow, Protocol
from runbook_engine.mesh import MeshView

ISTIO_QUERIES = (
    ("istio_requests_total", "sum by (source_workload_namespace, source_workload, destination_service_namespace, "
     "destination_service_name, request_protocol) (increase(istio_requests_total[{window}]))"),
    ("istio_tcp_connections_opened_total", "sum by (source_workload_namespace, source_workload, "
     "destination_service_namespace, destination_service_name) (increase(istio_tcp_connections_opened_total"
     "[{window}]))"),
)
LINKERD_QUERY = ("sum by (namespace, deployment, dst_namespace, dst_deployment) "
                 "(increase(response_total{{direction=\"outbound\"}}[{window}]))")
_PROTOCOLS = {"http": Protocol.HTTP, "grpc": Protocol.GRPC, "tcp": Protocol.TCP}
_HTTP_PORT_HINTS = ("http", "grpc")


def prometheus_query(base: str, expr: str, timeout: float = 10.0) -> list[Mapping[str, Any]]:
    """The vector of an instant query; an unreachable or failing Prometheus is a ``ClusterError``."""
    url = f"{base.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = json.loads(response.read().decode())
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
        raise ClusterError(f"Prometheus query failed: {exc}",
                           hint="check the cluster's prometheus_url in the inventory") from exc
    result = (body.get("data") or {}).get("result") if body.get("status") == "success" else None
    if not isinstance(result, list):
        raise ClusterError(f"Prometheus answered {body.get('status')}: {body.get('error', 'no result vector')}")
    return [r for r in result if isinstance(r, Mapping)]


def _service_port(service: Mapping[str, Any], protocol: Protocol) -> int | None:
    ports = (service.get("spec") or {}).get("ports") or []
    if not ports:
        return None
    if protocol in (Protocol.HTTP, Protocol.GRPC):
        for port in ports:
            hint = f"{port.get('name', '')} {port.get('appProtocol', '')}".lower()
            if any(h in hint for h in _HTTP_PORT_HINTS):
                return int(port["port"])
    return int(ports[0]["port"])


def _flow(view: MeshView, source: str, service_key: str, protocol: Protocol) -> Flow | None:
    service = view.services.get(service_key)
    port = _service_port(service, protocol) if service is not None else None
    if port is None:
        return None
    return Flow.model_validate({"from": source, "to": f"{service_key}:{port}", "protocol": protocol.value})


def istio_flows(view: MeshView, samples: Iterable[Mapping[str, Any]], default: Protocol) -> list[Flow]:
    """Flows from Istio series (``source_workload`` ... ``destination_service_name``)."""
    flows: list[Flow] = []
    for sample in samples:
        m = sample.get("metric") or {}
        src_ns, src = str(m.get("source_workload_namespace", "unknown")), str(m.get("source_workload", "unknown"))
        dst_ns, dst = str(m.get("destination_service_namespace", "")), str(m.get("destination_service_name", ""))
        if "unknown" in (src_ns, src) or not dst_ns or not dst or dst_ns == "unknown":
            continue
        protocol = _PROTOCOLS.get(str(m.get("request_protocol", "")), default)
        flow = _flow(view, f"{src_ns}/{src}", f"{dst_ns}/{dst}", protocol)
        if flow is not None:
            flows.append(flow)
    return flows


def _service_of(view: MeshView, namespace: str, workload: str) -> str | None:
    wl = view.workload(namespace, workload)
    if wl is None:
        return None
    for key, service in sorted(view.services.items()):
        if key.startswith(f"{namespace}/") and any(w.key == wl.key for w in view.workloads_for_service(service)):
            return key
    return None


def linkerd_flows(view: MeshView, samples: Iterable[Mapping[str, Any]]) -> list[Flow]:
    """Flows from Linkerd's outbound ``response_total`` series."""
    flows: list[Flow] = []
    for sample in samples:
        m = sample.get("metric") or {}
        src_ns, src = str(m.get("namespace", "")), str(m.get("deployment", ""))
        dst_ns, dst = str(m.get("dst_namespace", "")), str(m.get("dst_deployment", ""))
        service = _service_of(view, dst_ns, dst) if src_ns and src and dst_ns and dst else None
        flow = _flow(view, f"{src_ns}/{src}", service, Protocol.HTTP) if service else None
        if flow is not None:
            flows.append(flow)
    return flows


def telemetry_flows(base: str, view: MeshView, *, hours: int = 24, timeout: float = 10.0) -> list[Flow]:
    """Every flow Istio or Linkerd telemetry saw in the last ``hours`` (duplicates removed)."""
    window = f"{hours}h"
    found: list[Flow] = []
    for metric, expr in ISTIO_QUERIES:
        default = Protocol.TCP if metric.startswith("istio_tcp") else Protocol.HTTP
        found += istio_flows(view, prometheus_query(base, expr.format(window=window), timeout), default)
    found += linkerd_flows(view, prometheus_query(base, LINKERD_QUERY.format(window=window), timeout))
    unique: dict[tuple[str, str, str], Flow] = {}
    for flow in found:
        unique.setdefault((flow.source, flow.to, flow.protocol.value), flow)
    return list(unique.values())
