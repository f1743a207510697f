"""SIGKILL in the middle of a phase's writes (or a rollback's), then resume (or roll back again): the same final
state as without the kill, and no change applied twice."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runbook_engine.engine.connect import fixed_connector
from runbook_engine.engine.executor import RESTART_VALUE, restart_annotation
from runbook_engine.engine.journal import ChangeState, RunStatus, RunStore
from runbook_engine.engine.run_model import RunOptions
from runbook_engine.engine.runner import Engine
from runbook_engine.kube.change import ChangeKind
from runbook_engine.kube.refs import ObjectRef

from .helpers import FileCluster, load, seed_objects, state_of, three_phase, write_log

HERE = Path(__file__).parent
API = ObjectRef("apps/v1", "Deployment", "sre", "api")


def _normalised(cluster: FileCluster) -> dict[str, dict[str, object]]:
    """The cluster's objects with the restart timestamp (different in every run) replaced."""
    state = state_of(cluster)
    template = state[str(API)]["spec"]["template"]["metadata"]  # type: ignore[index]
    if "annotations" in template:
        template["annotations"]["kubectl.kubernetes.io/restartedAt"] = "<restarted>"
    return state


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    """The final state of an uninterrupted run."""
    tmp = tmp_path_factory.mktemp("reference")
    cluster = FileCluster.create(tmp / "cluster.json", seed_objects(healthy=True))
    playbook, inventory = load(three_phase(tmp, "pause"))
    [result] = Engine(RunStore(tmp / "state"), connect=fixed_connector({"lab": cluster})).run(
        playbook, inventory, RunOptions())
    assert result.status is RunStatus.COMPLETED
    return _normalised(cluster)


def _child(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(HERE / "killable.py"), *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120, check=False)


@pytest.mark.slow
@pytest.mark.parametrize("kill", [
    "KILL_BEFORE_WRITE=1",  # phase 1's only write journaled, not sent
    "KILL_AFTER_WRITE=2",  # phase 2's first create sent, not yet marked applied
    "KILL_BEFORE_WRITE=5",  # the delete journaled, not sent
    "KILL_AFTER_WRITE=6",  # the restart sent, not yet marked applied
    "KILL_AFTER_WRITE=7",  # phase 3's write sent, run not yet completed
])
def test_killed_run_resumes_to_the_uninterrupted_state(
    tmp_path: Path, kill: str, reference: dict[str, dict[str, object]]
) -> None:
    cluster_file = tmp_path / "cluster.json"
    FileCluster.create(cluster_file, seed_objects(healthy=True))
    playbook = three_phase(tmp_path, "pause")
    variable, _, count = kill.partition("=")
    state = tmp_path / "state"

    killed = _child([str(state), str(cluster_file), str(playbook), "run"], {variable: count})
    assert killed.returncode == -9, killed.stderr
    store = RunStore(state)
    [record] = store.list_runs()
    assert record.status is RunStatus.RUNNING  # the journal says the run was interrupted

    resumed = _child([str(state), str(cluster_file), str(playbook), "resume", record.id], {})
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.split() == [record.id, "completed"]

    cluster = FileCluster(cluster_file)
    assert _normalised(cluster) == reference
    changes = store.changes(record.id)
    assert len(changes) == 7 and all(c.state is ChangeState.APPLIED for c in changes)
    writes = write_log(cluster_file)
    assert len(writes) == len(changes), writes  # every change sent exactly once, across both processes
    assert sorted(w["ref"] for w in writes) == sorted(str(c.change.ref) for c in changes)
    [restart] = [c for c in changes if c.change.kind is ChangeKind.RESTART]
    assert restart_annotation(cluster.get(API)) == restart.change.meta[RESTART_VALUE]
    store.close()


@pytest.fixture(scope="module")
def undo_calls(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, str]]:
    """The write calls of an uninterrupted rollback of the three-phase run (an exact update is an apply,
    then a merge patch removing what the pre-image lacks)."""
    tmp = tmp_path_factory.mktemp("rollback-reference")
    cluster = FileCluster.create(tmp / "cluster.json", seed_objects(healthy=True))
    playbook, inventory = load(three_phase(tmp, "pause"))
    engine = Engine(RunStore(tmp / "state"), connect=fixed_connector({"lab": cluster}))
    [result] = engine.run(playbook, inventory, RunOptions())
    ran = len(write_log(tmp / "cluster.json"))
    assert engine.rollback(result.run_id, inventory=inventory).status is RunStatus.ROLLED_BACK
    return write_log(tmp / "cluster.json")[ran:]


def _without_repeats(calls: list[dict[str, str]]) -> list[dict[str, str]]:
    return [call for i, call in enumerate(calls) if i == 0 or call != calls[i - 1]]


@pytest.mark.slow
@pytest.mark.parametrize("kill", [
    "KILL_BEFORE_WRITE=1",  # the first undo (phase 3's) journaled, not sent
    "KILL_AFTER_WRITE=1",  # the first undo sent, not yet marked applied
    "KILL_AFTER_WRITE=3",  # an exact update's apply sent, its merge patch not
    "KILL_AFTER_WRITE=4",  # that update complete, not yet marked applied
    "KILL_BEFORE_WRITE=9",  # the last exact update's apply sent, its merge patch not
])
def test_killed_rollback_completes_when_run_again(tmp_path: Path, kill: str, undo_calls: list[dict[str, str]]) -> None:
    cluster_file = tmp_path / "cluster.json"
    before = state_of(FileCluster.create(cluster_file, seed_objects(healthy=True)))
    playbook = three_phase(tmp_path, "pause")
    state = tmp_path / "state"
    ran = _child([str(state), str(cluster_file), str(playbook), "run"], {})
    assert ran.returncode == 0, ran.stderr
    run_id, run_writes = ran.stdout.split()[0], len(write_log(cluster_file))
    variable, _, count = kill.partition("=")

    killed = _child([str(state), str(cluster_file), str(playbook), "rollback", run_id], {variable: count})
    assert killed.returncode == -9, killed.stderr
    again = _child([str(state), str(cluster_file), str(playbook), "rollback", run_id], {})
    assert again.returncode == 0, again.stderr
    assert again.stdout.split() == [run_id, "rolled_back"]

    assert state_of(FileCluster(cluster_file)) == before
    store = RunStore(state)
    undos = store.changes(run_id, undo=True)
    assert len(undos) == 7 and all(u.state is ChangeState.APPLIED for u in undos)  # each undo journaled once
    # every undo sent once across both processes; an update cut between its apply and its patch is redone
    # whole (the apply is idempotent), never a change that was complete
    calls = write_log(cluster_file)[run_writes:]
    assert _without_repeats(calls) == undo_calls
    cut_between_apply_and_patch = kill in ("KILL_AFTER_WRITE=3", "KILL_BEFORE_WRITE=9")
    assert len(calls) - len(undo_calls) == (1 if cut_between_apply_and_patch else 0)
    store.close()
