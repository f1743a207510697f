"""Traffic impact of a change set: which flows change outcome between two states of the platform.

Besides the flows an inventory declares, the platform implies callers that live outside the mesh and
are easy to forget when STRICT mTLS or default-deny goes on:

- the kube-apiserver calling every admission webhook's Service (``clientConfig.service`` of
  Mutating/ValidatingWebhookConfigurations, port default 443);
- the kubelet probing every container (``httpGet``/``tcpSocket``/``grpc`` liveness, readiness and
  startup probes; named ports resolved to numbers);
- the metrics scraper for every pod template annotated ``prometheus.io/scrape: "true"`` (port from
  ``prometheus.io/port``, else the first container port), called from a configurable workload; for
  pods with an Istio sidecar, port 15020 path ``/stats/prometheus`` instead, where the injector points
  the annotations when metrics merging is on (the default).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from runbook_engine.kube.flow import Flow, Outcome, Protocol
from runbook_engine.mesh.flows import FlowResult, evaluate_flow
from runbook_engine.mesh.injection import workload_enrolment
from runbook_engine.mesh.model import Mesh, MeshView, Workload

DEFAULT_SCRAPER = "monitoring/prometheus"
MERGED_METRICS_PORT = 15020
MERGED_METRICS_PATH = "/stats/prometheus"
MERGE_OPT_OUT = "prometheus.istio.io/merge-metrics"  # pod annotation: "false" turns merging off
PROBE_KINDS = ("livenessProbe", "readinessProbe", "startupProbe")


@dataclass(frozen=True)
class FlowChange:
    """One flow whose outcome differs between the two states."""

    flow: Flow
    before: FlowResult
    after: FlowResult

    @property
    def transition(self) -> str:
        return f"{self.before.outcome.value} → {self.after.outcome.value}"

    @property
    def breaks(self) -> bool:
        return self.before.outcome is Outcome.OK and self.after.outcome is not Outcome.OK


@dataclass(frozen=True)
class Impact:
    """The flows evaluated and those whose outcome changes."""

    flows: list[Flow]
    changes: list[FlowChange] = field(default_factory=list)
    after: list[FlowResult] = field(default_factory=list)

    @property
    def breaking(self) -> list[FlowChange]:
        return [c for c in self.changes if c.breaks]


def _webhook_flows(view: MeshView) -> list[Flow]:
    flows: list[Flow] = []
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        for config in view.objects(kind):
            for hook in config.get("webhooks") or []:
                service = (hook.get("clientConfig") or {}).get("service")
                if not service:
                    continue
                to = f"{service.get('namespace')}/{service.get('name')}:{int(service.get('port', 443))}"
                flows.append(
                    Flow.model_validate(
                        {
                            "from": "kube-apiserver",
                            "to": to,
                            "protocol": "tcp",
                            "name": f"kube-apiserver -> {to} ({hook.get('name')})",
                        }
                    )
                )
    return flows


def _probe_port(wl: Workload, probe: Mapping[str, Any]) -> tuple[int, Protocol, str] | None:
    for key, protocol in (("httpGet", Protocol.HTTP), ("grpc", Protocol.GRPC), ("tcpSocket", Protocol.TCP)):
        action = probe.get(key)
        if action:
            port = wl.container_port(action.get("port", -1))
            return (port, protocol, str(action.get("path", "/"))) if port is not None else None
    return None


def _probe_flows(view: MeshView) -> list[Flow]:
    flows: list[Flow] = []
    for wl in view.workloads.values():
        seen: set[tuple[int, Protocol]] = set()
        for container in wl.pod_spec.get("containers") or []:
            for kind in PROBE_KINDS:
                found = _probe_port(wl, container.get(kind) or {})
                if found is None or found[:2] in seen:
                    continue
                seen.add(found[:2])
                port, protocol, path = found
                flows.append(
                    Flow.model_validate(
                        {"from": "kubelet", "to": f"{wl.key}:{port}", "protocol": protocol.value, "path": path}
                    )
                )
    return flows


def merges_metrics(view: MeshView, wl: Workload) -> bool:
    """Whether Istio's metrics merging applies to ``wl``'s pods: then the sidecar injector has pointed
    their ``prometheus.io/port`` and ``path`` at istio-agent, which serves the app's metrics merged
    with its own (https://istio.io/latest/docs/ops/integrations/prometheus/#option-1-metrics-merging)."""
    if not view.mesh.enable_prometheus_merge or wl.template_annotations.get(MERGE_OPT_OUT, "").lower() == "false":
        return False
    return workload_enrolment(view, wl).mesh is Mesh.ISTIO_SIDECAR


def _scraped(view: MeshView) -> list[Workload]:
    return [wl for wl in view.workloads.values()
            if wl.template_annotations.get("prometheus.io/scrape", "").lower() == "true"]


def _scrape_flows(view: MeshView, scraper: str) -> list[Flow]:
    """The scrape of every annotated workload as its pods' annotations direct it in this state."""
    flows: list[Flow] = []
    for wl in _scraped(view):
        notes = wl.template_annotations
        if merges_metrics(view, wl):
            port: int | None = MERGED_METRICS_PORT
            path = MERGED_METRICS_PATH
        else:
            port = wl.container_port(notes["prometheus.io/port"]) if "prometheus.io/port" in notes else None
            path = notes.get("prometheus.io/path", "/metrics")
        if port is None:
            ports = [p for c in wl.pod_spec.get("containers") or [] for p in c.get("ports") or []]
            port = int(ports[0]["containerPort"]) if ports else None
        if port is not None:
            flows.append(
                Flow.model_validate({"from": scraper, "to": f"{wl.key}:{port}", "protocol": "http", "path": path})
            )
    return flows


def implied_flows(view: MeshView, *, scraper: str = DEFAULT_SCRAPER) -> list[Flow]:
    """Flows from non-mesh callers the platform implies (webhooks, probes, scrapes)."""
    return _webhook_flows(view) + _probe_flows(view) + _scrape_flows(view, scraper)


def implied_inputs(view: MeshView) -> tuple[Any, ...]:
    """Everything ``implied_flows`` reads: the webhook configurations and every workload's key and pod
    template, in index order. Two views with equal inputs imply the same flows."""
    webhooks = (view.objects("MutatingWebhookConfiguration"), view.objects("ValidatingWebhookConfiguration"))
    merging = [(wl.key, merges_metrics(view, wl)) for wl in _scraped(view)]
    return (*webhooks, [(key, wl.template) for key, wl in view.workloads.items()], merging)


def merge_flows(*groups: Iterable[Flow]) -> list[Flow]:
    """Concatenate flow lists, keeping the first flow of each (source, destination, protocol)."""
    seen: set[tuple[str, str, str]] = set()
    merged: list[Flow] = []
    for group in groups:
        for flow in group:
            key = (flow.source, flow.to, flow.protocol.value)
            if key not in seen:
                seen.add(key)
                merged.append(flow)
    return merged


def impact(
    before: Iterable[Mapping[str, Any]] | MeshView,
    after: Iterable[Mapping[str, Any]] | MeshView,
    flows: Iterable[Flow],
    *,
    scraper: str = DEFAULT_SCRAPER,
    implied: bool = True,
) -> Impact:
    """Evaluate ``flows`` (plus implied ones) on both states and return those whose outcome changes."""
    view_before = before if isinstance(before, MeshView) else MeshView.build(before)
    view_after = after if isinstance(after, MeshView) else MeshView.build(after)
    extra: list[Flow] = []
    if implied:
        extra = implied_flows(view_before, scraper=scraper) + implied_flows(view_after, scraper=scraper)
    all_flows = merge_flows(flows, extra)
    changes: list[FlowChange] = []
    results_after: list[FlowResult] = []
    for flow in all_flows:
        old, new = evaluate_flow(view_before, flow), evaluate_flow(view_after, flow)
        results_after.append(new)
        if old.outcome is not new.outcome:
            changes.append(FlowChange(flow, old, new))
    return Impact(all_flows, changes, results_after)
