"""The plan of a playbook: what each phase would change and break, as plain frozen data.

``runbook plan`` renders it as a terminal table or Markdown, and ``--format json`` prints
``Plan.to_dict()``, a stable shape for CI (``schema`` names its version; fields are only ever added):

.. code-block:: text

    {"schema": "runbook.plan/v1", "cluster": str, "playbook": str, "flows": int,
     "requests": {"<verb> <kind>": int},            # API requests the plan sent to the live cluster
     "breaking": [flow id, ...],                    # unaccepted predicted breaks, all phases
     "phases": [{
        "name": str, "index": int, "status": "planned" | "skipped" | "stopped" | "not_reached",
        "note": str,                                # why skipped/stopped ("" when planned)
        "objects": [{"ref": str, "api_version": str, "change": "create"|"update"|"delete"|"restart",
                     "diff": str, "source": "server dry-run" | "simulated"}],
        "restarts": [{"workload": "ns/name", "kind": str, "pods": int}],
        "flows": [{"id": str, "from": str, "to": str, "protocol": str, "expect": str,
                   "origin": "inventory" | "telemetry" | "implied", "before": outcome, "after": outcome,
                   "transition": "ok → reset" | "", "breaks": bool, "accepted": bool,
                   "reasons": [str]}],              # reasons of the after state, for changed flows only
        "checks": [{"title": str, "check": str, "status": str, "summary": str,
                    "basis": "simulated objects" | "predicted flows"}],
        "decision": "continue" | "pause" | "rollback" | ""}]}

Outcomes are ``ok | reset | denied_403 | tls_error | hang``. A flow *breaks* in a phase when it met
its expectation (``expect``, default ``ok``) before the phase and does not after it; a break is
*accepted* when the phase lists the flow id in ``accept:`` or the run names it with
``--accept-risk``.

Predicted checks: a check that observes traffic through probe pods is judged from the flow
predictions (``basis: predicted flows``); every other check runs on the simulated objects
(``basis: simulated objects``). The simulation runs no controllers, so a check of rollout readiness
or of pods sees the pods as they were before the phase (a restarted workload's old pods, a new
workload's none): such verdicts are pessimistic, and ``decision`` with them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from runbook_engine.kube.change import ChangeKind
from runbook_engine.kube.flow import Flow, Outcome
from runbook_engine.report.verdict import Status

SCHEMA = "runbook.plan/v1"
Obj = dict[str, Any]


class PhaseStatus(StrEnum):
    PLANNED = "planned"
    SKIPPED = "skipped"  # its `when` is false or no task matches the tags
    STOPPED = "stopped"  # the simulation stopped in this phase (a task failed)
    NOT_REACHED = "not_reached"  # an earlier phase stopped the simulation


class DiffSource(StrEnum):
    SERVER = "server dry-run"  # the API server's answer to a dryRun=All apply or patch
    SIMULATED = "simulated"  # the in-memory simulation (the object depends on an earlier phase)


class FlowOrigin(StrEnum):
    INVENTORY = "inventory"
    TELEMETRY = "telemetry"
    IMPLIED = "implied"  # a non-mesh caller the platform implies (webhooks, probes, scrapes)


class CheckBasis(StrEnum):
    OBJECTS = "simulated objects"
    PREDICTED = "predicted flows"  # traffic the check would observe, predicted by the mesh rules


@dataclass(frozen=True)
class ObjectPlan:
    """One object a phase creates, updates, deletes or restarts, with its diff."""

    ref: str
    api_version: str
    change: ChangeKind
    diff: str
    source: DiffSource
    after: Obj | None = None  # the stored object after the phase (server fields stripped); not in JSON

    def to_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "api_version": self.api_version, "change": self.change.value, "diff": self.diff,
                "source": self.source.value}


@dataclass(frozen=True)
class RestartPlan:
    """A workload whose pods the phase replaces (rollout restart or a changed pod template)."""

    workload: str
    kind: str
    pods: int

    def to_dict(self) -> dict[str, Any]:
        return {"workload": self.workload, "kind": self.kind, "pods": self.pods}


@dataclass(frozen=True)
class FlowPlan:
    """A flow's predicted outcome before and after a phase."""

    flow: Flow
    origin: FlowOrigin
    before: Outcome
    after: Outcome
    breaks: bool
    accepted: bool = False
    reasons: tuple[str, ...] = ()  # the after state's reason chain (kept for changed flows)

    @property
    def changed(self) -> bool:
        return self.before is not self.after

    @property
    def transition(self) -> str:
        return f"{self.before.value} → {self.after.value}" if self.changed else ""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.flow.id, "from": self.flow.source, "to": self.flow.to,
                "protocol": self.flow.protocol.value, "expect": self.flow.expect or Outcome.OK.value,
                "origin": self.origin.value, "before": self.before.value, "after": self.after.value,
                "transition": self.transition, "breaks": self.breaks, "accepted": self.accepted,
                "reasons": list(self.reasons)}


@dataclass(frozen=True)
class CheckPlan:
    """A checkpoint check's predicted verdict on the state the phase leaves."""

    title: str
    check: str
    status: Status
    summary: str
    basis: CheckBasis

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "check": self.check, "status": self.status.value, "summary": self.summary,
                "basis": self.basis.value}


@dataclass(frozen=True)
class PhasePlan:
    """Everything one phase would do."""

    name: str
    index: int
    status: PhaseStatus
    note: str = ""
    objects: tuple[ObjectPlan, ...] = ()
    restarts: tuple[RestartPlan, ...] = ()
    flows: tuple[FlowPlan, ...] = ()
    checks: tuple[CheckPlan, ...] = ()
    decision: str = ""

    @property
    def changed_flows(self) -> list[FlowPlan]:
        return [f for f in self.flows if f.changed]

    @property
    def breaking(self) -> list[FlowPlan]:
        """Predicted breaks nobody accepted: the ones that stop a run at this phase."""
        return [f for f in self.flows if f.breaks and not f.accepted]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "index": self.index, "status": self.status.value, "note": self.note,
                "objects": [o.to_dict() for o in self.objects], "restarts": [r.to_dict() for r in self.restarts],
                "flows": [f.to_dict() for f in self.flows], "checks": [c.to_dict() for c in self.checks],
                "decision": self.decision}


@dataclass(frozen=True)
class Plan:
    """The plan of one playbook on one cluster."""

    cluster: str
    playbook: str
    phases: tuple[PhasePlan, ...]
    flows: int
    requests: dict[str, int] = field(default_factory=dict)
    #: Wall-clock seconds per step (snapshot, simulation, phases); not in JSON, which is deterministic.
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def breaking(self) -> list[FlowPlan]:
        return [f for p in self.phases for f in p.breaking]

    def phase(self, name: str) -> PhasePlan:
        for phase in self.phases:
            if phase.name == name:
                return phase
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "cluster": self.cluster, "playbook": self.playbook, "flows": self.flows,
                "requests": dict(sorted(self.requests.items())), "breaking": [f.flow.id for f in self.breaking],
                "phases": [p.to_dict() for p in self.phases]}
