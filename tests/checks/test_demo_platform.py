"""End to end on the sandbox demo platform, through the Kubernetes client: the seed-style verification
after a PERMISSIVE sidecar rollout, then the STRICT rehearsal with and without the Vault exception."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from runbook_engine.checks.base import Baseline
from runbook_engine.checks.baseline import take_baseline
from runbook_engine.kube.kube_cluster import KubeCluster
from runbook_engine.kube.refs import ObjectRef
from runbook_engine.report.verdict import Status
from runbook_engine.sandbox.app import build_sandbox

from .check_support import run_check
from .demo_platform import DEMO, demo_flows, permissive_rollout, settle

pytestmark = pytest.mark.slow
CASES = yaml.safe_load((Path(__file__).parent / "cases" / "demo_checks.yaml").read_text())["checks"]
ESO_TO_VAULT = {"from": "external-secrets/external-secrets", "to": "sre/vault:8200"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KubeCluster, Baseline]]:
    server = build_sandbox(tmp_path_factory.mktemp("demo") / "state", DEMO)
    with server:
        cluster = KubeCluster.from_kubeconfig(server.kubeconfig, None)
        settle(cluster, ["sre", "keycloak", "gitea", "external-secrets", "ingress-nginx"])
        baseline = take_baseline(cluster)
        permissive_rollout(cluster)
        yield cluster, baseline


def expand(args: dict[str, Any]) -> dict[str, Any]:
    """Resolve ``flows: {demo: [protocols], touching: [namespaces]}`` to the scenario's flows."""
    spec = args.get("flows")
    if not isinstance(spec, dict):
        return args
    chosen = [f for f in demo_flows() if "all" in spec["demo"] or f.protocol.value in spec["demo"]]
    touching = spec.get("touching")
    if touching:
        chosen = [f for f in chosen if any(f"{ns}/" in f"{f.source} {f.to}" for ns in touching)]
    return {**args, "flows": [f.model_dump(by_alias=True, exclude_none=True) for f in chosen]}


@pytest.mark.parametrize("case", CASES, ids=[c["check"] for c in CASES])
def test_verdicts_after_the_permissive_rollout(demo: tuple[KubeCluster, Baseline], case: dict[str, Any]) -> None:
    cluster, baseline = demo
    verdict = run_check(case["check"], cluster, expand(case["args"]), baseline=baseline,
                        now=dt.datetime.now(dt.UTC))
    expect = case["expect"]
    assert verdict.status is Status(expect["status"]), verdict.summary
    if "summary" in expect:
        assert verdict.summary == expect["summary"]
    else:
        assert expect["summary_has"] in verdict.summary
    assert all(e.command for e in verdict.evidence)
    assert cluster.list("v1", "Pod", None, "app.kubernetes.io/managed-by=runbook-engine") == []


def test_eso_reaches_vault_under_strict_only_through_the_vault_exception(demo: tuple[KubeCluster, Baseline]) -> None:
    cluster, baseline = demo
    cluster.apply({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
                   "metadata": {"name": "default", "namespace": "istio-system"}, "spec": {"mtls": {"mode": "STRICT"}}})
    flows = {"flows": [ESO_TO_VAULT, {"from": "sre/api-gateway", "to": "sre/vault:8200"}]}
    assert run_check("flows_reachable", cluster, flows, baseline=baseline).status is Status.PASS
    assert run_check("permissive_exceptions_present", cluster, {"flows": [ESO_TO_VAULT]}).status is Status.PASS

    cluster.delete(ObjectRef("security.istio.io/v1", "PeerAuthentication", "sre", "vault-external-secrets"))
    reach = run_check("flows_reachable", cluster, flows, baseline=baseline)
    assert reach.status is Status.FAIL
    assert reach.summary == ("flows not as expected (1): external-secrets/external-secrets -> sre/vault:8200 "
                             "(connection reset by peer (curl exit 56), expected ok (probe pod))")
    exception = run_check("permissive_exceptions_present", cluster, {"flows": [ESO_TO_VAULT]})
    assert exception.status is Status.FAIL
    assert "STRICT via PeerAuthentication istio-system/default (mesh-wide)" in exception.summary
