"""pods_healthy from case files: verdicts against a baseline, PRE-EXISTING failures, and its evidence."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from runbook_engine.checks.base import CheckContext
from runbook_engine.checks.baseline import take_baseline
from runbook_engine.checks.builtin import CHECKS
from runbook_engine.kube.memory import MemoryCluster
from runbook_engine.report.verdict import Status, Verdict

from .pod_factory import pod, replicaset

CASES: list[dict[str, Any]] = yaml.safe_load((Path(__file__).parent / "cases" / "pods_healthy.yaml").read_text())
REPLICASETS = [replicaset("api-5d8f", "shop", "api"), replicaset("web-5d8f", "shop", "web")]


def verdict(before: list[dict[str, Any]] | None, now: list[dict[str, Any]], args: dict[str, Any]) -> Verdict:
    baseline = None
    if before is not None:
        baseline = take_baseline(MemoryCluster([*REPLICASETS, *(pod(p) for p in before)]))
    cluster = MemoryCluster([*REPLICASETS, *(pod(p) for p in now)])
    check = CHECKS["pods_healthy"]()
    ctx = CheckContext(cluster=cluster, baseline=baseline, title="workload pods are healthy")
    return check.run(ctx, check.Args.model_validate(args))


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_pods_healthy_case(case: dict[str, Any]) -> None:
    result = verdict(case.get("before"), case["now"], case["args"])
    expect = case["expect"]
    assert result.status is Status(expect["status"])
    assert result.summary == expect["summary"]
    assert result.title == "workload pods are healthy" and result.check == "pods_healthy"
    if "hint" in expect:
        assert result.hint == expect["hint"]
    if "evidence" in expect:
        assert [e.command for e in result.evidence] == expect["evidence"]


def test_evidence_is_the_kubectl_command_and_its_table() -> None:
    now = [{"name": "api-1"}, {"name": "api-2", "waiting": "CrashLoopBackOff", "restarts": 12}]
    result = verdict([{"name": "api-1"}], now, {"namespace": "shop", "selector": "app=api"})
    (evidence,) = result.evidence
    assert evidence.command == "kubectl get pods -n shop -l 'app=api'"
    assert evidence.output.splitlines() == [
        "NAME    READY   STATUS             RESTARTS",
        "api-1   1/1     Running            0",
        "api-2   0/1     CrashLoopBackOff   12",
    ]
    assert result.data == {"pods": 2, "failing": ["shop/api-2"], "preexisting": []}


def test_all_namespaces_table_has_a_namespace_column() -> None:
    result = verdict(None, [{"name": "api-1"}], {})
    assert result.evidence[0].command == "kubectl get pods -A"
    assert result.evidence[0].output.splitlines()[0].split() == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS"]


def test_baseline_round_trips_through_its_dict_form() -> None:
    baseline = take_baseline(MemoryCluster([*REPLICASETS, pod({"name": "api-1", "restarts": 2})]),
                             now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert type(baseline).from_dict(baseline.to_dict()) == baseline
