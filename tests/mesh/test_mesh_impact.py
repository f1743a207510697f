"""Impact of a change set on flows, and the non-mesh callers the platform implies."""

from __future__ import annotations

from typing import Any

from mesh_builders import expand

from runbook_engine.kube.flow import Flow, Outcome
from runbook_engine.mesh import MeshView, evaluate_all, impact, implied_flows, merge_flows

PROBE = {"httpGet": {"path": "/healthz", "port": "p8080"}}
SCRAPED = {"prometheus.io/scrape": "true", "prometheus.io/port": "8080"}
NOT_MERGED = {**SCRAPED, "prometheus.istio.io/merge-metrics": "false"}


def _platform(*extra: dict[str, Any], scrape: dict[str, str] = SCRAPED) -> list[dict[str, Any]]:
    return expand(
        [
            {"istiod": "default"},
            {"namespace": "sre", "labels": {"istio-injection": "enabled"}},
            {
                "deploy": "sre/mdm-kernel",
                "proxy": "container",
                "ports": [8080, 9443],
                "probes": {"readinessProbe": PROBE, "livenessProbe": {"tcpSocket": {"port": 9443}}},
                "annotations": scrape,
                "pod": {},
            },
            {"service": "sre/mdm-kernel", "port": 8080, "targetPort": 8080},
            {"service": "sre/mdm-webhook", "port": 443, "targetPort": 9443, "selector": {"app": "mdm-kernel"}},
            {"webhook": "mdm-validate", "service": "sre/mdm-webhook"},
            {"deploy": "ingress-nginx/ingress-nginx-controller", "pod": {}},
            {"deploy": "monitoring/prometheus", "pod": {}},
            *extra,
        ]
    )


STRICT = {"pa": "istio-system/default", "mode": "STRICT"}
INGRESS_FLOW = Flow.model_validate({"from": "ingress-nginx/ingress-nginx-controller", "to": "sre/mdm-kernel:8080"})


def test_implied_flows_cover_webhooks_probes_and_scrapes() -> None:
    flows = {(f.source, f.to, f.protocol.value, f.path) for f in implied_flows(MeshView.build(_platform()))}
    assert ("kube-apiserver", "sre/mdm-webhook:443", "tcp", "/") in flows
    assert ("kubelet", "sre/mdm-kernel:8080", "http", "/healthz") in flows
    assert ("kubelet", "sre/mdm-kernel:9443", "tcp", "/") in flows
    # the sidecar injector moved the scrape to istio-agent, which merges the app's metrics
    assert ("monitoring/prometheus", "sre/mdm-kernel:15020", "http", "/stats/prometheus") in flows


def test_a_workload_without_metrics_merging_is_scraped_at_its_own_port() -> None:
    flows = {(f.source, f.to, f.path) for f in implied_flows(MeshView.build(_platform(scrape=NOT_MERGED)))}
    assert ("monitoring/prometheus", "sre/mdm-kernel:8080", "/metrics") in flows


def test_strict_breaks_ingress_and_webhook_but_not_probes_or_merged_scrapes() -> None:
    result = impact(_platform(), _platform(STRICT), [INGRESS_FLOW])
    broken = {c.flow.source: c for c in result.breaking}
    assert set(broken) == {"ingress-nginx/ingress-nginx-controller", "kube-apiserver"}
    change = broken["ingress-nginx/ingress-nginx-controller"]
    assert change.transition == "ok → reset"
    assert "STRICT via PeerAuthentication istio-system/default" in change.after.summary
    assert all(r.outcome is Outcome.OK for r in result.after if r.flow.source in ("kubelet", "monitoring/prometheus"))
    scrape = next(r for r in result.after if r.flow.source == "monitoring/prometheus")
    assert "excluded from the inbound redirection" in scrape.summary


def test_strict_breaks_the_scrape_of_a_workload_without_metrics_merging() -> None:
    result = impact(_platform(scrape=NOT_MERGED), _platform(STRICT, scrape=NOT_MERGED), [])
    scrape = next(c for c in result.breaking if c.flow.source == "monitoring/prometheus")
    assert (scrape.flow.to, scrape.transition) == ("sre/mdm-kernel:8080", "ok → reset")


def test_port_level_exception_keeps_the_webhook_working() -> None:
    exception = {
        "pa": "sre/mdm-webhook",
        "mode": "STRICT",
        "selector": {"app": "mdm-kernel"},
        "portLevel": {9443: "PERMISSIVE"},
    }
    result = impact(_platform(), _platform(STRICT, exception), [])
    assert "kube-apiserver" not in {c.flow.source for c in result.breaking}


def test_no_change_no_impact() -> None:
    assert impact(_platform(STRICT), _platform(STRICT), [INGRESS_FLOW]).changes == []


def test_merge_flows_deduplicates_by_edge() -> None:
    twice = merge_flows([INGRESS_FLOW], [INGRESS_FLOW.model_copy(update={"name": "ingress"})])
    assert twice == [INGRESS_FLOW]


def test_restart_prediction_changes_the_outcome() -> None:
    objects = _platform(
        STRICT,
        {"namespace": "ingress-nginx", "labels": {"istio-injection": "enabled"}},
    )
    flow = [INGRESS_FLOW]
    before = evaluate_all(MeshView.build(objects), flow)[0]
    after = evaluate_all(MeshView.build(objects, restarted=["ingress-nginx/ingress-nginx-controller"]), flow)[0]
    assert before.outcome is Outcome.RESET and "restart it" in before.summary
    assert after.outcome is Outcome.OK


def test_flow_expectation_accepts_outcomes_and_http_statuses() -> None:
    view = MeshView.build(_platform(STRICT))
    ingress = {"from": "ingress-nginx/ingress-nginx-controller", "to": "sre/mdm-kernel:8080"}
    assert evaluate_all(view, [Flow.model_validate({**ingress, "expect": "reset"})])[0].as_expected is True
    assert evaluate_all(view, [Flow.model_validate({**ingress, "expect": "200"})])[0].as_expected is False
    meshed = {"from": "sre/mdm-kernel", "to": "sre/mdm-kernel:8080", "expect": "200"}
    assert evaluate_all(view, [Flow.model_validate(meshed)])[0].as_expected is True
