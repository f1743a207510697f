"""The check plug-in contract: read-only modules that observe a cluster and return a ``Verdict``.

A check declares ``name`` (its module name in playbooks), ``section``, ``purpose`` and an ``Args``
pydantic model; ``run`` must not write to the cluster (probe pods that observe traffic are the one
allowed side effect, and they are created and removed by the check itself).
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from runbook_engine.kube.cluster import Cluster
from runbook_engine.report.verdict import Section, Verdict


class CheckArgs(BaseModel):
    """Base of every check's arguments: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class PodHealth:
    """A pod as the baseline saw it."""

    namespace: str
    name: str
    owner: str  # "<Kind>/<name>" of the top-level workload, or the pod name
    phase: str
    ready: bool
    restarts: int
    reason: str = ""  # e.g. CrashLoopBackOff


@dataclass(frozen=True)
class Baseline:
    """Pod health before the run's first phase, to tell PRE-EXISTING failures from new ones."""

    taken_at: dt.datetime
    pods: tuple[PodHealth, ...] = ()

    def unhealthy_owners(self) -> set[str]:
        """``<ns>/<owner>`` of every workload with a failing pod; completed Job pods are not failing."""
        return {
            f"{p.namespace}/{p.owner}"
            for p in self.pods
            if p.phase != "Succeeded" and (not p.ready or p.reason)
        }

    def to_dict(self) -> dict[str, Any]:
        return {"taken_at": self.taken_at.isoformat(), "pods": [p.__dict__ for p in self.pods]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Baseline:
        return cls(dt.datetime.fromisoformat(d["taken_at"]), tuple(PodHealth(**p) for p in d.get("pods", ())))


@dataclass
class CheckContext:
    """What a check may use: the cluster (read-only), the run's baseline and variables."""

    cluster: Cluster
    vars: Mapping[str, Any] = field(default_factory=dict)
    baseline: Baseline | None = None
    prometheus_url: str | None = None
    phase_started_at: dt.datetime | None = None
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    title: str = ""


A = TypeVar("A", bound=CheckArgs)


class Check(ABC, Generic[A]):
    """Subclass, set the class attributes, implement ``run``, and decorate with ``@register``."""

    name: ClassVar[str]
    section: ClassVar[Section] = Section.GENERAL
    purpose: ClassVar[str] = ""
    Args: ClassVar[type[CheckArgs]] = CheckArgs

    @abstractmethod
    def run(self, ctx: CheckContext, args: A) -> Verdict:
        """Observe and conclude; never write to the cluster."""


CHECKS: dict[str, type[Check[Any]]] = {}

C = TypeVar("C", bound=type[Check[Any]])


def register(cls: C) -> C:
    """Class decorator adding a check to the registry under its ``name``."""
    if cls.name in CHECKS and CHECKS[cls.name] is not cls:
        raise ValueError(f"duplicate check name {cls.name}")
    CHECKS[cls.name] = cls
    return cls
