"""Hygiene: ``permissive_age`` (migration exceptions do not outlive their purpose) and
``pods_not_stuck`` (no pod crash-loops or hangs in its init containers).

- ``permissive_age``: a PeerAuthentication that is PERMISSIVE (mesh-wide, namespace, workload or for
  one port) is FLAGged when older than ``max_age_days`` and without an expiry in the future, or when
  its expiry has passed. The expiry is a date (``2026-12-01``) or timestamp in the label or annotation
  ``expiry_key``; a future expiry is respected whatever the age.
- ``pods_not_stuck``: pods in CrashLoopBackOff, image-pull errors, Failed, or still in their init
  containers ``init_grace_seconds`` after creation (``Init:0/1`` waiting on a network that a classic
  sidecar only provides after init, for instance) FAIL with the reason and the last log lines; a pod
  whose workload was already unhealthy in the run's baseline is PRE-EXISTING.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from runbook_engine.checks.base import Check, CheckArgs, CheckContext, register
from runbook_engine.checks.baseline import intermediate_owners, owner_of
from runbook_engine.checks.evidence import (
    PA_COMMAND,
    Finding,
    conclude,
    evidence,
    listing,
    pa_table,
    plural,
    summary_of,
    worst,
)
from runbook_engine.checks.pods_healthy import pods_table
from runbook_engine.checks.probe import PROBE_LABEL
from runbook_engine.errors import ClusterError
from runbook_engine.kube.cluster import Obj
from runbook_engine.kube.health import pod_completed, pod_problem
from runbook_engine.kube.selectors import parse_selector
from runbook_engine.report.verdict import Evidence, Section, Status, Verdict

PERMISSIVE = "PERMISSIVE"
LOG_LINES = 5
MAX_LOGS = 3


def parse_time(text: str) -> dt.datetime | None:
    """An RFC 3339 timestamp or a bare date (midnight UTC), or None."""
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def created(obj: Mapping[str, Any]) -> dt.datetime | None:
    return parse_time(str((obj.get("metadata") or {}).get("creationTimestamp") or ""))


def scopes(namespaces: list[str] | None) -> list[str | None]:
    """The namespaces to list in; ``[None]`` (all namespaces) when none are given."""
    return list(namespaces) if namespaces else [None]


def permissive_scope(pa: Mapping[str, Any]) -> str:
    """Where a PeerAuthentication is PERMISSIVE (``whole policy``, ``ports 8200``), or "" when it is not."""
    spec = pa.get("spec") or {}
    if str((spec.get("mtls") or {}).get("mode") or "").upper() == PERMISSIVE:
        return "whole policy"
    ports = [str(p) for p, v in (spec.get("portLevelMtls") or {}).items()
             if str((v or {}).get("mode") or "").upper() == PERMISSIVE]
    return f"ports {', '.join(ports)}" if ports else ""


class PermissiveAgeArgs(CheckArgs):
    max_age_days: float = Field(default=7, gt=0, description="PERMISSIVE policies older than this are flagged.")
    namespaces: list[str] | None = Field(default=None, description="Namespaces to look in (default: all).")
    expiry_key: str = Field(default="runbook.dev/expires", description="Label or annotation holding the expiry.")
    owner_key: str = Field(default="runbook.dev/owner", description="Label or annotation naming the owner.")


@register
class PermissiveAge(Check[PermissiveAgeArgs]):
    name = "permissive_age"
    section = Section.HYGIENE
    purpose = "PERMISSIVE migration exceptions carry an owner and an expiry, and do not outlive them."
    Args = PermissiveAgeArgs

    def run(self, ctx: CheckContext, args: PermissiveAgeArgs) -> Verdict:
        policies = [pa for ns in scopes(args.namespaces)
                    for pa in ctx.cluster.list("security.istio.io/v1", "PeerAuthentication", ns)]
        permissive = [pa for pa in policies if permissive_scope(pa)]
        findings = [self._judge(pa, ctx.now, args) for pa in permissive]
        proof = [evidence(PA_COMMAND if args.namespaces is None else PA_COMMAND.replace(" -A ", " -n "
                          + ",".join(args.namespaces) + " "), pa_table(policies))]
        status = worst(f.status for f in findings)
        if not findings:
            return conclude(self, ctx, Status.PASS, "no PERMISSIVE PeerAuthentication", proof)
        if status is Status.PASS:
            return conclude(self, ctx, status, f"{plural(len(findings), 'PERMISSIVE PeerAuthentication')} within "
                            f"their age or expiry: {listing(findings, 3)}", proof)
        return conclude(self, ctx, status, summary_of(findings, Status.FLAG, "PERMISSIVE PeerAuthentications overdue"),
                        proof, hint="finish the migration and delete the exception, or, if it is still needed, "
                        f"set a new '{args.expiry_key}' date and name an owner in '{args.owner_key}'")

    @staticmethod
    def _judge(pa: Obj, now: dt.datetime, args: PermissiveAgeArgs) -> Finding:
        meta = pa.get("metadata") or {}
        tags = {**(meta.get("annotations") or {}), **(meta.get("labels") or {})}
        subject = f"{meta.get('namespace')}/{meta.get('name')}"
        born = created(pa)
        age = max((now - born).total_seconds() / 86400, 0.0) if born else 0.0
        owner = f", owner {tags[args.owner_key]}" if args.owner_key in tags else ""
        seen = f"{permissive_scope(pa)}, {age:.0f} days old{owner}"
        if args.expiry_key in tags:
            expiry = parse_time(str(tags[args.expiry_key]))
            if expiry is None:
                return Finding(Status.FLAG, subject, f"{seen}, unreadable expiry {tags[args.expiry_key]!r}")
            if expiry <= now:
                return Finding(Status.FLAG, subject, f"{seen}, expired on {expiry:%Y-%m-%d}")
            return Finding(Status.PASS, subject, f"{seen}, expires {expiry:%Y-%m-%d}")
        if age > args.max_age_days:
            return Finding(Status.FLAG, subject, f"{seen}, no expiry, older than {args.max_age_days:g} days")
        return Finding(Status.PASS, subject, seen)


class PodsNotStuckArgs(CheckArgs):
    namespaces: list[str] | None = Field(default=None, description="Namespaces to look in (default: all).")
    selector: str | None = Field(default=None, description="Label selector in kubectl form.")
    init_grace_seconds: float = Field(default=120, ge=0, description="How long init containers may take.")


def last_termination(pod: Mapping[str, Any]) -> str:
    """``exit 1 (Error)`` from the most recent termination of any container, or ""."""
    status = pod.get("status") or {}
    for st in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        term = (st.get("lastState") or {}).get("terminated") or (st.get("state") or {}).get("terminated")
        if term and int(term.get("exitCode") or 0) != 0:
            return f"{st.get('name')} exit {term.get('exitCode')} ({term.get('reason') or 'Error'})"
    return ""


def stuck_problem(pod: Obj, now: dt.datetime, grace: float) -> str:
    """Why the pod is stuck, or "" (init containers still within their grace period are not stuck)."""
    problem = pod_problem(pod)
    progressing = problem.startswith("Init:") and problem[5:6].isdigit()
    born = created(pod)
    if progressing and born is not None and (now - born).total_seconds() < grace:
        return ""
    return problem


@register
class PodsNotStuck(Check[PodsNotStuckArgs]):
    name = "pods_not_stuck"
    section = Section.HYGIENE
    purpose = "No pod crash-loops or hangs in its init containers; old failures are told apart from new ones."
    Args = PodsNotStuckArgs

    def run(self, ctx: CheckContext, args: PodsNotStuckArgs) -> Verdict:
        if args.selector:
            parse_selector(args.selector)
        pods = [p for ns in scopes(args.namespaces) for p in ctx.cluster.list("v1", "Pod", ns, args.selector)
                if not pod_completed(p) and PROBE_LABEL not in (p["metadata"].get("labels") or {})]
        owners = intermediate_owners(ctx.cluster.list)
        before = ctx.baseline.unhealthy_owners() if ctx.baseline is not None else set()
        findings, stuck = [], []
        for pod in pods:
            problem = stuck_problem(pod, ctx.now, args.init_grace_seconds)
            if not problem:
                continue
            ns = str(pod["metadata"].get("namespace", ""))
            old = f"{ns}/{owner_of(pod, owners)}" in before
            why = ", ".join(x for x in (problem, last_termination(pod), "as before the run" if old else "") if x)
            findings.append(Finding(Status.PREEXISTING if old else Status.FAIL, f"{ns}/{pod['metadata']['name']}",
                                    why))
            stuck.append(pod)
        one_ns = args.namespaces is not None and len(args.namespaces) == 1
        proof = [evidence(self._command(args), pods_table(stuck, not one_ns) if stuck else "No stuck pods"),
                 *self._logs(ctx, stuck[:MAX_LOGS])]
        return self._conclude(ctx, findings, len(pods), proof)

    @staticmethod
    def _command(args: PodsNotStuckArgs) -> str:
        single = args.namespaces is not None and len(args.namespaces) == 1
        where = f" -n {args.namespaces[0]}" if single and args.namespaces else " -A"
        sel = f" -l '{args.selector}'" if args.selector else ""
        return f"kubectl get pods{where}{sel} | grep -E 'CrashLoopBackOff|Init:|Error|BackOff'"

    @staticmethod
    def _logs(ctx: CheckContext, pods: list[Obj]) -> list[Evidence]:
        out = []
        for pod in pods:
            ns, name = str(pod["metadata"].get("namespace", "")), str(pod["metadata"]["name"])
            try:
                text = ctx.cluster.pod_logs(ns, name, None, LOG_LINES)
            except ClusterError as exc:
                text = f"(logs unavailable: {exc})"
            out.append(evidence(f"kubectl logs {name} -n {ns} --tail={LOG_LINES}", text))
        return out

    def _conclude(self, ctx: CheckContext, findings: list[Finding], pods: int, proof: list[Evidence]) -> Verdict:
        status = worst(f.status for f in findings)
        data = {"stuck": [f.subject for f in findings if f.status is Status.FAIL],
                "preexisting": [f.subject for f in findings if f.status is Status.PREEXISTING]}
        if status is Status.PASS:
            return conclude(self, ctx, status, f"none of {plural(pods, 'pod')} crash-looping or stuck in Init", proof,
                            data=data)
        if status is Status.PREEXISTING:
            return conclude(self, ctx, status, summary_of(findings, status, "pods failing since before the run"),
                            proof, data=data, hint="not caused by the rollout; fix these workloads separately")
        return conclude(self, ctx, status, summary_of(findings, Status.FAIL, "pods stuck"), proof, data=data,
                        hint="stuck in Init with a classic sidecar: turn on native sidecars or exclude the init "
                        "container's traffic; crash loops: read the logs in the evidence and roll back the batch")
