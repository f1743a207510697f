"""The variables a run's templates see: which source feeds each precedence scope at run time.

``spec/vars.py`` defines the precedence (``Scope``) and documents the magic variables; the inventory
merges its own layers when it is loaded. Here a run supplies the rest for one phase — inventory,
play, phase and extra vars plus the magic variables — and, for a task that came from a role, the
role's defaults, vars and parameters. Registered results and facts (``RunState.facts``) go on top
of the layers in ``VarLayers``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runbook_engine.engine.phases import PhaseRef
from runbook_engine.engine.run_state import RunState
from runbook_engine.engine.tasks import VarLayers
from runbook_engine.spec.model import TaskSpec
from runbook_engine.spec.vars import Scope

Layers = dict[Scope, list[Mapping[str, Any]]]


def phase_layers(run: RunState, ref: PhaseRef) -> Layers:
    """The variable sources of phase ``ref`` of ``run``, by scope."""
    return {Scope.INVENTORY: [run.spec.vars], Scope.PLAY: [ref.play.vars], Scope.PHASE: [ref.phase.vars],
            Scope.EXTRA: [run.options.extra_vars], Scope.MAGIC: [_magic(run, ref)]}


def role_layers(run: RunState, task: TaskSpec) -> Layers:
    """The extra sources of a task that came from a role (none for a playbook's own task)."""
    role = run.playbook.roles.get(task.role or "")
    if role is None:
        return {}
    return {Scope.ROLE_DEFAULTS: [role.defaults], Scope.ROLE_VARS: [role.vars],
            Scope.ROLE_PARAMS: [task.role_params],
            Scope.MAGIC: [{"role_name": role.name, "role_path": str(role.path)}]}


def phase_variables(run: RunState, ref: PhaseRef) -> dict[str, Any]:
    """Every variable phase ``ref`` sees outside its tasks (``when``, ``serial``, checks, the phase gate)."""
    return VarLayers(phase_layers(run, ref), run.facts).compose({})


def _magic(run: RunState, ref: PhaseRef) -> dict[str, Any]:
    """The magic variables of ``spec/vars.py``'s ``MAGIC_VARS`` that hold for a whole phase."""
    inventory = run.inventory
    return {
        "inventory_hostname": run.spec.name, "cluster": run.spec.name,
        "inventory_dir": str((inventory.path.parent if inventory.path.is_file() else inventory.path).resolve()),
        "group_names": list(run.spec.groups), "groups": {k: list(v) for k, v in inventory.groups.items()},
        "hostvars": {k: dict(v.vars) for k, v in inventory.clusters.items()},
        "playbook_dir": str(run.playbook.path.resolve().parent), "run_id": run.id, "phase_name": ref.phase.name,
        "check_mode": not run.options.attended,
    }
