"""rollout_restart: RESTART changes with exact images, and a wait that converges or names what is stuck."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import pytest

from runbook_engine.actions.base import ActionContext
from runbook_engine.actions.rollout_restart import RESTARTED_AT, RolloutRestart, RolloutRestartArgs
from runbook_engine.kube.change import Change, ChangeKind
from runbook_engine.kube.cluster import Obj
from runbook_engine.kube.refs import ObjectRef

from .actions_support import StatusDriven, deployment, execute

API = ObjectRef("apps/v1", "Deployment", "shop", "api")
WEB = ObjectRef("apps/v1", "Deployment", "shop", "web")
DONE = {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2}


def crashing_pod(name: str, app: str) -> Obj:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "labels": {"app": app}},
        "spec": {"containers": [{"name": app}]},
        "status": {"phase": "Running", "containerStatuses": [
            {"name": app, "ready": False, "restartCount": 4,
             "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]},
    }


@pytest.fixture
def cluster() -> StatusDriven:
    return StatusDriven([deployment("api"), deployment("web"), crashing_pod("web-7f9-x2", "web")])


@pytest.fixture
def progress() -> list[tuple[str, int, int]]:
    return []


@pytest.fixture
def ctx(cluster: StatusDriven, progress: list[tuple[str, int, int]]) -> ActionContext:
    return ActionContext(cluster=cluster, progress=lambda what, done, total: progress.append((what, done, total)))


def restart(ctx: ActionContext, **args: object) -> tuple[RolloutRestart, RolloutRestartArgs, list[Change]]:
    action = RolloutRestart()
    parsed = RolloutRestartArgs.model_validate({"namespace": "shop", "timeout": 2, "interval": 0.02, **args})
    planned = action.plan(ctx, parsed)
    return action, parsed, planned.changes


def test_plan_restarts_each_selected_workload(ctx: ActionContext, cluster: StatusDriven) -> None:
    writes = cluster.writes
    _, _, changes = restart(ctx, selector="app in (api,web)")
    assert cluster.writes == writes
    assert [(c.kind, c.ref) for c in changes] == [(ChangeKind.RESTART, API), (ChangeKind.RESTART, WEB)]
    for change in changes:
        assert change.before == cluster.get(change.ref)
        stamp = change.meta["restarted_at"]
        assert change.after is not None
        assert change.after["spec"]["template"]["metadata"]["annotations"] == {RESTARTED_AT: stamp}
        change.after["spec"]["template"]["metadata"].pop("annotations")
        assert change.after == change.before  # nothing else differs


def test_missing_named_workload_fails_the_task(ctx: ActionContext) -> None:
    planned = RolloutRestart().plan(ctx, RolloutRestartArgs(name="ghost", namespace=["shop", "data"]))
    assert planned.failed and planned.changes == []
    assert planned.msg == "not found: Deployment/shop/ghost, Deployment/data/ghost"


@contextlib.contextmanager
def converging(cluster: StatusDriven, ref: ObjectRef, delay: float) -> Iterator[None]:
    """The controller, in the background: one replica updated at first, all of them after ``delay``."""

    def finish() -> None:
        cluster.set_status(ref, {"observedGeneration": 1, "replicas": 3, "updatedReplicas": 1, "readyReplicas": 1})
        threading.Event().wait(delay)
        cluster.set_status(ref, DONE)

    thread = threading.Thread(target=finish)
    thread.start()
    try:
        yield
    finally:
        thread.join()


def test_settle_waits_until_the_rollout_completes(ctx: ActionContext, cluster: StatusDriven,
                                                  progress: list[tuple[str, int, int]]) -> None:
    action, args, changes = restart(ctx, name="api")
    execute(cluster, changes)
    assert cluster.get(API)["metadata"]["generation"] == 2  # type: ignore[index]
    with converging(cluster, API, 0.15):
        settled = action.settle(ctx, args, changes)
    assert settled.ok, settled.msg
    assert settled.msg == "rolled out: Deployment/shop/api"
    assert progress[0] == ("rollout", 0, 1) and progress[-1] == ("rollout", 1, 1)


def test_settle_times_out_naming_workloads_and_crashing_pods(ctx: ActionContext, cluster: StatusDriven) -> None:
    action, args, changes = restart(ctx, selector="app in (api,web)", timeout=0.2)
    execute(cluster, changes)
    cluster.set_status(API, DONE)
    cluster.set_status(WEB, {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1, "readyReplicas": 2})
    settled = action.settle(ctx, args, changes)
    assert not settled.ok
    assert settled.msg == ("timed out after 0.2s; not rolled out: Deployment/shop/web "
                           "(1 of 2 replicas updated; pod web-7f9-x2: CrashLoopBackOff)")
    assert settled.result == {"not_rolled_out": ["Deployment/shop/web"]}


def test_no_wait_returns_at_once(ctx: ActionContext, cluster: StatusDriven) -> None:
    action, args, changes = restart(ctx, name="api", wait=False)
    settled = action.settle(ctx, args, changes)
    assert settled.ok and "not waiting" in settled.msg
