"""The validated playbook and inventory model: frozen data the runner executes.

Loading (``spec.loader``) turns YAML into these models, recording every element's ``Location`` so
errors found later (templating, a missing variable at run time) still name file:line:column.
Task and check arguments stay *untemplated* here; they are rendered at run time with the variables
in scope, through ``spec.templating``.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from runbook_engine.errors import Location
from runbook_engine.kube.flow import Flow


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True, extra="forbid")


class OnFailure(StrEnum):
    PAUSE = "pause"
    ROLLBACK = "rollback"


class OnFlag(StrEnum):
    CONTINUE = "continue"
    PAUSE = "pause"


class NoData(StrEnum):
    PAUSE = "pause"
    FAIL = "fail"
    PASS = "pass"


Condition = str | bool | list[str | bool] | None


class TaskSpec(_Frozen):
    """One task: a module call, or a ``block`` with optional ``rescue``/``always``."""

    name: str
    module: str | None = None  # None for a block
    args: dict[str, Any] = Field(default_factory=dict)
    when: Condition = None
    loop: Any = None
    loop_var: str = "item"
    register_var: str | None = None  # the `register:` keyword
    until: Condition = None
    retries: int = 3
    delay: float = 5.0
    tags: tuple[str, ...] = ()
    ignore_errors: bool | str = False
    changed_when: Condition = None
    failed_when: Condition = None
    vars: dict[str, Any] = Field(default_factory=dict)
    block: tuple[TaskSpec, ...] = ()
    rescue: tuple[TaskSpec, ...] = ()
    always: tuple[TaskSpec, ...] = ()
    role: str | None = None  # the role this task came from
    base_dir: Path | None = None  # where relative files/templates resolve (role or playbook dir)
    location: Location | None = None
    role_params: dict[str, Any] = Field(default_factory=dict)  # `- role: x` + `vars:` of the inclusion
    # where each keyword's value and each argument was written: "when", "loop", "args.spec.replicas"...
    locations: dict[str, Location] = Field(default_factory=dict)

    @property
    def is_block(self) -> bool:
        return self.module is None


class CheckSpec(_Frozen):
    """One check in a checkpoint: ``- name: ...`` plus ``<check_module>: {args}``."""

    name: str
    module: str
    args: dict[str, Any] = Field(default_factory=dict)
    when: Condition = None
    tags: tuple[str, ...] = ()
    location: Location | None = None
    locations: dict[str, Location] = Field(default_factory=dict)  # "when", "args.namespace"...


class CheckpointSpec(_Frozen):
    checks: tuple[CheckSpec, ...] = ()
    preflight: tuple[CheckSpec, ...] = ()
    on_failure: OnFailure = OnFailure.PAUSE
    on_flag: OnFlag = OnFlag.CONTINUE
    no_data: NoData = NoData.PAUSE
    location: Location | None = None


class PhaseSpec(_Frozen):
    """A phase: tasks (roles expanded), then a checkpoint that decides continue, pause or roll back."""

    name: str
    tasks: tuple[TaskSpec, ...] = ()
    checkpoint: CheckpointSpec = Field(default_factory=CheckpointSpec)
    pause_before: bool | str = False  # a string is the operator-gate message
    pause_after: bool | str = False
    on_failure: OnFailure | None = None  # task failure policy; defaults to the checkpoint's
    serial: int | str | None = None  # batch size (or "30%") over ``batch_over``
    batch_over: Any = None  # list (or template) of items to batch; each batch sees ``batch``
    max_fail_percentage: float | None = None
    when: Condition = None
    tags: tuple[str, ...] = ()
    accept: tuple[str, ...] = ()  # flow ids whose predicted break is accepted
    vars: dict[str, Any] = Field(default_factory=dict)
    location: Location | None = None
    locations: dict[str, Location] = Field(default_factory=dict)  # "when", "serial", "vars.x"...


class PlaySpec(_Frozen):
    name: str
    hosts: str
    vars: dict[str, Any] = Field(default_factory=dict)  # play `vars`, then `vars_files` on top
    phases: tuple[PhaseSpec, ...] = ()
    location: Location | None = None
    locations: dict[str, Location] = Field(default_factory=dict)  # "hosts", "vars.x"...


class RoleSpec(_Frozen):
    """A role as loaded: its defaults (lowest precedence) and vars; its tasks are expanded into phases."""

    name: str
    path: Path
    defaults: dict[str, Any] = Field(default_factory=dict)
    vars: dict[str, Any] = Field(default_factory=dict)
    dependencies: tuple[str, ...] = ()
    location: Location | None = None  # where the playbook (or a dependent role) first names it


class PlaybookSpec(_Frozen):
    path: Path
    plays: tuple[PlaySpec, ...] = ()
    roles: dict[str, RoleSpec] = Field(default_factory=dict)  # every role used, by name


class ClusterSpec(_Frozen):
    """An inventory host: a cluster reached by kubeconfig+context, in-cluster config, or a sandbox."""

    name: str
    kubeconfig: Path | None = None
    context: str | None = None
    in_cluster: bool = False
    sandbox: Path | None = None  # scenario file; the engine starts the sandbox in-process
    prometheus_url: str | None = None
    groups: tuple[str, ...] = ()
    vars: dict[str, Any] = Field(default_factory=dict)  # merged by documented precedence
    location: Location | None = None


class InventorySpec(_Frozen):
    path: Path
    clusters: dict[str, ClusterSpec] = Field(default_factory=dict)
    groups: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    def flows_for(self, cluster: str) -> tuple[Flow, ...]:
        raw = self.clusters[cluster].vars.get("flows") or []
        return tuple(Flow.model_validate(f) for f in raw)
