"""take_baseline: every pod with its top-level owner, phase, readiness, restarts and broken reason."""

from __future__ import annotations

import datetime as dt

from runbook_engine.checks.base import PodHealth
from runbook_engine.checks.baseline import take_baseline
from runbook_engine.kube.memory import MemoryCluster

from .pod_factory import pod, replicaset

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def test_baseline_records_each_pod_and_its_workload() -> None:
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {
        "name": "backup-29", "namespace": "data",
        "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "backup", "uid": "u1",
                             "controller": True}]}}
    cluster = MemoryCluster([
        replicaset("api-5d8f", "shop", "api"),
        job,
        pod({"name": "api-1", "restarts": 2}),
        pod({"name": "api-2", "waiting": "CrashLoopBackOff", "restarts": 7}),
        pod({"name": "db-0", "ns": "data", "app": "db", "owner": "sts/db", "init": "ImagePullBackOff"}),
        pod({"name": "solo", "owner": "none"}),
        {**pod({"name": "backup-29-x", "ns": "data", "app": "backup", "owner": "none", "phase": "Succeeded",
                "ready": False}),
         "metadata": {"name": "backup-29-x", "namespace": "data", "ownerReferences": [
             {"apiVersion": "batch/v1", "kind": "Job", "name": "backup-29", "uid": "u2", "controller": True}]}},
    ])
    baseline = take_baseline(cluster, now=NOW)
    assert baseline.taken_at == NOW
    assert baseline.pods == (
        PodHealth("data", "backup-29-x", "CronJob/backup", "Succeeded", False, 0, ""),
        PodHealth("data", "db-0", "StatefulSet/db", "Pending", False, 0, "Init:ImagePullBackOff"),
        PodHealth("shop", "api-1", "Deployment/api", "Running", True, 2, ""),
        PodHealth("shop", "api-2", "Deployment/api", "Running", False, 7, "CrashLoopBackOff"),
        PodHealth("shop", "solo", "solo", "Running", True, 0, ""),
    )
    assert {"shop/Deployment/api", "data/StatefulSet/db"} <= baseline.unhealthy_owners()


def test_replicaset_without_a_known_parent_is_the_owner() -> None:
    baseline = take_baseline(MemoryCluster([pod({"name": "api-1"})]), now=NOW)
    assert baseline.pods[0].owner == "ReplicaSet/api-5d8f"


def test_empty_cluster_has_an_empty_baseline() -> None:
    assert take_baseline(MemoryCluster(), now=NOW).pods == ()


def test_completed_job_pods_are_not_preexisting_failures() -> None:
    import datetime as dt

    from runbook_engine.checks.base import Baseline, PodHealth

    baseline = Baseline(
        dt.datetime(2026, 11, 23, tzinfo=dt.UTC),
        (
            PodHealth("ops", "backup-1-abcde", "CronJob/backup", "Succeeded", ready=False, restarts=0),
            PodHealth("sre", "worker-1", "Deployment/worker", "Running", ready=False, restarts=9,
                      reason="CrashLoopBackOff"),
        ),
    )
    assert baseline.unhealthy_owners() == {"sre/Deployment/worker"}
