"""``ansible``: run real Ansible content (a playbook or a role) through ansible-runner.

The run happens in ``settle``, in a private data directory that is removed afterwards, against
``inventory`` (by default the local machine, with this Python as the interpreter). Each Ansible event
is reported through ``ActionContext.log`` as ``TASK [name] ok|changed|failed|skipped``. In check mode
the engine still calls ``settle`` (``settle_in_check_mode``) and Ansible runs with ``--check``, which
reports what would change without changing it. A failed run fails the task with the failing task's
message. Ansible's own changes are outside the journal: rolling a phase back does not undo them.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Callable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

import ansible_runner
from pydantic import Field, model_validator

from runbook_engine.actions.base import Action, ActionArgs, ActionContext, Planned, Settled, register
from runbook_engine.actions.manifests import find_file
from runbook_engine.errors import UserInputError
from runbook_engine.kube.change import Change


def local_inventory() -> str:
    """The local machine, reached without SSH, using the Python that runs the engine."""
    return f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}"


class AnsibleArgs(ActionArgs):
    playbook: str | None = Field(default=None, description="Playbook file (relative to the role or playbook).")
    role: str | None = Field(default=None, description="Name of a role to run (found in roles_path).")
    roles_path: list[str] = Field(
        default_factory=list, description="Directories holding roles, in addition to ./roles beside the task."
    )
    extravars: dict[str, Any] = Field(default_factory=dict, description="Extra variables (-e) for Ansible.")
    inventory: str | None = Field(default=None, description="Inventory text or path; default: localhost, local.")
    limit: str | None = Field(default=None, description="Limit the run to these hosts (--limit).")
    tags: list[str] = Field(default_factory=list, description="Run only tasks with these tags (--tags).")
    timeout: int | None = Field(default=None, gt=0, description="Seconds before the run is stopped.")

    @model_validator(mode="after")
    def _playbook_xor_role(self) -> AnsibleArgs:
        if (self.playbook is None) == (self.role is None):
            raise ValueError("give exactly one of 'playbook' or 'role'")
        return self


def roles_dirs(ctx: ActionContext, args: AnsibleArgs) -> list[Path]:
    given = [Path(p) if Path(p).is_absolute() else ctx.base_dir / p for p in args.roles_path]
    return [*given, ctx.base_dir / "roles", ctx.base_dir]


def find_role(ctx: ActionContext, args: AnsibleArgs) -> Path:
    dirs = roles_dirs(ctx, args)
    for d in dirs:
        if (d / str(args.role)).is_dir():
            return d
    raise UserInputError(f"Ansible role {args.role!r} not found",
                         hint="searched " + ", ".join(str(d) for d in dirs) + "; set roles_path")


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def error_lines(output: str) -> str:
    """Ansible's own error lines (syntax errors, missing files) from its console output, uncoloured."""
    lines = [_ANSI.sub("", line).strip() for line in output.splitlines()]
    errors = [line for line in lines if line.startswith(("ERROR", "[ERROR]"))]
    return " ".join(errors or [line for line in lines if line][-3:])


def task_name(data: Mapping[str, Any]) -> str:
    """A task's name as ansible-playbook prints it: ``role : task`` for a role's tasks."""
    task = str(data.get("task") or "?")
    return f"{data['role']} : {task}" if data.get("role") else task


class TaskOutcome(StrEnum):
    """A task's result on one host, as ansible-playbook reports it."""

    OK = "ok"
    CHANGED = "changed"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNREACHABLE = "unreachable"


_RESULT_EVENTS: dict[str, TaskOutcome] = {
    "runner_on_ok": TaskOutcome.OK,
    "runner_on_failed": TaskOutcome.FAILED,
    "runner_on_skipped": TaskOutcome.SKIPPED,
    "runner_on_unreachable": TaskOutcome.UNREACHABLE,
}


