"""What a run is asked to do and what it answers: run options, run results and the phase gate's contract.

``RunOptions`` are ``runbook run``'s options; they are journaled with the run (``to_dict``) so a
resume, from any machine, runs with the same ones (``from_dict``). ``RunResult`` is how one run on
one cluster ended for now. A ``PhaseGate`` (the planner's impact check) sees a ``PhaseGateRequest``
just before a phase writes anything and may pause the run there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from runbook_engine.engine.events import TaskStatus
from runbook_engine.engine.journal import RunStatus
from runbook_engine.engine.team_store import StoreMode
from runbook_engine.kube.cluster import Cluster
from runbook_engine.spec.model import PhaseSpec, PlaybookSpec


@dataclass(frozen=True)
class PhaseGateRequest:
    """What a phase gate (the planner's impact check) sees just before a phase's tasks run."""

    run_id: str
    cluster: Cluster
    playbook: PlaybookSpec
    phase: PhaseSpec
    index: int
    variables: Mapping[str, Any]
    resumed: bool  # the operator resumed the run at this phase's start
    facts: Mapping[str, Any] = field(default_factory=dict)  # registered/set facts so far (the planner replays them)


#: Called before a phase writes anything; a returned reason pauses the run there (nothing written).
PhaseGate = Callable[[PhaseGateRequest], str | None]


@dataclass(frozen=True)
class RunOptions:
    """How to run: ``runbook run``'s options."""

    check: bool = False
    diff: bool = False
    tags: frozenset[str] = frozenset()
    skip_tags: frozenset[str] = frozenset()
    start_at_phase: str | None = None
    extra_vars: Mapping[str, Any] = field(default_factory=dict)
    limit: str | None = None
    lock_namespace: str = "default"
    #: Execute the changes on a disposable cluster (the planner's snapshot): no lock, no gates or
    #: pauses, no waiting after writes; checkpoints run and are recorded but never stop the run.
    simulate: bool = False
    #: End the run after this phase (the planner re-plans one phase before a real run executes it).
    stop_after_phase: str | None = None
    #: Flow ids whose predicted break the operator accepts for every phase (``--accept-risk``).
    accept_risk: frozenset[str] = frozenset()
    #: ``cluster``: also replicate the run into its cluster (``team_store``); None: the inventory decides.
    store: StoreMode | None = None

    @property
    def attended(self) -> bool:
        """Whether gates, pauses and the cluster lock apply (a real run, not a dry or simulated one)."""
        return not (self.check or self.simulate)

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "diff": self.diff, "tags": sorted(self.tags), "skip_tags": sorted(self.skip_tags),
                "start_at_phase": self.start_at_phase, "extra_vars": dict(self.extra_vars), "limit": self.limit,
                "lock_namespace": self.lock_namespace, "simulate": self.simulate,
                "stop_after_phase": self.stop_after_phase, "accept_risk": sorted(self.accept_risk),
                "store": self.store.value if self.store else None}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunOptions:
        return cls(check=bool(d.get("check")), diff=bool(d.get("diff")), tags=frozenset(d.get("tags") or ()),
                   skip_tags=frozenset(d.get("skip_tags") or ()), start_at_phase=d.get("start_at_phase"),
                   extra_vars=dict(d.get("extra_vars") or {}), limit=d.get("limit"),
                   lock_namespace=str(d.get("lock_namespace") or "default"), simulate=bool(d.get("simulate")),
                   stop_after_phase=d.get("stop_after_phase"), accept_risk=frozenset(d.get("accept_risk") or ()),
                   store=StoreMode(d["store"]) if d.get("store") else None)


@dataclass(frozen=True)
class RunResult:
    """How a run ended (for now): its status, the phase it stands at and why it stopped."""

    run_id: str
    cluster: str
    status: RunStatus
    phase: str
    reason: str
    counts: Mapping[TaskStatus, int]
