"""The ansible action runs real Ansible content through ansible-runner and reports its task events."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbook_engine.actions.ansible import Ansible, AnsibleArgs
from runbook_engine.actions.base import ActionContext, Settled
from runbook_engine.errors import UserInputError
from runbook_engine.kube.memory import MemoryCluster

CONTENT = Path(__file__).parent / "ansible"


def run(args: dict[str, object], check_mode: bool = False) -> tuple[str, Settled, list[str]]:
    lines: list[str] = []
    ctx = ActionContext(cluster=MemoryCluster(), base_dir=CONTENT, check_mode=check_mode, log=lines.append)
    parsed = AnsibleArgs.model_validate(args)
    planned = Ansible().plan(ctx, parsed)
    assert planned.changes == []
    return planned.msg, Ansible().settle(ctx, parsed, []), lines


@pytest.mark.slow
def test_playbook_runs_and_its_tasks_are_reported(tmp_path: Path) -> None:
    msg, settled, lines = run({"playbook": "site.yml", "extravars": {"out_dir": str(tmp_path), "mesh": "istio"}})
    assert msg.startswith("will run Ansible playbook") and msg.endswith("site.yml")
    assert settled.ok, settled.msg
    assert (tmp_path / "mesh.txt").read_text() == "mesh=istio\n"
    assert lines == ["TASK [Write the mesh marker] changed", "TASK [Read the marker back] ok",
                     "TASK [Check the marker] ok"]
    assert settled.changed and settled.result["tasks"] == {"changed": 1, "ok": 2}


@pytest.mark.slow
def test_check_mode_runs_with_check_and_changes_nothing(tmp_path: Path) -> None:
    assert Ansible.settle_in_check_mode
    msg, settled, lines = run({"role": "marker", "extravars": {"out_dir": str(tmp_path)}}, check_mode=True)
    assert msg == "would run (with --check) Ansible role marker"
    assert settled.ok, settled.msg
    assert lines[0] == "TASK [marker : Write the role marker] changed"
    assert not (tmp_path / "role.txt").exists()


@pytest.mark.slow
def test_failed_task_fails_the_action_with_its_message(tmp_path: Path) -> None:
    _, settled, lines = run({"role": "marker", "extravars": {"out_dir": str(tmp_path), "fail_now": True}})
    assert not settled.ok
    assert settled.msg == "TASK [marker : Fail on request] failed: asked to fail"
    assert lines[-1] == "TASK [marker : Fail on request] failed: asked to fail"
    assert (tmp_path / "role.txt").read_text() == "from role\n"


def test_missing_playbook_or_role_is_an_input_error() -> None:
    ctx = ActionContext(cluster=MemoryCluster(), base_dir=CONTENT)
    with pytest.raises(UserInputError, match=r"file not found: nope\.yml"):
        Ansible().plan(ctx, AnsibleArgs(playbook="nope.yml"))
    with pytest.raises(UserInputError, match="Ansible role 'nope' not found"):
        Ansible().plan(ctx, AnsibleArgs(role="nope"))


@pytest.mark.slow
def test_invalid_playbook_reports_ansible_error() -> None:
    _, settled, lines = run({"playbook": "broken.yml"})
    assert not settled.ok and lines == []
    assert settled.msg.startswith("Ansible failed (rc=")
    assert "hosts" in settled.msg
