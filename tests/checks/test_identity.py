"""workload_svid: the SVID read from an openssl probe pod's log, judged against the expected identity."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from runbook_engine.kube.cluster import Obj
from runbook_engine.report.verdict import Status

from .certs import svid_chain
from .check_support import NOW, ProbeCluster, probe_url, run_check

HOUR = dt.timedelta(hours=1)
PLAINTEXT = ("CONNECTED(00000003)\n40F7C2B7E17F0000:error:0A00010B:SSL routines:ssl3_get_record:wrong version "
             "number:../ssl/record/ssl3_record.c:354:\n---\nno peer certificate available\n")
OBJECTS: list[Obj] = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": "shop"},
     "spec": {"selector": {"matchLabels": {"app": "api"}},
              "template": {"metadata": {"labels": {"app": "api"}},
                           "spec": {"serviceAccountName": "api", "containers": [{"name": "api"}]}}}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "shop"},
     "spec": {"selector": {"app": "api"}, "ports": [{"name": "http", "port": 8080}]}},
]
SVID_CASES: list[dict[str, Any]] = [
    {"id": "expected identity", "uri": "spiffe://corp.example/ns/shop/sa/api", "ttl": HOUR, "args": {},
     "status": Status.PASS,
     "summary": "1 workload present the expected SVID: shop/api:8080 (spiffe://corp.example/ns/shop/sa/api, TTL 1h, "
                "60 min left)"},
    {"id": "another service account", "uri": "spiffe://corp.example/ns/shop/sa/default", "ttl": HOUR, "args": {},
     "status": Status.FAIL,
     "summary": "wrong or missing SVIDs (1): shop/api:8080 (presents spiffe://corp.example/ns/shop/sa/default, "
                "expected spiffe://corp.example/ns/shop/sa/api)"},
    {"id": "another trust domain", "uri": "spiffe://cluster.local/ns/shop/sa/api", "ttl": HOUR, "args": {},
     "status": Status.FAIL,
     "summary": "wrong or missing SVIDs (1): shop/api:8080 (presents spiffe://cluster.local/ns/shop/sa/api, "
                "expected spiffe://corp.example/ns/shop/sa/api)"},
    {"id": "long-lived certificate", "uri": "spiffe://corp.example/ns/shop/sa/api", "ttl": 24 * HOUR,
     "args": {"max_ttl_hours": 12}, "status": Status.FLAG,
     "summary": "SVIDs to note (1): shop/api:8080 (TTL above 12h: spiffe://corp.example/ns/shop/sa/api, TTL 24h, "
                "1440 min left)"},
    {"id": "about to expire", "uri": "spiffe://corp.example/ns/shop/sa/api", "ttl": dt.timedelta(minutes=3),
     "args": {}, "status": Status.FAIL,
     "summary": "wrong or missing SVIDs (1): shop/api:8080 (expires too soon: spiffe://corp.example/ns/shop/sa/api, "
                "TTL 3m, 3 min left)"},
]


def svid_check(log: str, args: dict[str, Any], code: int = 0) -> tuple[Any, ProbeCluster]:
    cluster = ProbeCluster(OBJECTS, lambda pod: (code, log))
    verdict = run_check("workload_svid", cluster, {"targets": [{"to": "shop/api:8080"}],
                                                   "trust_domain": "corp.example", **args})
    return verdict, cluster


@pytest.mark.parametrize("case", SVID_CASES, ids=[c["id"] for c in SVID_CASES])
def test_the_presented_svid_is_judged(case: dict[str, Any]) -> None:
    verdict, _ = svid_check(svid_chain(case["uri"], NOW, NOW + case["ttl"]), case["args"])
    assert (verdict.status, verdict.summary) == (case["status"], case["summary"])


def test_the_probe_runs_openssl_with_the_istio_alpn_outside_the_mesh() -> None:
    verdict, cluster = svid_check(svid_chain("spiffe://corp.example/ns/shop/sa/api", NOW, NOW + HOUR), {})
    (pod,) = cluster.created
    assert probe_url(pod) == "openssl s_client -showcerts -alpn istio -connect api.shop.svc:8080 </dev/null"
    assert pod["metadata"]["namespace"] == "shop"
    assert pod["metadata"]["labels"]["sidecar.istio.io/inject"] == "false"
    (proof,) = verdict.evidence
    assert proof.command.endswith("--command -- sh -c 'openssl s_client -showcerts -alpn istio -connect "
                                  "api.shop.svc:8080 </dev/null'")
    assert "(PEM elided)" in proof.output and "MII" not in proof.output
    assert proof.note == "leaf: spiffe://corp.example/ns/shop/sa/api, TTL 1h, 60 min left; chain of 2"
    assert verdict.data == {"svids": {"shop/api:8080": {"spiffe_id": "spiffe://corp.example/ns/shop/sa/api",
                                                          "ttl_seconds": 3600.0}}}


def test_a_plaintext_port_presents_no_svid() -> None:
    verdict, _ = svid_check(PLAINTEXT, {}, code=1)
    assert verdict.status is Status.FAIL
    assert verdict.summary == ("wrong or missing SVIDs (1): shop/api:8080 (no certificate: plaintext port: no proxy "
                               "presents an SVID)")


def test_an_explicit_spiffe_id_overrides_the_default() -> None:
    cluster = ProbeCluster(OBJECTS, lambda pod: (0, svid_chain("spiffe://corp.example/api", NOW, NOW + HOUR)))
    verdict = run_check("workload_svid", cluster, {"targets": [{"to": "shop/api:8080",
                                                                "spiffe_id": "spiffe://corp.example/api"}]})
    assert verdict.status is Status.PASS
