"""linkerd_ready: control-plane readiness and the validity of the trust anchor and issuer certificates."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import pytest

from runbook_engine.kube.cluster import Obj
from runbook_engine.kube.memory import MemoryCluster
from runbook_engine.report.verdict import Status

from .certs import ca, key_pem, pem
from .check_support import NOW, run_check

DAY = dt.timedelta(days=1)
DEPLOYMENTS = ("linkerd-identity", "linkerd-destination", "linkerd-proxy-injector")


def deployment(name: str, ready: int = 1) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "linkerd",
                                                                        "generation": 1},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}}},
            "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": ready}}


def platform(anchor_days: float, issuer_days: float, ready: int = 1) -> tuple[list[Obj], str]:
    """The control plane with certificates expiring in the given number of days, and the issuer key PEM."""
    anchor, _ = ca("root.linkerd.cluster.local", NOW - 300 * DAY, NOW + anchor_days * DAY)
    issuer, issuer_key = ca("identity.linkerd.cluster.local", NOW - 10 * DAY, NOW + issuer_days * DAY)
    key = key_pem(issuer_key)
    objects = [deployment(n, ready if n == "linkerd-destination" else 1) for n in DEPLOYMENTS] + [
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "linkerd-identity-trust-roots", "namespace": "linkerd"},
         "data": {"ca-bundle.crt": pem(anchor)}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "linkerd-identity-issuer", "namespace": "linkerd"},
         "type": "kubernetes.io/tls",
         "data": {"crt.pem": base64.b64encode(pem(issuer).encode()).decode(),
                  "key.pem": base64.b64encode(key.encode()).decode()}},
    ]
    return objects, key


CASES: list[dict[str, Any]] = [
    {"id": "all valid", "anchor": 3000, "issuer": 300, "status": Status.PASS,
     "summary": "Linkerd control plane ready; trust anchor (valid for 3000 more days: CN=root.linkerd.cluster.local, "
                "expires 2035-02-09 12:00 UTC); issuer (valid for 300 more days: CN=identity.linkerd.cluster.local, "
                "expires 2027-09-19 12:00 UTC)"},
    {"id": "issuer expires soon", "anchor": 3000, "issuer": 10, "status": Status.FLAG,
     "summary": "Linkerd: issuer (expires in 10 days: CN=identity.linkerd.cluster.local, "
                "expires 2026-12-03 12:00 UTC)"},
    {"id": "trust anchor expired", "anchor": -1, "issuer": 300, "status": Status.FAIL,
     "summary": "Linkerd: trust anchor (expired: CN=root.linkerd.cluster.local, expires 2026-11-22 12:00 UTC)"},
]


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_certificate_validity(case: dict[str, Any]) -> None:
    objects, _ = platform(case["anchor"], case["issuer"])
    verdict = run_check("linkerd_ready", MemoryCluster(objects), {})
    assert (verdict.status, verdict.summary) == (case["status"], case["summary"])


def test_an_unready_control_plane_fails_and_no_key_material_reaches_the_evidence() -> None:
    objects, key = platform(3000, 300, ready=0)
    verdict = run_check("linkerd_ready", MemoryCluster(objects), {})
    assert verdict.status is Status.FAIL
    assert verdict.summary == "Linkerd: linkerd-destination (0 of 1 updated replicas ready)"
    text = "\n".join(f"{e.command}\n{e.output}\n{e.note}" for e in verdict.evidence)
    body = "".join(key.splitlines()[1:-1])
    encoded = base64.b64encode(key.encode()).decode()
    assert "PRIVATE KEY" not in text and body[:40] not in text and encoded[:40] not in text
    assert verdict.evidence[-1].command == ("kubectl get secret linkerd-identity-issuer -n linkerd -o "
                                            "jsonpath='{.data.crt\\.pem}' | base64 -d | openssl x509 -noout "
                                            "-subject -enddate")
    assert verdict.evidence[-1].output.startswith("subject=CN=identity.linkerd.cluster.local\nnotAfter=")


def test_missing_certificates_fail() -> None:
    objects = [deployment(n) for n in DEPLOYMENTS]
    verdict = run_check("linkerd_ready", MemoryCluster(objects), {})
    assert verdict.summary == "Linkerd: trust anchor (no certificate found), issuer (no certificate found)"
