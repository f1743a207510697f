"""Variable precedence: which source wins when a variable is defined in several places.

This is Ansible's documented order, restricted to the sources a runbook has (docs/variables.md).
The inventory's own layers (group vars by depth, ``group_vars/``, host vars, ``host_vars/``) are
merged when the inventory is loaded (``ClusterSpec.vars``); the engine layers the rest at run time
with ``merge_scopes``. Merging replaces whole values (Ansible's default ``hash_behaviour=replace``);
use the ``combine`` filter to merge dictionaries on purpose.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import IntEnum
from typing import Any


class Scope(IntEnum):
    """Variable sources from lowest to highest precedence."""

    ROLE_DEFAULTS = 1  # roles/<role>/defaults/main.yml
    INVENTORY = 2  # ClusterSpec.vars: group vars (all → parents → children), then host vars
    PLAY = 3  # play `vars:`, then play `vars_files:`
    ROLE_VARS = 4  # roles/<role>/vars/main.yml
    PHASE = 5  # phase `vars:`
    BLOCK = 6  # `vars:` of enclosing blocks (outermost first) and of task includes
    TASK = 7  # the task's own `vars:`
    FACTS = 8  # `register:` results and `set_fact:` keys, in the order they were set
    ROLE_PARAMS = 9  # `- role: x` + `vars:` on the role's inclusion
    LOOP = 10  # the loop variable (`item` or `loop_control.loop_var`) and `batch`
    EXTRA = 11  # `-e` / `--extra-vars`: always win
    MAGIC = 12  # set by the engine, cannot be overridden: inventory_hostname, cluster, run_id, ...


MAGIC_VARS: dict[str, str] = {
    "inventory_hostname": "the name of the cluster the play runs on",
    "cluster": "the same as inventory_hostname",
    "inventory_dir": "the inventory directory",
    "group_names": "the groups the cluster belongs to (without 'all')",
    "groups": "every group name mapped to its cluster names",
    "hostvars": "every cluster name mapped to its inventory variables",
    "playbook_dir": "the directory of the playbook file",
    "run_id": "the id of the current run",
    "phase_name": "the name of the phase being run",
    "role_name": "the role a task came from (role tasks only)",
    "role_path": "the directory of that role (role tasks only)",
    "check_mode": "true in --check (dry) runs",
}

BATCH_VAR = "batch"  # the current batch of `batch_over`, in phases with `serial`
RESCUE_VARS = frozenset({"ansible_failed_task"})  # set for the tasks of a block's `rescue:`

Layer = Mapping[str, Any] | Sequence[Mapping[str, Any]]


def _layers(value: Layer) -> Sequence[Mapping[str, Any]]:
    return [value] if isinstance(value, Mapping) else value


def merge_scopes(layers: Mapping[Scope, Layer]) -> dict[str, Any]:
    """Merge variable sources by precedence; a later ``Scope`` replaces the same name from an earlier one.

    A scope may hold one mapping or a sequence of them applied in order (``Scope.BLOCK``: outermost
    block first; ``Scope.FACTS``: in the order they were set).
    """
    merged: dict[str, Any] = {}
    for scope in sorted(layers):
        for layer in _layers(layers[scope]):
            merged.update(layer)
    return merged


def precedence_table() -> list[tuple[int, str]]:
    """(rank, scope name) from lowest to highest, as documented in docs/variables.md."""
    return [(scope.value, scope.name.lower()) for scope in Scope]