class EventLog:
    """Turns ansible-runner events into one line per task result, and keeps the first failure."""

    def __init__(self, log: Callable[[str], None] | None) -> None:
        self._log = log
        self.changed = False
        self.failure = ""
        self.counts: dict[str, int] = {}

    def __call__(self, event: Mapping[str, Any]) -> bool:
        outcome = _RESULT_EVENTS.get(str(event.get("event", "")))
        if outcome is not None:
            line = self._record(outcome, event.get("event_data") or {})
            if self._log is not None:
                self._log(line)
        return True  # keep the event in the runner's artifacts too

    def _record(self, outcome: TaskOutcome, data: Mapping[str, Any]) -> str:
        res = data.get("res") or {}
        if outcome is TaskOutcome.OK and res.get("changed"):
            outcome, self.changed = TaskOutcome.CHANGED, True
        self.counts[outcome.value] = self.counts.get(outcome.value, 0) + 1
        task = f"TASK [{task_name(data)}] {outcome.value}"
        if outcome not in (TaskOutcome.FAILED, TaskOutcome.UNREACHABLE):
            return task
        message = str(res.get("msg") or res.get("stderr") or "").strip()
        if data.get("ignore_errors"):
            return f"{task} (ignored)" + (f": {message}" if message else "")
        line = f"{task}: {message}" if message else task
        self.failure = self.failure or line
        return line


def playbook_for(ctx: ActionContext, args: AnsibleArgs) -> tuple[str | list[dict[str, Any]], dict[str, str]]:
    """The playbook to run (a path, or a one-play list running the role) and the environment it needs."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    if args.playbook is not None:
        return str(find_file(ctx, args.playbook, "files").resolve()), {"PATH": path}
    play = {"name": f"role {args.role}", "hosts": "all", "gather_facts": False, "roles": [{"role": args.role}]}
    return [play], {"PATH": path, "ANSIBLE_ROLES_PATH": str(find_role(ctx, args).resolve())}


def run_ansible(ctx: ActionContext, args: AnsibleArgs, private_dir: str, events: EventLog) -> Any:
    """Run the playbook or role with ansible-runner; returns the finished ``Runner``."""
    playbook, envvars = playbook_for(ctx, args)
    return ansible_runner.run(
        private_data_dir=private_dir,
        playbook=playbook,
        inventory=args.inventory or local_inventory(),
        extravars=dict(args.extravars),
        envvars=envvars,
        limit=args.limit,
        tags=",".join(args.tags) or None,
        timeout=args.timeout,
        cmdline="--check" if ctx.check_mode else None,
        event_handler=events,
        quiet=True,
    )


@register
class Ansible(Action[AnsibleArgs]):
    name = "ansible"
    Args = AnsibleArgs
    settle_in_check_mode = True

    def plan(self, ctx: ActionContext, args: AnsibleArgs) -> Planned:
        what = f"playbook {find_file(ctx, args.playbook, 'files')}" if args.playbook else f"role {args.role}"
        if args.role is not None:
            find_role(ctx, args)
        verb = "would run (with --check)" if ctx.check_mode else "will run"
        return Planned(msg=f"{verb} Ansible {what}", result={"changed": False})

    def settle(self, ctx: ActionContext, args: AnsibleArgs, applied: list[Change]) -> Settled:
        events = EventLog(ctx.log)
        with tempfile.TemporaryDirectory(prefix="runbook-ansible-") as private_dir:
            runner = run_ansible(ctx, args, private_dir, events)
            status, rc = str(runner.status), runner.rc
            errors = "" if status == "successful" or events.failure else error_lines(runner.stdout.read())
        result = {"status": status, "rc": rc, "changed": events.changed, "tasks": dict(events.counts)}
        if status == "successful":
            counts = " ".join(f"{k}={v}" for k, v in sorted(events.counts.items()))
            return Settled(msg=f"Ansible run succeeded ({counts})", result=result, changed=events.changed)
        why = events.failure or f"Ansible failed (rc={rc})" + (f": {errors}" if errors else "")
        if status == "timeout":
            why = f"Ansible run stopped after {args.timeout}s timeout"
        return Settled(ok=False, msg=why, result=result, changed=events.changed)
