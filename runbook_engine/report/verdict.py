"""Verdicts: what a check concludes, with the evidence a human can re-run.

Defined here, beneath the checks, because the report renders them and the engine stores them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    PASS = "pass"
    FLAG = "flag"  # correct but worth knowing
    FAIL = "fail"
    PREEXISTING = "preexisting"  # failing, but already so in the run's baseline
    SKIP = "skip"
    NO_DATA = "no_data"  # the check could not observe anything; the checkpoint's no_data policy decides


class Section(StrEnum):
    FOUNDATION = "Foundation"
    MEMBERSHIP = "Membership"
    IDENTITY = "Identity"
    REACHABILITY = "Reachability"
    DEPENDENCIES = "Dependencies"
    HYGIENE = "Hygiene"
    TELEMETRY = "Telemetry"
    GENERAL = "General"


@dataclass(frozen=True)
class Evidence:
    """A command a human could paste (kubectl/curl/openssl) and what it printed, secrets redacted."""

    command: str
    output: str = ""
    note: str = ""


@dataclass(frozen=True)
class Verdict:
    """One check's conclusion."""

    check: str  # module name, e.g. "istiod_ready"
    title: str  # the task name in the playbook
    status: Status
    summary: str
    hint: str = ""
    evidence: tuple[Evidence, ...] = ()
    section: Section = Section.GENERAL
    purpose: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "title": self.title,
            "status": self.status.value,
            "summary": self.summary,
            "hint": self.hint,
            "section": self.section.value,
            "purpose": self.purpose,
            "evidence": [{"command": e.command, "output": e.output, "note": e.note} for e in self.evidence],
            "data": self.data,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Verdict:
        return cls(
            check=d["check"],
            title=d.get("title", d["check"]),
            status=Status(d["status"]),
            summary=d.get("summary", ""),
            hint=d.get("hint", ""),
            evidence=tuple(Evidence(**e) for e in d.get("evidence", ())),
            section=Section(d.get("section", Section.GENERAL.value)),
            purpose=d.get("purpose", ""),
            data=dict(d.get("data") or {}),
        )
