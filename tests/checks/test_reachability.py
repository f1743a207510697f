"""flows_reachable and controls_unaffected: flows observed by curl probe pods, public URLs or prediction."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from runbook_engine.checks.reachability import curl_outcome, expected
from runbook_engine.kube.cluster import Obj
from runbook_engine.kube.flow import Flow, Outcome
from runbook_engine.kube.memory import MemoryCluster
from runbook_engine.report.verdict import Status

from .check_support import ProbeCluster, probe_url, run_check

READY = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
         "containerStatuses": [{"name": "app", "ready": True, "restartCount": 0, "state": {"running": {}}}]}


def workload(ns: str, name: str, sa: str, meshed: bool, port: int = 8080) -> list[Obj]:
    containers = [{"name": "app", "ports": [{"name": "http", "containerPort": port}]}]
    pod_containers = containers + ([{"name": "istio-proxy"}] if meshed else [])
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
         "spec": {"selector": {"matchLabels": {"app": name}},
                  "template": {"metadata": {"labels": {"app": name}},
                               "spec": {"serviceAccountName": sa, "containers": containers}}}},
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": f"{name}-5d8f-x1", "namespace": ns, "labels": {"app": name},
                      "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"{name}-5d8f",
                                           "uid": f"u-{name}", "controller": True}]},
         "spec": {"serviceAccountName": sa, "containers": pod_containers}, "status": READY},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
         "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": port, "targetPort": "http"}]}},
    ]


PLATFORM: list[Obj] = [
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "istiod", "namespace": "istio-system",
                                                                 "labels": {"app": "istiod"}},
     "spec": {"selector": {"matchLabels": {"app": "istiod"}},
              "template": {"metadata": {"labels": {"app": "istiod"}},
                           "spec": {"containers": [{"name": "discovery"}]}}}},
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"istio-injection": "enabled"}}},
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ops"}},
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "keycloak"}},
    *workload("shop", "web", "web", meshed=True),
    *workload("shop", "api", "api", meshed=True),
    *workload("ops", "backup", "backup", meshed=False),
    *workload("keycloak", "keycloak", "keycloak", meshed=False),
]
#: What each probed URL answers: (curl exit code, log).
ANSWERS = {
    "http://api.shop.svc.cluster.local:8080/": (0, "200"),
    "http://api.shop.svc.cluster.local:8080/admin": (0, "403"),
    "http://keycloak.keycloak.svc.cluster.local:8080/": (0, "200"),
}


def answer(pod: Obj) -> tuple[int, str]:
    if pod["metadata"]["namespace"] == "ops":  # the unmeshed caller is reset under STRICT
        return 56, "000"
    return ANSWERS[probe_url(pod)]


def flows(*items: dict[str, Any]) -> list[dict[str, Any]]:
    return list(items)


@pytest.mark.parametrize(("exit_code", "log", "meshed", "outcome", "code"), [
    (0, "200", True, Outcome.OK, "200"),
    (0, "404", False, Outcome.OK, "404"),
    (0, "403", True, Outcome.DENIED_403, "403"),
    (0, "503", True, Outcome.RESET, "503"),
    (0, "503", False, Outcome.OK, "503"),
    (56, "000", False, Outcome.RESET, "000"),
    (35, "000", True, Outcome.TLS_ERROR, "000"),
    (28, "000", True, Outcome.HANG, "000"),
    (7, "000", False, Outcome.RESET, "000"),
    (22, "", False, Outcome.RESET, ""),
])
def test_curl_results_map_to_outcomes(exit_code: int, log: str, meshed: bool, outcome: Outcome, code: str) -> None:
    assert curl_outcome(exit_code, log, meshed)[:2] == (outcome, code)


@pytest.mark.parametrize(("expect", "outcome", "code", "ok"), [
    (None, Outcome.OK, "200", True),
    (None, Outcome.RESET, "000", False),
    ("403", Outcome.DENIED_403, "403", True),
    ("200", Outcome.OK, "204", False),
    ("200", Outcome.OK, "", True),
    ("reset", Outcome.RESET, "000", True),
    ("denied_403", Outcome.OK, "200", False),
])
def test_expectations(expect: str | None, outcome: Outcome, code: str, ok: bool) -> None:
    flow = Flow.model_validate({"from": "shop/web", "to": "shop/api:8080", "expect": expect})
    assert expected(flow, outcome, code) is ok


def test_each_flow_is_probed_as_its_caller_and_judged_against_its_expectation() -> None:
    cluster = ProbeCluster(PLATFORM, answer)
    verdict = run_check("flows_reachable", cluster, {"flows": flows(
        {"from": "shop/web", "to": "shop/api:8080"},
        {"from": "shop/web", "to": "shop/api:8080", "path": "/admin", "expect": "403"},
        {"from": "ops/backup", "to": "shop/api:8080"},
        {"from": "kubelet", "to": "shop/api:8080", "path": "/healthz"},
    )})
    assert verdict.status is Status.FAIL
    assert verdict.summary == ("flows not as expected (1): ops/backup -> shop/api:8080 (connection reset by peer "
                               "(curl exit 56), expected ok (probe pod))")
    web, _, backup = cluster.created
    assert (web["metadata"]["namespace"], web["spec"]["serviceAccountName"]) == ("shop", "web")
    assert "sidecar.istio.io/inject" not in web["metadata"]["labels"]  # enrolled like its meshed caller
    assert web["metadata"]["annotations"]["proxy.istio.io/config"] == '{"holdApplicationUntilProxyStarts": true}'
    assert backup["metadata"]["labels"]["sidecar.istio.io/inject"] == "false"
    assert web["spec"]["containers"][0]["command"] == ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m",
                                                       "10", "-X", "GET", "http://api.shop.svc.cluster.local:8080/"]
    kubelet = verdict.evidence[3]
    assert kubelet.note == ("predicted from the live objects by the mesh rules: kubelet traffic comes from outside "
                            "any pod")
    assert kubelet.output.startswith("ok: ")
    assert [f["how"] for f in verdict.data["flows"]] == ["probe pod", "probe pod", "probe pod", "predicted"]
    assert cluster.list("v1", "Pod", "shop", "app.kubernetes.io/managed-by=runbook-engine") == []


def test_a_missing_caller_fails_and_an_unfinished_probe_is_no_data() -> None:
    missing = run_check("flows_reachable", ProbeCluster(PLATFORM, answer),
                        {"flows": flows({"from": "shop/cart", "to": "shop/api:8080"})})
    assert missing.status is Status.FAIL
    assert missing.summary == "flows not as expected (1): shop/cart -> shop/api:8080 (caller shop/cart not found)"
    silent = run_check("flows_reachable", MemoryCluster(PLATFORM),
                       {"flows": flows({"from": "shop/web", "to": "shop/api:8080"}), "probe_timeout": 0.3})
    assert silent.status is Status.NO_DATA
    assert silent.summary == ("flows not observed (1): shop/web -> shop/api:8080 (probe did not finish within "
                              "0.3s)")


@pytest.fixture
def public_site() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(204 if self.path == "/" else 403)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_external_flows_call_their_public_url_or_are_predicted(public_site: str) -> None:
    verdict = run_check("flows_reachable", MemoryCluster(PLATFORM), {
        "flows": flows({"from": "external:internet", "to": "shop/web:8080", "name": "public web"},
                       {"from": "external:partner", "to": "shop/api:8080", "protocol": "tcp"}),
        "public_urls": {"public web": f"{public_site}/"},
    })
    assert verdict.status is Status.PASS
    assert verdict.summary == "all 2 flows as expected (1 by public URL, 1 predicted)"
    assert verdict.evidence[0].command == f"curl -s -o /dev/null -w '%{{http_code}}' -m 10 {public_site}/"
    assert verdict.evidence[0].output == "204"
    assert verdict.evidence[1].note.endswith("no public URL configured for this flow")


def test_controls_stay_healthy_unmeshed_and_reachable() -> None:
    args = {"namespaces": ["keycloak"], "flows": flows({"from": "shop/web", "to": "keycloak/keycloak:8080"})}
    verdict = run_check("controls_unaffected", ProbeCluster(PLATFORM, answer), args)
    assert verdict.status is Status.PASS
    assert verdict.summary == ("controls keycloak unaffected: 1 pod Running and Ready, no new restarts; none meshed; "
                               "1 flow as expected")
    meshed = [o for o in PLATFORM if o["metadata"].get("namespace") != "keycloak"] + workload(
        "keycloak", "keycloak", "keycloak", meshed=True)
    affected = run_check("controls_unaffected", ProbeCluster(meshed, answer), args)
    assert affected.status is Status.FAIL
    assert affected.summary == "controls keycloak affected: keycloak/keycloak (meshed (istio-sidecar/container))"
