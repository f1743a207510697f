"""Istio standard metrics for the scenario's flows, in Prometheus exposition format.

Each flow produces requests at a steady rate; every scrape adds ``rate x elapsed`` to the series
of the flow's *current* state, so a Prometheus scraping the sandbox sees counters grow and sees
new series appear (e.g. ``connection_security_policy="mutual_tls"``) when a workload is meshed.
Only proxies report (https://istio.io/latest/docs/reference/config/metrics/): a client sidecar
reports ``reporter="source"`` (with ``connection_security_policy="unknown"``, as Istio does), a
server sidecar that handled the request reports ``reporter="destination"`` with
``mutual_tls``/``none``. ztunnel reports only TCP metrics (``istio_tcp_connections_opened_total``).
Linkerd proxies report ``response_total`` (outbound at the client, inbound at the server).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from runbook_engine.kube.flow import Flow, Outcome, Protocol
from runbook_engine.sandbox.physics.connection import ConnectionPhysics, FlowResult, Wire
from runbook_engine.sandbox.physics.control_plane import ControlPlane
from runbook_engine.sandbox.physics.svid import IdentityService
from runbook_engine.sandbox.physics.topology import Dataplane, MeshView

REQUESTS = "istio_requests_total"
TCP_OPENED = "istio_tcp_connections_opened_total"
RESPONSES = "response_total"
LabelSet = tuple[tuple[str, str], ...]


def _series_labels(result: FlowResult, flow: Flow, reporter: str, security: str) -> dict[str, str]:
    client, target = result.client, result.target
    meshed_client = client is not None and client.pod is not None
    return {
        "reporter": reporter,
        "source_workload": client.workload if meshed_client and client else "unknown",
        "source_workload_namespace": client.namespace if meshed_client and client else "unknown",
        "destination_workload": target.workload if target and target.workload else "unknown",
        "destination_workload_namespace": target.namespace if target and target.namespace else "unknown",
        "destination_service": target.fqdn if target else flow.dest_host,
        "destination_service_name": target.service if target and target.service else flow.dest_service,
        "destination_service_namespace": target.namespace if target and target.namespace else "unknown",
        "connection_security_policy": security,
        "request_protocol": "grpc"
        if flow.protocol is Protocol.GRPC
        else ("http" if flow.protocol is Protocol.HTTP else "tcp"),
    }


def samples(result: FlowResult, flow: Flow) -> list[tuple[str, dict[str, str]]]:
    """The (metric, labels) series this flow's traffic increments, given its current outcome."""
    if result.outcome is Outcome.HANG or result.client is None:
        return []
    http = flow.protocol in (Protocol.HTTP, Protocol.GRPC)
    out: list[tuple[str, dict[str, str]]] = []
    target = result.target
    security = "mutual_tls" if result.wire is Wire.ISTIO_MTLS else "none"
    code = str(result.http_status or 503)
    if result.client.dataplane is Dataplane.SIDECAR:
        labels = _series_labels(result, flow, "source", "unknown")
        out.append((REQUESTS, {**labels, "response_code": code}) if http else (TCP_OPENED, labels))
    if target is not None and target.dataplane is Dataplane.SIDECAR and result.server_saw_request:
        labels = _series_labels(result, flow, "destination", security)
        out.append((REQUESTS, {**labels, "response_code": code}) if http else (TCP_OPENED, labels))
    if result.client.dataplane is Dataplane.AMBIENT:
        out.append((TCP_OPENED, _series_labels(result, flow, "source", "unknown")))
    if target is not None and target.dataplane is Dataplane.AMBIENT and result.server_saw_request:
        out.append((TCP_OPENED, _series_labels(result, flow, "destination", security)))
    return out + linkerd_samples(result, flow)


def linkerd_samples(result: FlowResult, flow: Flow) -> list[tuple[str, dict[str, str]]]:
    """Linkerd proxies' ``response_total``: ``outbound`` at a meshed client, ``inbound`` at a meshed server.

    https://linkerd.io/2/reference/proxy-metrics/ (``tls="true"`` when the peer had a Linkerd identity).
    """
    client, target = result.client, result.target
    if client is None or target is None or flow.protocol not in (Protocol.HTTP, Protocol.GRPC):
        return []
    code = str(result.http_status or 502)
    common = {
        "status_code": code,
        "classification": "success" if code.startswith(("2", "3")) else "failure",
        "tls": "true" if result.wire is Wire.LINKERD_MTLS else "no_identity",
    }
    out: list[tuple[str, dict[str, str]]] = []
    if client.dataplane is Dataplane.LINKERD:
        labels = {
            "direction": "outbound",
            "deployment": client.workload,
            "namespace": client.namespace,
            "dst_deployment": target.workload or "unknown",
            "dst_namespace": target.namespace or "unknown",
        }
        out.append((RESPONSES, {**labels, **common}))
    if target.dataplane is Dataplane.LINKERD and result.server_saw_request:
        labels = {
            "direction": "inbound",
            "deployment": target.workload,
            "namespace": target.namespace,
            "authority": f"{target.fqdn}:{target.port}",
        }
        out.append((RESPONSES, {**labels, **common}))
    return out


class TrafficMetrics:
    """Counters for the scenario's flows that advance with (wall-clock) time."""

    def __init__(
        self,
        control_plane: ControlPlane,
        flows: Sequence[Flow],
        rate: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        identities: IdentityService | None = None,
    ) -> None:
        self.cp = control_plane
        self.flows = list(flows)
        self.rate = rate
        self.clock = clock
        self.identities = identities
        self._counters: dict[tuple[str, LabelSet], float] = {}
        self._last = clock()
        self._cached: tuple[tuple[int, int], list[tuple[Flow, FlowResult]]] | None = None
        self._lock = threading.Lock()

    def results(self) -> list[tuple[Flow, FlowResult]]:
        """Each flow's current result, recomputed only when the store changed."""
        rv = (self.cp.store.resource_version, self.cp.faults.version)
        if self._cached is None or self._cached[0] != rv:
            physics = ConnectionPhysics(MeshView.take(self.cp), self.identities)
            self._cached = (rv, [(f, physics.flow(f)) for f in self.flows])
        return self._cached[1]

    def advance(self) -> None:
        with self._lock:
            now = self.clock()
            increment = max(0.0, now - self._last) * self.rate
            self._last = now
            for flow, result in self.results():
                for metric, labels in samples(result, flow):
                    key = (metric, tuple(sorted(labels.items())))
                    self._counters[key] = self._counters.get(key, 0.0) + increment

    def text(self) -> str:
        """Advance the counters to now and render them."""
        self.advance()
        lines: list[str] = []
        for metric, help_text in (
            (REQUESTS, "Requests handled by an Istio proxy"),
            (TCP_OPENED, "TCP connections opened through an Istio proxy"),
            (RESPONSES, "HTTP responses seen by a Linkerd proxy"),
        ):
            series = sorted((k[1], v) for k, v in self._counters.items() if k[0] == metric)
            lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} counter"]
            lines += [f"{metric}{{{_render(labels)}}} {value:.3f}" for labels, value in series]
        return "\n".join(lines) + "\n"


def _render(labels: LabelSet) -> str:
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return ",".join(f'{k}="{esc(v)}"' for k, v in labels)
