"""A three-phase playbook against MemoryCluster: checkpoints continue, pause, roll back; resume finishes."""

from __future__ import annotations

from pathlib import Path

from runbook_engine.engine.journal import ChangeState, RunStatus, RunStore, Stage
from runbook_engine.engine.runner import Engine, RunOptions
from runbook_engine.kube.memory import MemoryCluster
from runbook_engine.kube.refs import ObjectRef
from runbook_engine.report.verdict import Status

from .helpers import load, state_of, three_phase

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
    assert store.baseline(run_id) is None or isinstance(store.baseline(run_id), dict)
