"""Checkpoints: run a phase's checks, then decide whether the run continues, pauses or rolls back.

``run_checks`` renders each check's arguments with the run's variables, runs the check read-only
and collects its ``Verdict``; a check that cannot reach the cluster yields ``no_data`` rather than
crashing the run. ``decide`` applies the checkpoint policy: any ``fail`` → ``on_failure``
(pause | rollback); ``no_data`` → the ``no_data`` policy (pause | fail | pass); any ``flag`` →
``on_flag`` (continue | pause); ``pass``, ``preexisting`` and ``skip`` never stop a run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from runbook_engine.checks.base import CHECKS, Baseline, CheckContext
from runbook_engine.errors import ClusterError, UserInputError
from runbook_engine.kube.cluster import Cluster
from runbook_engine.report.verdict import Status, Verdict
from runbook_engine.spec.catalog import args_locations, validate_args
from runbook_engine.spec.model import CheckpointSpec, CheckSpec, NoData, OnFailure, OnFlag
from runbook_engine.spec.templating import Templar


class Decision(StrEnum):
    CONTINUE = "continue"
    PAUSE = "pause"
    ROLLBACK = "rollback"


@dataclass(frozen=True)
class CheckEnv:
    """What every check of one checkpoint shares."""

    cluster: Cluster
    variables: Mapping[str, Any]
    baseline: Baseline | None = None
    prometheus_url: str | None = None
    phase_started_at: dt.datetime | None = None


def run_check(spec: CheckSpec, env: CheckEnv) -> Verdict:
    """Run one check; ``when: false`` gives ``skip``; an API failure gives ``no_data``."""
    templar = Templar(env.variables)
    if not templar.evaluate(spec.when, location=spec.locations.get("when", spec.location)):
        return Verdict(spec.module, spec.name, Status.SKIP, "skipped: its `when` condition is false")
    check_cls = CHECKS.get(spec.module)
    if check_cls is None:
        raise UserInputError(f"unknown check module {spec.module!r}", spec.location,
                             hint="run `runbook check` to validate the playbook")
    rendered = templar.render(spec.args, location=spec.location, locations=args_locations(spec.locations))
    args = validate_args(check_cls.Args, rendered, spec.location, module=spec.module,
                         locations=args_locations(spec.locations))
    ctx = CheckContext(cluster=env.cluster, vars=env.variables, baseline=env.baseline,
                       prometheus_url=env.prometheus_url, phase_started_at=env.phase_started_at, title=spec.name)
    try:
        verdict = check_cls().run(ctx, args)
    except ClusterError as exc:
        return Verdict(spec.module, spec.name, Status.NO_DATA, f"could not observe the cluster: {exc}",
                       hint="check API access, then resume to re-run this checkpoint",
                       section=check_cls.section, purpose=check_cls.purpose)
    return verdict if verdict.title else replace(verdict, title=spec.name)


def decide(verdicts: Sequence[Verdict], policy: CheckpointSpec) -> tuple[Decision, str]:
    """The checkpoint's decision and a one-line reason naming the checks that caused it."""
    failed = [v for v in verdicts if v.status is Status.FAIL]
    no_data = [v for v in verdicts if v.status is Status.NO_DATA]
    if no_data and policy.no_data is NoData.FAIL:
        failed += no_data
    if failed:
        decision = Decision.ROLLBACK if policy.on_failure is OnFailure.ROLLBACK else Decision.PAUSE
        return decision, "checkpoint failed: " + _names(failed)
    if no_data and policy.no_data is NoData.PAUSE:
        return Decision.PAUSE, "checkpoint has no data: " + _names(no_data)
    flagged = [v for v in verdicts if v.status is Status.FLAG]
    if flagged and policy.on_flag is OnFlag.PAUSE:
        return Decision.PAUSE, "checkpoint flagged: " + _names(flagged)
    return Decision.CONTINUE, ""


def _names(verdicts: Sequence[Verdict]) -> str:
    return "; ".join(f"{v.title} ({v.summary})" for v in verdicts)
