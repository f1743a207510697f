"""``pods_healthy``: the pods a selector matches are Running and Ready and have not restarted.

Each pod (Completed pods excepted) must be Running with every container ready, show no broken state
(CrashLoopBackOff, image pull errors, stuck Init containers, Failed) and have restarted at most
``max_restarts`` times since the run's baseline. A failure whose workload was already unhealthy in
the baseline is PRE-EXISTING; restarts with no baseline to compare against are FLAGged, not failed.
No matching pod at all is NO_DATA (the checkpoint's ``no_data`` policy decides).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from runbook_engine.checks.base import Baseline, Check, CheckArgs, CheckContext, register
from runbook_engine.checks.baseline import intermediate_owners, owner_of
from runbook_engine.kube.cluster import Obj
from runbook_engine.kube.health import pod_blocker, pod_completed, pod_ready, pod_restarts, pod_status_text
from runbook_engine.kube.selectors import parse_selector
from runbook_engine.report.verdict import Evidence, Section, Status, Verdict

MAX_LISTED = 5
MAX_TABLE_ROWS = 60


class PodsHealthyArgs(CheckArgs):
    namespace: str | list[str] | None = Field(
        default=None, description="Namespace or namespaces to look in; every namespace when omitted."
    )
    selector: str | None = Field(default=None, description="Label selector in kubectl form, e.g. 'app=api'.")
    max_restarts: int = Field(default=0, ge=0, description="Restarts per pod tolerated since the baseline.")

    def namespaces(self) -> list[str | None]:
        if self.namespace is None:
            return [None]
        return [self.namespace] if isinstance(self.namespace, str) else list(self.namespace)


@dataclass(frozen=True)
class Finding:
    """One unhealthy pod."""

    pod: str  # namespace/name
    owner: str  # namespace/<Kind>/<name>, as the baseline names owners
    problem: str
    restarts_only: bool = False  # restarted, but otherwise fine


def new_restarts(pod: Obj, baseline: Baseline | None) -> int | None:
    """Restarts since the baseline (all of them for a pod born after it); None without a baseline."""
    if baseline is None:
        return None
    meta = pod["metadata"]
    before = next((p.restarts for p in baseline.pods if (p.namespace, p.name) == (meta.get("namespace"), meta["name"])),
                  0)
    return max(pod_restarts(pod) - before, 0)


def problem_of(pod: Obj, baseline: Baseline | None, max_restarts: int) -> tuple[str, bool]:
    """(what is wrong with the pod or "", whether only restarts are wrong)."""
    problem = pod_blocker(pod)
    if problem:
        return problem, False
    if (pod.get("status") or {}).get("phase") != "Running" or not pod_ready(pod):
        return f"{pod_status_text(pod)}, not ready", False
    restarted = new_restarts(pod, baseline)
    total = pod_restarts(pod)
    if restarted is not None and restarted > max_restarts:
        return f"restarted {restarted} times since the baseline", True
    if restarted is None and total > max_restarts:
        return f"restarted {total} times (no baseline to compare)", True
    return "", False


def ready_column(pod: Obj) -> str:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    total = len((pod.get("spec") or {}).get("containers") or []) or len(statuses)
    return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"


def pods_table(pods: list[Obj], with_namespace: bool) -> str:
    """The observed pods as ``kubectl get pods`` prints them (AGE omitted)."""
    header = ["NAME", "READY", "STATUS", "RESTARTS"]
    rows = [[p["metadata"]["name"], ready_column(p), pod_status_text(p), str(pod_restarts(p))] for p in pods]
    if with_namespace:
        header = ["NAMESPACE", *header]
        rows = [[str(p["metadata"].get("namespace", "")), *r] for p, r in zip(pods, rows, strict=True)]
    shown = [header, *rows[:MAX_TABLE_ROWS]]
    widths = [max(len(r[i]) for r in shown) for i in range(len(header))]
    lines = ["   ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in shown]
    if len(rows) > MAX_TABLE_ROWS:
        lines.append(f"... {len(rows) - MAX_TABLE_ROWS} more pods")
    return "\n".join(lines)


def observed(pods: list[Obj], with_namespace: bool) -> str:
    return pods_table(pods, with_namespace) if pods else "No resources found"


def pods_evidence(args: PodsHealthyArgs, pods: list[Obj]) -> list[Evidence]:
    """One ``kubectl get pods`` per namespace (or ``-A``), each with the pods it would show."""
    sel = f" -l '{args.selector}'" if args.selector else ""
    if args.namespace is None:
        return [Evidence(f"kubectl get pods -A{sel}", observed(pods, True))]
    by_ns = {ns: [p for p in pods if p["metadata"].get("namespace") == ns] for ns in args.namespaces()}
    return [Evidence(f"kubectl get pods -n {ns}{sel}", observed(ns_pods, False)) for ns, ns_pods in by_ns.items()]


@register
class PodsHealthy(Check[PodsHealthyArgs]):
    name = "pods_healthy"
    section = Section.FOUNDATION
    purpose = "Pods are Running and Ready, with no crash loops, stuck init containers or new restarts."
    Args = PodsHealthyArgs

    def run(self, ctx: CheckContext, args: PodsHealthyArgs) -> Verdict:
        if args.selector:
            parse_selector(args.selector)
        pods = self._pods(ctx, args)
        evidence = tuple(pods_evidence(args, pods))
        if not pods:
            return self._verdict(ctx, Status.NO_DATA, f"no pods match {self._scope(args)}", evidence,
                                 hint="check the namespace and selector, or whether the workload is deployed")
        findings = self._findings(ctx, pods, args.max_restarts)
        return self._conclude(ctx, args, pods, findings, evidence)

    @staticmethod
    def _pods(ctx: CheckContext, args: PodsHealthyArgs) -> list[Obj]:
        pods: list[Obj] = []
        for ns in args.namespaces():
            pods.extend(ctx.cluster.list("v1", "Pod", ns, args.selector))
        return [p for p in pods if not pod_completed(p)]

    @staticmethod
    def _findings(ctx: CheckContext, pods: list[Obj], max_restarts: int) -> list[Finding]:
        owners = intermediate_owners(ctx.cluster.list)
        out = []
        for pod in pods:
            problem, restarts_only = problem_of(pod, ctx.baseline, max_restarts)
            if problem:
                ns = str(pod["metadata"].get("namespace", ""))
                out.append(Finding(f"{ns}/{pod['metadata']['name']}", f"{ns}/{owner_of(pod, owners)}", problem,
                                   restarts_only))
        return out

    def _conclude(self, ctx: CheckContext, args: PodsHealthyArgs, pods: list[Obj], findings: list[Finding],
                  evidence: tuple[Evidence, ...]) -> Verdict:
        before = ctx.baseline.unhealthy_owners() if ctx.baseline is not None else set()
        new = [f for f in findings if f.owner not in before]
        old = [f for f in findings if f.owner in before]
        data = {"pods": len(pods), "failing": [f.pod for f in new], "preexisting": [f.pod for f in old]}
        if not findings:
            summary = f"{len(pods)} pod{'s' if len(pods) != 1 else ''} Running and Ready, no new restarts"
            return self._verdict(ctx, Status.PASS, summary, evidence, data=data)
        if ctx.baseline is None and all(f.restarts_only for f in findings):
            return self._verdict(ctx, Status.FLAG, f"{len(findings)} of {len(pods)} pods restarted: "
                                 + self._list(findings), evidence, data=data,
                                 hint="take a baseline (run the playbook) to tell new restarts from old ones")
        if not new:
            return self._verdict(ctx, Status.PREEXISTING, f"{len(old)} of {len(pods)} pods unhealthy, as before the "
                                 "run: " + self._list(old), evidence, data=data,
                                 hint="these workloads were already failing; fix them separately")
        first = new[0].pod.split("/", 1)
        known = f"; {len(old)} more already unhealthy before the run" if old else ""
        return self._verdict(ctx, Status.FAIL, f"{len(new)} of {len(pods)} pods unhealthy: {self._list(new)}{known}",
                             evidence, data=data,
                             hint=f"kubectl describe pod {first[1]} -n {first[0]}; "
                             f"kubectl logs {first[1]} -n {first[0]} --all-containers --previous")

    @staticmethod
    def _list(findings: list[Finding]) -> str:
        shown = ", ".join(f"{f.pod} ({f.problem})" for f in findings[:MAX_LISTED])
        return shown + (f" and {len(findings) - MAX_LISTED} more" if len(findings) > MAX_LISTED else "")

    @staticmethod
    def _scope(args: PodsHealthyArgs) -> str:
        where = "all namespaces" if args.namespace is None else f"namespace {', '.join(map(str, args.namespaces()))}"
        return f"{where}" + (f" with selector {args.selector!r}" if args.selector else "")

    def _verdict(self, ctx: CheckContext, status: Status, summary: str, evidence: tuple[Evidence, ...],
                 hint: str = "", data: dict[str, object] | None = None) -> Verdict:
        return Verdict(check=self.name, title=ctx.title or self.name, status=status, summary=summary, hint=hint,
                       evidence=evidence, section=self.section, purpose=self.purpose, data=dict(data or {}))
