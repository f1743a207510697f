"""The actions and checks against the sandbox API server over HTTPS, with its real controllers.

A Deployment is applied, waited for, relabelled, restarted and verified; a release that crash-loops
makes the rollout wait time out naming the workload and its CrashLoopBackOff pod, and makes
``pods_healthy`` fail, while a workload that already crashed before the baseline is PRE-EXISTING.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runbook_engine.actions.base import ACTIONS, ActionContext, Settled
from runbook_engine.actions.builtin import BUILTIN_MODULES
from runbook_engine.actions.objects import patch_of
from runbook_engine.checks.base import Baseline, CheckContext
from runbook_engine.checks.baseline import take_baseline
from runbook_engine.checks.builtin import CHECKS
from runbook_engine.kube.change import Change, ChangeKind
from runbook_engine.kube.cluster import Cluster
from runbook_engine.kube.kube_cluster import KubeCluster
from runbook_engine.report.verdict import Status, Verdict
from runbook_engine.sandbox.runtime import ContainerOutcome, ContainerState, DefaultRuntime
from runbook_engine.sandbox.server import SandboxServer
from runbook_engine.sandbox.store import Obj, Store

from .actions_support import deployment

assert BUILTIN_MODULES
NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"},
        "status": {"conditions": [{"type": "Ready", "status": "True"}],
                   "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}}


class BrokenRelease(DefaultRuntime):
    """Containers whose image tag is ``broken`` exit 1 on start, so their pods crash-loop."""

    def run_container(self, store: Store, pod: Obj, container: Obj) -> ContainerOutcome:
        if str(container.get("image", "")).endswith(":broken"):
            return ContainerOutcome(ContainerState.FAILED, exit_code=1, reason="Error", log="panic: bad config")
        return super().run_container(store, pod, container)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    store = Store()
    store.create(NODE)
    with SandboxServer(tmp_path / "sandbox", store=store, runtime=BrokenRelease()) as server:
        yield KubeCluster.from_kubeconfig(server.kubeconfig, None, name="sandbox")


def execute(cluster: Cluster, changes: list[Change]) -> None:
    for change in changes:
        carried = patch_of(change)
        if carried is not None:
            cluster.patch(change.ref, carried[0], patch_type=carried[1])
        elif change.kind is ChangeKind.DELETE:
            cluster.delete(change.ref)
        else:
            assert change.after is not None
            cluster.apply(change.after)


def task(cluster: Cluster, name: str, args: dict[str, Any]) -> tuple[list[Change], Settled]:
    action = ACTIONS[name]()
    ctx = ActionContext(cluster=cluster)
    parsed = action.Args.model_validate(args)
    planned = action.plan(ctx, parsed)
    assert not planned.failed, planned.msg
    execute(cluster, planned.changes)
    return planned.changes, action.settle(ctx, parsed, planned.changes)


def pods_healthy(cluster: Cluster, baseline: Baseline | None) -> Verdict:
    check = CHECKS["pods_healthy"]()
    return check.run(CheckContext(cluster=cluster, baseline=baseline), check.Args(namespace="shop"))


SHOP = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
WAIT = {"timeout": 20, "interval": 0.1}


@pytest.mark.slow
def test_apply_wait_label_restart_and_verify(cluster: Cluster) -> None:
    changes, _ = task(cluster, "k8s_apply", {"definition": [SHOP, deployment("api")]})
    assert [c.kind for c in changes] == [ChangeKind.CREATE, ChangeKind.CREATE]
    assert task(cluster, "wait_for", {"kind": "Deployment", "name": "api", "namespace": "shop",
                                      "condition": "Available", **WAIT})[1].ok
    assert task(cluster, "k8s_apply", {"definition": deployment("api")})[0] == []  # already as written
    baseline = take_baseline(cluster)
    task(cluster, "k8s_label", {"kind": "Namespace", "name": "shop", "labels": {"istio-injection": "enabled"}})
    _, settled = task(cluster, "rollout_restart", {"name": "api", "namespace": "shop", **WAIT})
    assert settled.ok, settled.msg
    assert pods_healthy(cluster, baseline).status is Status.PASS
    ready = CHECKS["object_ready"]()
    verdict = ready.run(CheckContext(cluster=cluster), ready.Args(kind="Deployment", name="api", namespace="shop"))
    assert verdict.status is Status.PASS, verdict.summary


@pytest.mark.slow
def test_crash_looping_release_times_out_and_fails_the_check(cluster: Cluster) -> None:
    old = deployment("old", replicas=1)
    old["spec"]["template"]["spec"]["containers"][0]["image"] = "old:broken"
    task(cluster, "k8s_apply", {"definition": [SHOP, deployment("api", replicas=1), old]})
    assert task(cluster, "wait_for", {"kind": "Deployment", "name": "api", "namespace": "shop",
                                      "condition": "Available", **WAIT})[1].ok
    assert task(cluster, "wait_for", {"kind": "Pod", "selector": "app=old", "namespace": "shop",
                                      "jsonpath": "{.status.containerStatuses[0].state.waiting.reason}",
                                      "value": "CrashLoopBackOff", **WAIT})[1].ok
    baseline = take_baseline(cluster)  # "old" was already crash-looping before the run
    assert pods_healthy(cluster, baseline).status is Status.PREEXISTING

    release = {"spec": {"template": {"spec": {"containers": [{"name": "api", "image": "api:broken"}]}}}}
    task(cluster, "k8s_patch", {"kind": "Deployment", "name": "api", "namespace": "shop", "patch": release})
    _, settled = task(cluster, "rollout_restart", {"name": "api", "namespace": "shop", "timeout": 1.5,
                                                   "interval": 0.1})
    assert not settled.ok
    assert settled.msg.startswith("timed out after 1.5s; not rolled out: Deployment/shop/api (")
    assert ": CrashLoopBackOff" in settled.msg
    verdict = pods_healthy(cluster, baseline)
    assert verdict.status is Status.FAIL
    assert "(CrashLoopBackOff)" in verdict.summary and all("old-" not in p for p in verdict.data["failing"])
