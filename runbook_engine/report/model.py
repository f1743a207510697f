"""What a verification report says, independent of how it is rendered.

The engine builds a ``RunReport`` from a run's journal (phases, verdicts, the platform picture);
the renderers in this package turn it into Markdown, HTML, JSON and JUnit. The "honest assessment"
is derived from the verdicts and the remaining phases, never written by hand.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from runbook_engine.report.verdict import Section, Status, Verdict

SECTION_ORDER: tuple[Section, ...] = (
    Section.FOUNDATION,
    Section.MEMBERSHIP,
    Section.IDENTITY,
    Section.REACHABILITY,
    Section.DEPENDENCIES,
    Section.HYGIENE,
    Section.TELEMETRY,
    Section.GENERAL,
)


class Membership(StrEnum):
    MESHED = "meshed"
    AMBIENT = "ambient"
    EXCLUDED = "excluded"  # deliberately outside the mesh (datastores, operators)
    NOT_MESHED = "not-meshed"  # should be meshed but is not (yet)
    OUTSIDE = "outside"  # not in the rollout's scope


@dataclass(frozen=True)
class WorkloadRow:
    namespace: str
    name: str
    kind: str = "Deployment"
    membership: Membership = Membership.OUTSIDE
    form: str = ""  # e.g. "native sidecar", "container", "ambient"


@dataclass(frozen=True)
class FlowRow:
    """A flow's observed (or predicted) outcome; ``outcome`` is a ``kube.flow.Outcome`` value."""

    flow_id: str
    source: str
    to: str
    protocol: str
    outcome: str
    expected: str | None = None
    reasons: tuple[str, ...] = ()

    @property
    def as_expected(self) -> bool:
        return self.expected is None or self.expected in (self.outcome, _status_of(self.outcome))


def _status_of(outcome: str) -> str:
    return {"ok": "200", "denied_403": "403"}.get(outcome, outcome)


class PhaseStatus(StrEnum):
    COMPLETED = "completed"
    PAUSED = "paused"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"
    RUNNING = "running"
    PENDING = "pending"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class PhaseReport:
    name: str
    status: PhaseStatus
    verdicts: tuple[Verdict, ...] = ()
    changes: int = 0
    note: str = ""


@dataclass(frozen=True)
class Assessment:
    """The closing "honest assessment": four lists an SRE can read aloud to a change board."""

    working: tuple[str, ...]
    flagged: tuple[str, ...]
    preexisting: tuple[str, ...]
    not_done: tuple[str, ...]
    failing: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunReport:
    run_id: str
    title: str
    playbook: str
    cluster: str
    status: str  # the run's status (running, paused, failed, rolled_back, completed)
    started_at: str
    finished_at: str = ""
    window: str = ""
    state_line: str = ""
    paused_reason: str = ""
    phases: tuple[PhaseReport, ...] = ()
    workloads: tuple[WorkloadRow, ...] = ()
    flows: tuple[FlowRow, ...] = ()
    generated_at: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def verdicts(self) -> list[Verdict]:
        """Each check's latest verdict (a later phase's run of the same check replaces an earlier one)."""
        latest: dict[tuple[str, str], Verdict] = {}
        for phase in self.phases:
            for v in phase.verdicts:
                latest[(v.check, v.title)] = v
        return list(latest.values())

    def by_section(self) -> list[tuple[Section, list[Verdict]]]:
        verdicts = self.verdicts()
        return [
            (s, [v for v in verdicts if v.section is s]) for s in SECTION_ORDER if any(v.section is s for v in verdicts)
        ]

    def remaining_phases(self) -> list[str]:
        return [p.name for p in self.phases if p.status in (PhaseStatus.PENDING, PhaseStatus.PAUSED)]

    def assessment(self) -> Assessment:
        return assess(self.verdicts(), self.remaining_phases())

    def state(self) -> str:
        return self.state_line or default_state_line(self)


def _line(v: Verdict) -> str:
    return f"{v.title}: {v.summary}"


def assess(verdicts: Iterable[Verdict], remaining: Iterable[str]) -> Assessment:
    vs = list(verdicts)

    def pick(status: Status) -> tuple[str, ...]:
        return tuple(_line(v) for v in vs if v.status is status)

    not_done = tuple(f"phase {name}" for name in remaining)
    return Assessment(
        working=pick(Status.PASS),
        flagged=pick(Status.FLAG),
        preexisting=pick(Status.PREEXISTING),
        not_done=not_done,
        failing=pick(Status.FAIL) + pick(Status.NO_DATA),
    )


def default_state_line(report: RunReport) -> str:
    """One line: meshed count, outages, where the rollout stands and what remains."""
    meshed = sum(w.membership in (Membership.MESHED, Membership.AMBIENT) for w in report.workloads)
    excluded = sum(w.membership is Membership.EXCLUDED for w in report.workloads)
    outages = sum(not f.as_expected for f in report.flows)
    parts = [f"{meshed} workloads meshed, {excluded} excluded", f"{outages} unexpected flow outcomes"]
    current = next((p for p in report.phases if p.status is PhaseStatus.PAUSED), None)
    if current is not None:
        parts.append(f"paused at phase {current.name}")
    remaining = [p.name for p in report.phases if p.status is PhaseStatus.PENDING]
    if remaining:
        parts.append("remaining: " + ", ".join(remaining))
    return f"{report.status.upper()}: " + "; ".join(parts)
