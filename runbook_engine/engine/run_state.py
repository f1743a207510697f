"""One run in progress: what the engine holds in memory while it drives a run on one cluster.

The journal (``RunStore``) is the truth a resume starts from; ``RunState`` is the working copy of a
single process: the specs, the connected cluster, the facts tasks registered so far, the baseline,
the lock, task counts, the gate a resume acknowledged and the last checkpoint that ran.
``RunStopped`` unwinds the phase loop once the journal already says how the run stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runbook_engine.checks.base import Baseline
from runbook_engine.engine.events import TaskStatus
from runbook_engine.engine.journal import RunRecord, RunStatus, RunStore, Stage
from runbook_engine.engine.lease import ClusterLock
from runbook_engine.engine.phases import PhaseRef
from runbook_engine.engine.run_model import RunOptions
from runbook_engine.kube.caching import CachingCluster
from runbook_engine.kube.cluster import Cluster
from runbook_engine.spec.model import ClusterSpec, InventorySpec, PlaybookSpec


class RunStopped(Exception):
    """The run stops here (paused, rolled back or failed); the journal already says so."""

    def __init__(self, status: RunStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class RunState:
    """The state of one run on one cluster while this process drives it."""

    record: RunRecord
    playbook: PlaybookSpec
    inventory: InventorySpec
    spec: ClusterSpec
    cluster: Cluster  # direct: pre-images, rollback, drift and the lock read the server itself
    reader: CachingCluster  # actions and checks: lists cached per phase
    options: RunOptions
    phases: list[PhaseRef]
    facts: dict[str, Any] = field(default_factory=dict)
    baseline: Baseline | None = None
    lock: ClusterLock | None = None
    counts: dict[TaskStatus, int] = field(default_factory=dict)
    acknowledged: tuple[int, Stage] | None = None  # the gate a resume acknowledged
    last_checkpoint: int = -1

    @property
    def id(self) -> str:
        return self.record.id


def record_position(store: RunStore, run: RunState, ref: PhaseRef, stage: Stage) -> None:
    """Move the run's pointer in the journal to ``stage`` of ``ref`` (a check-mode run journals no position)."""
    if not run.options.check:
        store.set_position(run.id, ref.index, ref.phase.name, stage)
