"""Task and phase keywords, each from a case playbook under cases/tasks/, observed on the cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runbook_engine.engine.events import EventKind, TaskStatus
from runbook_engine.engine.journal import ChangeState, RunStatus, RunStore, Stage
from runbook_engine.engine.run_model import RunOptions
from runbook_engine.engine.runner import Engine
from runbook_engine.kube.memory import MemoryCluster
from runbook_engine.kube.refs import ObjectRef

from .helpers import CASES, Recorder, load, state_of

TASKS = CASES / "tasks"


def _cm(cluster: MemoryCluster, name: str) -> dict[str, Any] | None:
    return cluster.get(ObjectRef("v1", "ConfigMap", "sre", name))


def _playbook(tmp_path: Path, name: str, **substitutions: str) -> Path:
    text = (TASKS / name).read_text()
    for key, value in substitutions.items():
        text = text.replace(f"__{key.upper()}__", value)
    path = tmp_path / name
    path.write_text(text)
    return path


def _run(engine: Engine, path: Path, options: RunOptions | None = None) -> tuple[str, RunStatus, str]:
    playbook, inventory = load(path)
    [result] = engine.run(playbook, inventory, options or RunOptions())
    return result.run_id, result.status, result.reason


@pytest.mark.parametrize(("case", "expected"), [
    ("loop_when_register.yml", {"made": "2", "skipped": "1", "names": "cm-a,cm-c"}),
    ("block_rescue_always.yml", {"rescued": "yes", "always": "yes", "skipped_after_failure": "no"}),
    ("until_ignore_changed.yml", {"attempts": "2", "ignored": "True", "quiet_changed": "False"}),
])
def test_task_keywords(engine: Engine, cluster: MemoryCluster, tmp_path: Path, case: str,
                       expected: dict[str, str]) -> None:
    _, status, reason = _run(engine, _playbook(tmp_path, case))
    assert status is RunStatus.COMPLETED, reason
    assert (_cm(cluster, "results") or {}).get("data") == expected


def test_loop_skips_item_b(engine: Engine, cluster: MemoryCluster, tmp_path: Path) -> None:
    _run(engine, _playbook(tmp_path, "loop_when_register.yml"))
    assert _cm(cluster, "cm-a") and _cm(cluster, "cm-c") and _cm(cluster, "cm-b") is None


def test_tags_select_tasks_always_and_never(engine: Engine, cluster: MemoryCluster, tmp_path: Path) -> None:
    _, status, _ = _run(engine, _playbook(tmp_path, "tags.yml"), RunOptions(tags=frozenset({"mesh"})))
    assert status is RunStatus.COMPLETED
    made = {n for n in ("mesh", "policy", "always", "never", "plain") if _cm(cluster, n)}
    assert made == {"mesh", "always"}  # the untagged phase has no task matching --tags: skipped


def test_skip_tags_and_never_on_request(engine: Engine, cluster: MemoryCluster, tmp_path: Path) -> None:
    options = RunOptions(tags=frozenset({"debug", "policy"}), skip_tags=frozenset({"always"}))
    _run(engine, _playbook(tmp_path, "tags.yml"), options)
    assert {n for n in ("mesh", "policy", "always", "never", "plain") if _cm(cluster, n)} == {"policy", "never"}


def test_batches_stop_at_the_first_failed_batch_by_default(
    engine: Engine, cluster: MemoryCluster, tmp_path: Path, recorder: Recorder
) -> None:
    path = _playbook(tmp_path, "batches.yml", max_fail="0")
    playbook, inventory = load(path)
    [result] = engine.run(playbook, inventory, RunOptions(extra_vars={"broken": ["ns3"]}))
    assert result.status is RunStatus.PAUSED and "verify the batch" in result.reason
    enrolled = {n for n in ("ns1", "ns2", "ns3", "ns4", "ns5") if _cm(cluster, f"enrolled-{n}")}
    assert enrolled == {"ns1", "ns2", "ns3", "ns4"}  # batch 3 (ns5) never started
    batches = [e.data["items"] for e in recorder.events if e.kind is EventKind.BATCH_START]
    assert batches == [["ns1", "ns2"], ["ns3", "ns4"]]


def test_batches_tolerate_failures_under_max_fail_percentage(
    engine: Engine, cluster: MemoryCluster, tmp_path: Path
) -> None:
    path = _playbook(tmp_path, "batches.yml", max_fail="40")
    playbook, inventory = load(path)
    [result] = engine.run(playbook, inventory, RunOptions(extra_vars={"broken": ["ns3"]}))
    assert result.status is RunStatus.COMPLETED, result.reason  # 1 of 3 batches failed: 33% <= 40%
    assert _cm(cluster, "enrolled-ns5") and _cm(cluster, "done")


def test_gates_pause_before_inside_and_after_a_phase(
    engine: Engine, cluster: MemoryCluster, store: RunStore, tmp_path: Path
) -> None:
    run_id, status, reason = _run(engine, _playbook(tmp_path, "gates.yml"))
    assert (status, reason) == (RunStatus.PAUSED, "approve the maintenance window")
    assert _cm(cluster, "first") is None

    result = engine.resume(run_id)
    assert (result.status, result.reason) == (RunStatus.PAUSED, "check the dashboards")
    assert _cm(cluster, "first") and _cm(cluster, "second") is None

    result = engine.resume(run_id)
    assert result.status is RunStatus.PAUSED and store.get_run(run_id).stage is Stage.AFTER
    assert _cm(cluster, "second") and _cm(cluster, "third") is None

    assert engine.resume(run_id).status is RunStatus.COMPLETED
    assert _cm(cluster, "third")
    assert len(store.changes(run_id)) == 3  # no task ran twice across three resumes


def test_task_failure_pauses_and_resume_retries_only_the_failed_task(
    engine: Engine, cluster: MemoryCluster, store: RunStore, tmp_path: Path
) -> None:
    run_id, status, reason = _run(engine, _playbook(tmp_path, "task_failure.yml", on_failure="pause"))
    assert status is RunStatus.PAUSED and "not found" in reason
    cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "missing", "namespace": "sre"}},
                  field_manager="operator")
    result = engine.resume(run_id)
    assert result.status is RunStatus.COMPLETED, result.reason
    labels = (_cm(cluster, "missing") or {})["metadata"].get("labels")
    assert labels == {"mesh": "on"} and _cm(cluster, "after")
    refs = [str(c.change.ref) for c in store.changes(run_id)]
    assert refs.count("ConfigMap/sre/made") == 1


def test_task_failure_with_rollback_policy_undoes_the_phase(
    engine: Engine, cluster: MemoryCluster, store: RunStore, tmp_path: Path, recorder: Recorder
) -> None:
    run_id, status, _ = _run(engine, _playbook(tmp_path, "task_failure.yml", on_failure="rollback"))
    assert status is RunStatus.ROLLED_BACK
    assert _cm(cluster, "made") is None and _cm(cluster, "early")  # phase 1 stays
    assert [c.state for c in store.changes(run_id, phase_index=1, undo=False)] == [ChangeState.REVERTED]
    failed = [e for e in recorder.events if e.kind is EventKind.TASK_RESULT and e.data["status"] == "failed"]
    assert [e.task for e in failed] == ["label a ConfigMap that may be missing"]


def test_rollback_command_undoes_every_phase_newest_first(
    engine: Engine, cluster: MemoryCluster, store: RunStore, tmp_path: Path
) -> None:
    before = state_of(cluster)
    cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "missing", "namespace": "sre"}},
                  field_manager="operator")
    with_missing = state_of(cluster)
    run_id, status, _ = _run(engine, _playbook(tmp_path, "task_failure.yml", on_failure="pause"))
    assert status is RunStatus.COMPLETED
    _, inventory = load(tmp_path / "task_failure.yml")
    result = engine.rollback(run_id, inventory=inventory)
    assert result.status is RunStatus.ROLLED_BACK
    assert state_of(cluster) == with_missing != before
    assert all(c.state is ChangeState.REVERTED for c in store.changes(run_id, undo=False))


def test_check_mode_counts_changes_without_writing(engine: Engine, cluster: MemoryCluster, tmp_path: Path,
                                                   recorder: Recorder) -> None:
    engine.store = RunStore.in_memory()
    _, status, _ = _run(engine, _playbook(tmp_path, "gates.yml"), RunOptions(check=True))
    assert status is RunStatus.COMPLETED and cluster.writes == 0
    diffs = [e.message for e in recorder.events if e.kind is EventKind.DIFF]
    assert diffs == ["create ConfigMap/sre/first", "create ConfigMap/sre/second", "create ConfigMap/sre/third"]
    results = [e.data["status"] for e in recorder.events if e.kind is EventKind.TASK_RESULT]
    assert results.count(TaskStatus.CHANGED.value) == 3


@pytest.mark.parametrize(("replicas", "expected"), [("3", RunStatus.COMPLETED), ("1", RunStatus.PAUSED)])
def test_assert_conditions_load_and_decide_at_run_time(
    engine: Engine, cluster: MemoryCluster, tmp_path: Path, replicas: str, expected: RunStatus
) -> None:
    _, status, reason = _run(engine, _playbook(tmp_path, "assert_conditions.yml", replicas=replicas))
    assert status is expected, reason
    assert (_cm(cluster, "asserted") is not None) is (expected is RunStatus.COMPLETED)
    if expected is RunStatus.PAUSED:
        assert "need at least 2 replicas, have 1" in reason


@pytest.mark.parametrize(("size", "batches"), [
    ("2", ["batch-ns1-ns2", "batch-ns3-ns4", "batch-ns5"]),
    ("40%", ["batch-ns1-ns2", "batch-ns3-ns4", "batch-ns5"]),
    ("5", ["batch-ns1-ns2-ns3-ns4-ns5"]),
])
def test_templated_serial_sets_the_batch_size_and_a_checks_only_phase_runs(
    engine: Engine, cluster: MemoryCluster, tmp_path: Path, size: str, batches: list[str]
) -> None:
    _, status, reason = _run(engine, _playbook(tmp_path, "serial_template.yml", size=size, last=batches[-1]))
    made = sorted(o["metadata"]["name"] for o in cluster.list("v1", "ConfigMap", "sre")
                  if o["metadata"]["name"].startswith("batch-"))
    assert made == batches
    # The checks-only phase ran: its check fails (the key is absent), so the run pauses there.
    assert status is RunStatus.PAUSED and "the last batch was recorded" in reason


def test_a_serial_that_is_not_a_size_is_invalid_input(engine: Engine, tmp_path: Path) -> None:
    from runbook_engine.errors import UserInputError

    with pytest.raises(UserInputError, match="`serial` of phase 'enrol'"):
        _run(engine, _playbook(tmp_path, "serial_template.yml", size="lots", last="x"))
