"""A playbook seen from one cluster: its phases, which of them tags select, and their batches.

``target_clusters`` names the clusters a playbook's plays address; ``phases_for`` numbers the phases
one cluster runs, in playbook order (the journal keys everything by that number). A phase runs when
``--tags``/``--skip-tags`` select one of its tasks; ``phase_batches`` splits its ``batch_over`` items into
``serial`` batches. ``playbook_hash`` identifies what the loader read, so a resume notices an edited
playbook.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runbook_engine.engine.objects import fingerprint
from runbook_engine.engine.tasks import tags_selected
from runbook_engine.errors import UserInputError
from runbook_engine.spec.hosts import match_hosts, select_clusters
from runbook_engine.spec.model import InventorySpec, PhaseSpec, PlaybookSpec, PlaySpec, TaskSpec
from runbook_engine.spec.templating import Templar


@dataclass(frozen=True)
class PhaseRef:
    """One phase of a run, with its number in the run and the play it belongs to."""

    index: int
    play: PlaySpec
    phase: PhaseSpec


def target_clusters(playbook: PlaybookSpec, inventory: InventorySpec, limit: str | None) -> list[str]:
    """The clusters the playbook's plays address, in inventory order, narrowed by ``--limit``."""
    wanted: set[str] = set()
    for play in playbook.plays:
        wanted.update(select_clusters(play.hosts, inventory, location=play.locations.get("hosts", play.location),
                                      limit=limit))
    return [name for name in inventory.clusters if name in wanted]


def phases_for(playbook: PlaybookSpec, inventory: InventorySpec, cluster: str) -> list[PhaseRef]:
    """Every phase of every play that addresses ``cluster``, numbered in playbook order."""
    selected = [(play, ph) for play in playbook.plays
                if cluster in match_hosts(play.hosts, inventory) for ph in play.phases]
    return [PhaseRef(i, play, ph) for i, (play, ph) in enumerate(selected)]


def start_index(phases: Sequence[PhaseRef], name: str | None) -> int:
    """The number of the phase called ``name`` (the first phase when None)."""
    if name is None:
        return 0
    for ref in phases:
        if ref.phase.name == name:
            return ref.index
    raise UserInputError(f"no phase named {name!r}",
                         hint="phases: " + ", ".join(repr(r.phase.name) for r in phases))


def phase_tags_selected(phase: PhaseSpec, tags: frozenset[str], skip_tags: frozenset[str]) -> bool:
    """A phase runs if one of its tasks is selected by tags; a checks-only phase by its own tags."""
    if not phase.tasks:
        return tags_selected(frozenset(phase.tags), tags, skip_tags)
    return _has_selected_task(phase.tasks, frozenset(phase.tags), tags, skip_tags)


def _has_selected_task(tasks: Sequence[TaskSpec], inherited: frozenset[str], tags: frozenset[str],
                       skip_tags: frozenset[str]) -> bool:
    for task in tasks:
        own = inherited | frozenset(task.tags)
        if task.is_block and _has_selected_task((*task.block, *task.rescue, *task.always), own, tags, skip_tags):
            return True
        if not task.is_block and tags_selected(own, tags, skip_tags):
            return True
    return False


def phase_batches(phase: PhaseSpec, templar: Templar) -> list[list[Any] | None]:
    """The phase's ``batch_over`` items in ``serial`` batches; ``[None]`` for a phase without batches."""
    if phase.batch_over is None:
        return [None]
    items = templar.render(phase.batch_over, location=phase.locations.get("batch_over", phase.location))
    if not isinstance(items, list | tuple):
        raise UserInputError(f"`batch_over` of phase {phase.name!r} must be a list",
                             phase.locations.get("batch_over", phase.location), hint="give a list or a template of one")
    items = list(items)
    size = _batch_size(phase, templar, len(items))
    return [items[i:i + size] for i in range(0, len(items), size)] or [[]]


def _batch_size(phase: PhaseSpec, templar: Templar, count: int) -> int:
    """``serial`` as a batch size: a number, a percentage of the items, or a template of either."""
    where = phase.locations.get("serial", phase.location)
    serial = templar.render(phase.serial, location=where)
    if serial is None:
        return count or 1
    text = str(serial).strip()
    try:
        if text.endswith("%"):
            return max(1, math.ceil(count * float(text[:-1]) / 100))
        return max(1, int(text))
    except ValueError:
        raise UserInputError(f"`serial` of phase {phase.name!r} is {serial!r}", where,
                             hint="give a number of items per batch or a percentage such as '25%'") from None


def playbook_hash(playbook: PlaybookSpec) -> str:
    """A hash of everything the loader read (plays, phases, tasks, roles), to detect edits before resume.

    Files count by their path relative to the playbook's directory, so the same checkout named by a
    relative path, or at another path on another machine (a resume from the team store), hashes the same.
    """
    dumped = playbook.model_dump(mode="json", exclude={"path"})
    return fingerprint(_relative_paths(dumped, playbook.path.resolve().parent))


def _relative_paths(value: Any, base: Path) -> Any:
    """``value`` with every location's file, role path and ``base_dir`` made relative to ``base``."""
    if isinstance(value, list):
        return [_relative_paths(v, base) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: _relative_paths(v, base) for k, v in value.items()}
    keys = ["base_dir"]
    if {"file", "line", "column"} <= value.keys():
        keys.append("file")
    if {"path", "defaults", "dependencies"} <= value.keys():
        keys.append("path")
    for key in keys:
        if isinstance(value.get(key), str):
            out[key] = os.path.relpath(Path(value[key]).resolve(), base)
    return out
