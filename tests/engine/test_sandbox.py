"""The three-phase playbook against the sandbox, over HTTPS through its kubeconfig: rollback is exact."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from runbook_engine.engine.connect import Connector, connect
from runbook_engine.engine.events import Event, EventKind
from runbook_engine.engine.journal import RunStatus, RunStore
from runbook_engine.engine.modules import catalog
from runbook_engine.engine.run_model import RunOptions
from runbook_engine.engine.runner import Engine
from runbook_engine.kube.cluster import Cluster
from runbook_engine.kube.kube_cluster import KubeCluster
from runbook_engine.kube.refs import ObjectRef
from runbook_engine.spec.inventory import load_inventory
from runbook_engine.spec.loader import load_playbook
from runbook_engine.spec.model import ClusterSpec

from .helpers import CASES, three_phase, user_state

REFS = [
    ObjectRef("v1", "Namespace", "", "sre"),
    ObjectRef("v1", "ConfigMap", "sre", "settings"),
    ObjectRef("v1", "ConfigMap", "sre", "legacy"),
    ObjectRef("v1", "ConfigMap", "sre", "mesh-config"),
    ObjectRef("apps/v1", "Deployment", "sre", "api"),
]


@pytest.mark.slow
def test_rollback_on_the_sandbox_restores_objects_exactly(tmp_path: Path) -> None:
    state_dir = tmp_path / ".runbook"
    inventory = load_inventory(CASES / "sandbox")
    playbook = load_playbook(three_phase(tmp_path, "rollback"), catalog=catalog())
    snapshots: dict[str, dict[str, Any]] = {}
    live: list[Cluster] = []

    @contextmanager
    def capture(spec: ClusterSpec) -> Iterator[Cluster]:
        with connect(spec, state_dir) as cluster:
            assert isinstance(cluster, KubeCluster)  # the production client path, over HTTPS
            live.append(cluster)
            yield cluster
            snapshots["end"] = user_state(cluster, REFS)

    def sink(event: Event) -> None:
        if event.kind is EventKind.PHASE_START and event.phase == "workloads":
            snapshots["before_phase_2"] = user_state(live[0], REFS)

    store = RunStore(state_dir)
    [result] = Engine(store, connect=capture, sink=sink).run(playbook, inventory, RunOptions())

    assert result.status is RunStatus.ROLLED_BACK, result.reason
    before, after = snapshots["before_phase_2"], snapshots["end"]
    for ref in REFS:
        assert after[str(ref)] == before[str(ref)], ref
    assert before[str(REFS[3])] is None and before[str(REFS[2])] is not None  # created undone, deleted back
    store.close()


@pytest.mark.slow
def test_pause_and_resume_on_the_sandbox_across_restarts(tmp_path: Path) -> None:
    state_dir = tmp_path / ".runbook"
    inventory = load_inventory(CASES / "sandbox")
    playbook = load_playbook(three_phase(tmp_path, "pause"), catalog=catalog())
    engine = Engine(RunStore(state_dir), connect=Connector(state_dir))

    [result] = engine.run(playbook, inventory, RunOptions())
    assert result.status is RunStatus.PAUSED
    with connect(inventory.clusters["lab"], state_dir) as cluster:  # the sandbox restarts from its state
        assert cluster.get(ObjectRef("v1", "ConfigMap", "sre", "mesh-config")) is not None
        cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "health", "namespace": "sre"},
                       "data": {"ready": "true"}}, field_manager="operator")

    resumed = engine.resume(result.run_id, playbook=playbook, inventory=inventory)
    assert resumed.status is RunStatus.COMPLETED, resumed.reason
    with connect(inventory.clusters["lab"], state_dir) as cluster:
        assert cluster.get(ObjectRef("v1", "ConfigMap", "sre", "rollout-done")) is not None
