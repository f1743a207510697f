"""A three-phase playbook against MemoryCluster: checkpoints continue, pause, roll back; resume finishes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runbook_engine.engine.connect import fixed_connector
from runbook_engine.engine.events import Event, EventKind
from runbook_engine.engine.journal import ChangeState, RunStatus, RunStore, Stage
from runbook_engine.engine.run_model import PhaseGateRequest, RunOptions
from runbook_engine.engine.runner import Engine
from runbook_engine.errors import ClusterError
from runbook_engine.kube.cluster import Propagation
from runbook_engine.kube.memory import MemoryCluster
from runbook_engine.kube.refs import ObjectRef
from runbook_engine.report.verdict import Status

from .helpers import load, seed_objects, state_of, three_phase

HEALTH = ObjectRef("v1", "ConfigMap", "sre", "health")


def _fix_health(cluster: MemoryCluster) -> None:
    cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "health", "namespace": "sre"},
                   "data": {"ready": "true"}}, field_manager="operator")


def _run(engine: Engine, tmp_path: Path, on_failure: str) -> tuple[str, RunStatus]:
    playbook, inventory = load(three_phase(tmp_path, on_failure))
    [result] = engine.run(playbook, inventory, RunOptions())
    return result.run_id, result.status


def test_rollback_restores_every_object_of_the_failed_phase(
    engine: Engine, cluster: MemoryCluster, store: RunStore, tmp_path: Path
) -> None:
    playbook, inventory = load(three_phase(tmp_path, "rollback"))
    before_phase_2: dict[str, object] = {}

    def snapshot(event: object) -> None:
        if getattr(event, "kind", None) == "phase_start" and getattr(event, "phase", "") == "workloads":
            before_phase_2.update(state_of(cluster))

    engine.sink = snapshot
    [result] = engine.run(playbook, inventory, RunOptions())

    assert result.status is RunStatus.ROLLED_BACK
    after = state_of(cluster)
    assert sorted(after) == sorted(before_phase_2)
    for ref, obj in before_phase_2.items():
        assert after[ref] == obj, ref
    # phase 1's change stays: only the failed phase was undone
    assert after["Namespace/sre"]["metadata"]["labels"]["istio-injection"] == "enabled"
    changes = store.changes(result.run_id, phase_index=1, undo=False)
    assert {c.change.kind.value for c in changes} == {"create", "update", "delete", "restart"}
    assert all(c.state is ChangeState.REVERTED for c in changes)
    assert store.get_run(result.run_id).status is RunStatus.ROLLED_BACK


def test_pause_then_resume_after_the_fix_finishes_phases_2_and_3(
    engine: Engine, cluster: MemoryCluster, store: RunStore, tmp_path: Path
) -> None:
    run_id, status = _run(engine, tmp_path, "pause")
    record = store.get_run(run_id)
    assert status is RunStatus.PAUSED
    assert (record.current_phase, record.stage) == ("workloads", Stage.CHECKPOINT)
    assert "platform healthy" in record.paused_reason
    assert cluster.get(ObjectRef("v1", "ConfigMap", "sre", "rollout-done")) is None

    still = engine.resume(run_id)  # not fixed yet: the re-run checkpoint pauses again
    assert still.status is RunStatus.PAUSED
    assert cluster.get(ObjectRef("v1", "ConfigMap", "sre", "rollout-done")) is None

    _fix_health(cluster)
    done = engine.resume(run_id)
    assert done.status is RunStatus.COMPLETED
    assert cluster.get(ObjectRef("v1", "ConfigMap", "sre", "rollout-done")) is not None
    assert [v.status for v in store.verdicts(run_id, 1)] == [Status.PASS]
    # resuming did not repeat phase 2: each of its changes was journaled (and applied) once
    phase2 = store.changes(run_id, phase_index=1)
    assert len(phase2) == 5 and all(c.state is ChangeState.APPLIED for c in phase2)


def test_resume_refuses_when_a_touched_object_drifted(
    engine: Engine, cluster: MemoryCluster, store: RunStore, tmp_path: Path
) -> None:
    run_id, _ = _run(engine, tmp_path, "pause")
    _fix_health(cluster)
    cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mesh-config", "namespace": "sre"},
                   "data": {"mtls": "strict"}}, field_manager="someone-else")

    refused = engine.resume(run_id)
    assert refused.status is RunStatus.PAUSED
    assert "ConfigMap/sre/mesh-config changed since the pause" in refused.reason
    assert cluster.get(ObjectRef("v1", "ConfigMap", "sre", "rollout-done")) is None

    accepted = engine.resume(run_id, accept_drift=True)
    assert accepted.status is RunStatus.COMPLETED


def test_uninterrupted_run_completes_and_records_every_phase(
    engine: Engine, cluster: MemoryCluster, store: RunStore, tmp_path: Path
) -> None:
    _fix_health(cluster)
    run_id, status = _run(engine, tmp_path, "pause")
    assert status is RunStatus.COMPLETED
    kinds = [e["kind"] for e in store.events(run_id)]
    assert kinds.count("phase_start") == 3 and kinds[-1] == "run_end"
    assert (store.baseline(run_id) or {}).get("pods") == []  # no pods in this cluster


def test_simulation_writes_to_the_snapshot_and_predicts_checkpoints(
    cluster: MemoryCluster, tmp_path: Path
) -> None:
    decisions: list[tuple[str, str]] = []

    def sink(event: Event) -> None:
        if event.kind is EventKind.CHECKPOINT_DECISION:
            decisions.append((event.phase, str(event.data["decision"])))

    snapshot = MemoryCluster(cluster.objects(), name="lab")
    engine = Engine(RunStore.in_memory(), connect=fixed_connector({"lab": snapshot}), sink=sink)
    playbook, inventory = load(three_phase(tmp_path, "rollback"))
    [result] = engine.run(playbook, inventory, RunOptions(simulate=True))

    assert result.status is RunStatus.COMPLETED  # a simulation never stops at a checkpoint...
    assert decisions == [("namespaces", "continue"), ("workloads", "rollback")]
    assert snapshot.get(ObjectRef("v1", "ConfigMap", "sre", "rollout-done")) is not None  # ...and later
    assert snapshot.get(ObjectRef("coordination.k8s.io/v1", "Lease", "default", "runbook-engine-lock")) is None
    assert cluster.writes == 0  # phases were planned against the state earlier phases left


def test_phase_gate_pauses_before_any_write_and_sees_resumes(
    store: RunStore, cluster: MemoryCluster, tmp_path: Path
) -> None:
    seen: list[tuple[str, bool]] = []

    def gate(request: PhaseGateRequest) -> str | None:
        seen.append((request.phase.name, request.resumed))
        if request.phase.name == "workloads" and not request.resumed:
            return "flow ingress -> sre/api:8080 would break: ok -> reset"
        return None

    _fix_health(cluster)
    engine = Engine(store, connect=fixed_connector({"lab": cluster}), phase_gate=gate)
    playbook, inventory = load(three_phase(tmp_path, "pause"))
    [result] = engine.run(playbook, inventory, RunOptions())
    assert result.status is RunStatus.PAUSED and "would break" in result.reason
    assert cluster.get(ObjectRef("v1", "ConfigMap", "sre", "mesh-config")) is None
    assert store.get_run(result.run_id).stage is Stage.BEFORE

    assert engine.resume(result.run_id).status is RunStatus.COMPLETED
    assert seen == [("namespaces", False), ("workloads", False), ("workloads", True), ("finish", False)]


def test_resume_at_phase_reruns_a_rolled_back_phase(
    engine: Engine, cluster: MemoryCluster, store: RunStore, tmp_path: Path
) -> None:
    run_id, status = _run(engine, tmp_path, "rollback")
    assert status is RunStatus.ROLLED_BACK
    assert cluster.get(ObjectRef("v1", "ConfigMap", "sre", "mesh-config")) is None
    _fix_health(cluster)
    result = engine.resume(run_id, at_phase="workloads")
    assert result.status is RunStatus.COMPLETED, result.reason
    assert cluster.get(ObjectRef("v1", "ConfigMap", "sre", "mesh-config")) is not None
    assert store.baseline(run_id) is not None  # taken before the first phase


def test_resume_refuses_when_a_passed_check_now_fails(
    store: RunStore, cluster: MemoryCluster, tmp_path: Path
) -> None:
    def hold_workloads(request: PhaseGateRequest) -> str | None:
        return "hold" if request.phase.name == "workloads" and not request.resumed else None

    engine = Engine(store, connect=fixed_connector({"lab": cluster}), phase_gate=hold_workloads)
    playbook, inventory = load(three_phase(tmp_path, "pause"))
    [result] = engine.run(playbook, inventory, RunOptions())
    assert result.reason == "hold"
    cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "sre"},
                   "data": {"mode": "changed-by-hand"}}, field_manager="someone-else")

    refused = engine.resume(result.run_id)
    assert refused.status is RunStatus.PAUSED
    assert "check 'namespace labelled' was pass at the pause and is fail now" in refused.reason
    assert cluster.get(ObjectRef("v1", "ConfigMap", "sre", "mesh-config")) is None


class _FailingDeletes(MemoryCluster):
    """Fails its next delete once (an API outage in the middle of a rollback)."""

    armed = False

    def delete(self, ref: ObjectRef, *, dry_run: bool = False,
               propagation: Propagation = Propagation.BACKGROUND) -> dict[str, Any] | None:
        if self.armed:
            self.armed = False
            raise ClusterError("the API server went away", status=503)
        return super().delete(ref, dry_run=dry_run, propagation=propagation)


def test_an_interrupted_rollback_is_completed_by_running_it_again(store: RunStore, tmp_path: Path) -> None:
    cluster = _FailingDeletes(seed_objects(healthy=True), name="lab")
    engine = Engine(store, connect=fixed_connector({"lab": cluster}))
    before = state_of(cluster)
    playbook, inventory = load(three_phase(tmp_path, "pause"))
    [result] = engine.run(playbook, inventory, RunOptions())
    assert result.status is RunStatus.COMPLETED

    cluster.armed = True  # the first undo of phase 3 (delete ConfigMap rollout-done) fails
    with pytest.raises(ClusterError):
        engine.rollback(result.run_id, inventory=inventory)
    assert engine.rollback(result.run_id, inventory=inventory).status is RunStatus.ROLLED_BACK
    assert state_of(cluster) == before
    undos = store.changes(result.run_id, undo=True)
    assert len(undos) == 7 and all(u.state is ChangeState.APPLIED for u in undos)  # each undo journaled once


def test_a_run_interrupted_before_its_checkpoint_runs_the_checkpoint_on_resume(
    store: RunStore, cluster: MemoryCluster, tmp_path: Path
) -> None:
    class Interrupt(Exception):
        pass

    def interrupt(event: Event) -> None:
        if event.kind is EventKind.CHECKPOINT_START and event.phase == "workloads":
            raise Interrupt  # the operator's laptop dies between the writes and the checkpoint

    engine = Engine(store, connect=fixed_connector({"lab": cluster}), sink=interrupt)
    playbook, inventory = load(three_phase(tmp_path, "pause"))
    with pytest.raises(Interrupt):
        engine.run(playbook, inventory, RunOptions())
    [record] = store.list_runs()
    assert (record.status, record.stage) == (RunStatus.FAILED, Stage.CHECKPOINT)

    engine.sink = lambda event: None
    resumed = engine.resume(record.id)
    assert resumed.status is RunStatus.PAUSED and "platform healthy" in resumed.reason  # not skipped
    assert len(store.changes(record.id)) == 5 + 1  # phase 1 + phase 2, none repeated
