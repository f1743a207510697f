"""object_ready: workloads by rollout state, other kinds by conditions, PRE-EXISTING from the baseline."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from runbook_engine.checks.base import Baseline, CheckContext, PodHealth
from runbook_engine.checks.builtin import CHECKS
from runbook_engine.errors import UserInputError
from runbook_engine.kube.cluster import Obj
from runbook_engine.kube.memory import MemoryCluster
from runbook_engine.report.verdict import Status, Verdict


def deployment(name: str, status: Obj) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "istio-system"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}}}, "status": status}


READY = {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2,
         "conditions": [{"type": "Available", "status": "True"}]}
HALF = {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 1,
        "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"}]}
CRD = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
       "metadata": {"name": "peerauthentications.security.istio.io"},
       "status": {"conditions": [{"type": "Established", "status": "True"}]}}
PA = {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
      "metadata": {"name": "default", "namespace": "istio-system"}, "spec": {"mtls": {"mode": "STRICT"}}}
GW = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "edge", "namespace": "web"},
      "status": {"conditions": [{"type": "Accepted", "status": "True"},
                                {"type": "Programmed", "status": "False", "message": "no addresses"}]}}


@pytest.fixture
def cluster() -> MemoryCluster:
    return MemoryCluster([deployment("istiod", READY), deployment("ingress", HALF), CRD, PA, GW])


def check(cluster: MemoryCluster, baseline: Baseline | None = None, **args: Any) -> Verdict:
    module = CHECKS["object_ready"]()
    return module.run(CheckContext(cluster=cluster, baseline=baseline), module.Args.model_validate(args))


def test_ready_workload_passes_with_rollout_evidence(cluster: MemoryCluster) -> None:
    result = check(cluster, kind="Deployment", name="istiod", namespace="istio-system")
    assert result.status is Status.PASS
    assert result.summary == "Deployment/istio-system/istiod is ready: 2/2 replicas updated and ready"
    rollout, conditions = result.evidence
    assert rollout.command == "kubectl rollout status deployment/istiod -n istio-system --watch=false"
    assert conditions.command == ("kubectl get deployment istiod -n istio-system "
                                  "-o jsonpath='{.status.conditions}'")
    assert conditions.output == '[{"type":"Available","status":"True"}]'


def test_unready_workload_fails_with_what_it_waits_for(cluster: MemoryCluster) -> None:
    result = check(cluster, kind="Deployment", name="ingress", namespace="istio-system")
    assert result.status is Status.FAIL
    assert result.summary == "Deployment/istio-system/ingress is not ready: 1 of 2 updated replicas ready"
    assert result.hint == "inspect it: kubectl describe deployment ingress -n istio-system"


def test_unready_workload_already_unhealthy_in_the_baseline_is_preexisting(cluster: MemoryCluster) -> None:
    baseline = Baseline(dt.datetime(2026, 1, 1, tzinfo=dt.UTC), (
        PodHealth("istio-system", "ingress-1", "Deployment/ingress", "Running", False, 4, "CrashLoopBackOff"),))
    result = check(cluster, baseline, kind="Deployment", name="ingress", namespace="istio-system")
    assert result.status is Status.PREEXISTING
    assert result.summary.endswith("(already unhealthy before the run)")


def test_crd_is_ready_when_established(cluster: MemoryCluster) -> None:
    result = check(cluster, kind="CustomResourceDefinition", name="peerauthentications.security.istio.io")
    assert result.status is Status.PASS and result.summary.endswith("is ready: Established=True")
    assert result.evidence[0].command.startswith(
        "kubectl get customresourcedefinitions.apiextensions.k8s.io peerauthentications.security.istio.io -o")


def test_named_condition_is_checked_with_its_message(cluster: MemoryCluster) -> None:
    result = check(cluster, kind="Gateway", api_version="gateway.networking.k8s.io/v1", name="edge",
                   namespace="web", condition="Programmed")
    assert result.status is Status.FAIL
    assert result.summary == "Gateway/web/edge is not ready: Programmed=False: no addresses"


def test_object_without_conditions_is_ready_when_it_exists(cluster: MemoryCluster) -> None:
    result = check(cluster, kind="PeerAuthentication", name="default", namespace="istio-system")
    assert result.status is Status.PASS
    assert result.summary.endswith("exists (reports no readiness conditions)")
    assert result.evidence[0].command == ("kubectl get peerauthentications.security.istio.io default "
                                          "-n istio-system -o jsonpath='{.status.conditions}'")


def test_missing_object_fails_with_not_found_evidence(cluster: MemoryCluster) -> None:
    result = check(cluster, kind="Deployment", name="istiod", namespace="default")
    assert result.status is Status.FAIL and result.summary == "Deployment/default/istiod not found"
    assert result.evidence[0].command == "kubectl get deployment istiod -n default"


def test_ambiguous_kind_and_missing_namespace_are_input_errors(cluster: MemoryCluster) -> None:
    with pytest.raises(UserInputError, match="kind Gateway exists in several API groups"):
        check(cluster, kind="Gateway", name="edge", namespace="web")
    with pytest.raises(UserInputError, match="Deployment is namespaced"):
        check(cluster, kind="Deployment", name="istiod")
