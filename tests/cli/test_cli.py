"""The ``runbook`` command end to end on a MemoryCluster: exit codes, dry runs, status, secrets."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from engine.helpers import CASES as ENGINE_CASES
from engine.helpers import PLANTED_SECRET, state_of, three_phase

from runbook_engine.cli.main import EXIT_INVALID, EXIT_OK, EXIT_PAUSED, EXIT_ROLLED_BACK, parse_extra_vars
from runbook_engine.errors import UserInputError
from runbook_engine.kube.memory import MemoryCluster
from runbook_engine.kube.refs import ObjectRef

from .conftest import Invocation

CASES = Path(__file__).parent / "cases"
INVENTORY = str(ENGINE_CASES / "inventory")
NEW_PASSWORD = "n3w-p4ssw0rd-planted-e2b9"


def _fix_health(cluster: MemoryCluster) -> None:
    cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "health", "namespace": "sre"},
                   "data": {"ready": "true"}}, field_manager="operator")


def _case(tmp_path: Path, name: str, on_failure: str) -> str:
    path = tmp_path / name
    path.write_text((CASES / name).read_text().replace("__ON_FAILURE__", on_failure))
    return str(path)


def test_check_diff_prints_object_diffs_and_writes_nothing(
    runbook: Invocation, cluster: MemoryCluster, tmp_path: Path
) -> None:
    before = state_of(cluster)
    code, out = runbook("run", str(three_phase(tmp_path, "pause")), "-i", INVENTORY, "--check", "--diff")

    assert code == EXIT_OK, out
    assert cluster.writes == 0 and state_of(cluster) == before
    assert not runbook.state_dir.exists()  # a dry run keeps no journal
    assert "would update Namespace/sre" in out
    assert "+    istio-injection: enabled" in out
    assert "would create ConfigMap/sre/mesh-config" in out and "+  mtls: permissive" in out
    assert "would delete ConfigMap/sre/legacy" in out and "-  old: 'yes'" in out
    assert "would restart Deployment/sre/api" in out
    assert "PHASE [workloads 2/3]" in out and "TASK [create the mesh config]" in out


def test_pause_status_resume_and_exit_codes(runbook: Invocation, cluster: MemoryCluster, tmp_path: Path) -> None:
    code, out = runbook("run", str(three_phase(tmp_path, "pause")), "-i", INVENTORY)
    assert code == EXIT_PAUSED, out
    assert "PAUSED [workloads]" in out

    code, out = runbook("status", "--json")
    status = json.loads(out)
    assert code == EXIT_OK
    assert (status["status"], status["current_phase"]) == ("paused", "workloads")
    assert "platform healthy" in status["paused_reason"]
    code, out = runbook("runs", "--json")
    assert [r["run_id"] for r in json.loads(out)] == [status["run_id"]]

    _fix_health(cluster)
    code, out = runbook("resume", status["run_id"])
    assert code == EXIT_OK, out
    assert "PHASE [finish 3/3]" in out and "completed" in out
    code, out = runbook("resume", status["run_id"])
    assert code == EXIT_INVALID and "already completed" in out


def test_checkpoint_rollback_exits_3(runbook: Invocation, cluster: MemoryCluster, tmp_path: Path) -> None:
    code, out = runbook("run", str(three_phase(tmp_path, "rollback")), "-i", INVENTORY)
    assert code == EXIT_ROLLED_BACK, out
    assert "ROLLBACK [workloads]" in out
    assert cluster.get(ObjectRef("v1", "ConfigMap", "sre", "legacy")) is not None


def test_invalid_playbook_exits_4_with_location_and_writes_nothing(
    runbook: Invocation, cluster: MemoryCluster
) -> None:
    playbook = CASES / "bad_unknown_module.yml"
    code, out = runbook("run", str(playbook), "-i", INVENTORY)
    assert code == EXIT_INVALID
    assert f"{playbook}:7:" in out and "k8s_apply" in out  # file:line:column and a did-you-mean hint
    assert cluster.writes == 0


def test_no_secret_reaches_console_events_or_journal_file(
    runbook: Invocation, cluster: MemoryCluster, tmp_path: Path
) -> None:
    playbook = _case(tmp_path, "secret_rotation.yml", "rollback")
    secret = ObjectRef("v1", "Secret", "sre", "db-creds")
    original = state_of(cluster)[str(secret)]
    code, out = runbook("-v", "run", playbook, "-i", INVENTORY, "--diff", "-e", f"new_password={NEW_PASSWORD}")

    assert code == EXIT_ROLLED_BACK, out
    assert "Secret/sre/db-creds" in out  # the change is shown, its data is not
    code, status = runbook("status", "--json")
    journal = b"".join(p.read_bytes() for p in runbook.state_dir.rglob("*") if p.is_file())  # incl. reports
    plain = (PLANTED_SECRET, NEW_PASSWORD)
    for planted in (*plain, *(base64.b64encode(p.encode()).decode() for p in plain)):
        assert planted not in out and planted not in status
        assert planted.encode() not in journal
    # ...and yet the sealed pre-image restored the Secret exactly
    assert state_of(cluster)[str(secret)] == original


@pytest.mark.parametrize(("values", "expected"), [
    (["a=1", "b=x y=z"], {"a": "1", "b": "x", "y": "z"}),
    (["{mesh: istio, n: 3}"], {"mesh": "istio", "n": 3}),
    (["a=1", "a=2"], {"a": "2"}),
])
def test_extra_vars_forms(values: list[str], expected: dict[str, object]) -> None:
    assert parse_extra_vars(values) == expected


def test_extra_vars_file_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "vars.yml"
    path.write_text("mesh: linkerd\n")
    assert parse_extra_vars([f"@{path}"]) == {"mesh": "linkerd"}
    for bad in ("novalue", f"@{tmp_path / 'missing.yml'}", "[1, 2]"):
        with pytest.raises(UserInputError):
            parse_extra_vars([bad])


def test_check_without_diff_lists_changes_only(runbook: Invocation, cluster: MemoryCluster, tmp_path: Path) -> None:
    code, out = runbook("run", str(three_phase(tmp_path, "pause")), "-i", INVENTORY, "--check")
    assert code == EXIT_OK and cluster.writes == 0
    assert "would create ConfigMap/sre/mesh-config" in out and "+  mtls: permissive" not in out


def test_check_command_validates_without_touching_the_cluster(
    runbook: Invocation, cluster: MemoryCluster, tmp_path: Path
) -> None:
    code, out = runbook("check", str(three_phase(tmp_path, "pause")), "-i", INVENTORY)
    assert code == EXIT_OK and "is valid (1 plays, 3 phases, 1 clusters)" in out
    code, out = runbook("check", str(three_phase(tmp_path, "sideways")), "-i", INVENTORY)
    assert code == EXIT_INVALID and "on_failure must be one of: pause, rollback" in out
    assert cluster.writes == 0 and cluster.requests.total() == 0
