"""``rollout_restart``: restart Deployments, StatefulSets or DaemonSets and wait for the rollouts.

Like ``kubectl rollout restart``, a restart sets the pod template annotation
``kubectl.kubernetes.io/restartedAt`` to the current time. Each workload gets a RESTART change whose
``before`` is the live workload, ``after`` the workload with the annotation set, and ``meta`` the
merge patch setting it (see ``actions.objects``). After the engine applies the changes, ``settle``
waits until every rollout is complete (the controller observed the new generation and all replicas
are updated and ready; for StatefulSets the update revision is current) or the timeout passes, and
then names each workload that did not roll out, with its broken pods (CrashLoopBackOff, Init…).
"""

from __future__ import annotations

import copy
import datetime as dt
from enum import StrEnum

from pydantic import Field

from runbook_engine.actions.base import Action, ActionContext, Planned, Settled, register
from runbook_engine.actions.objects import TargetArgs, describe_refs, find_targets, patch_change
from runbook_engine.actions.waiting import Pending, describe_pending, interval_field, timeout_field, wait_until
from runbook_engine.kube.change import Change, ChangeKind
from runbook_engine.kube.cluster import Cluster, Obj, PatchType
from runbook_engine.kube.health import pod_blocker, rollout_state
from runbook_engine.kube.refs import ObjectRef
from runbook_engine.kube.selectors import selector_to_string

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
#: ``Change.meta`` key of the restartedAt value a RESTART change writes (read by the engine's executor).
RESTART_VALUE_KEY = "restarted_at"


class WorkloadKind(StrEnum):
    DEPLOYMENT = "Deployment"
    STATEFULSET = "StatefulSet"
    DAEMONSET = "DaemonSet"


class RolloutRestartArgs(TargetArgs):
    kind: WorkloadKind = Field(default=WorkloadKind.DEPLOYMENT, description="Deployment, StatefulSet or DaemonSet.")
    api_version: str | None = Field(default="apps/v1", description="apiVersion of the workloads (apps/v1).")
    wait: bool = Field(default=True, description="Wait until every restarted workload has rolled out.")
    timeout: float = timeout_field(300.0)
    interval: float = interval_field(2.0)


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def restart_change(workload: Obj, stamp: str) -> Change:
    """The RESTART change of one workload: its pod template annotated with ``stamp``."""
    patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
    after = copy.deepcopy(workload)
    template_meta = after.setdefault("spec", {}).setdefault("template", {}).setdefault("metadata", {})
    template_meta["annotations"] = {**(template_meta.get("annotations") or {}), RESTARTED_AT: stamp}
    change = patch_change(ChangeKind.RESTART, workload, after, patch, PatchType.MERGE, "rollout restart")
    change.meta[RESTART_VALUE_KEY] = stamp
    return change


def pod_problems(cluster: Cluster, workload: Obj) -> list[str]:
    """``pod: reason`` for each of a workload's pods that is visibly broken."""
    selector = (workload.get("spec") or {}).get("selector")
    if not selector:
        return []
    namespace = str(workload["metadata"].get("namespace") or "")
    pods = cluster.list("v1", "Pod", namespace, selector_to_string(selector))
    problems = [(p["metadata"]["name"], pod_blocker(p)) for p in pods]
    return [f"pod {name}: {why}" for name, why in problems if why]


def observe_rollouts(cluster: Cluster, refs: list[ObjectRef]) -> Pending:
    """Workloads whose rollout is not complete, with what each is waiting for."""
    pending: Pending = {}
    for ref in refs:
        live = cluster.get(ref)
        if live is None:
            pending[str(ref)] = "deleted while rolling out"
            continue
        state = rollout_state(live)
        if not state.done:
            pending[str(ref)] = state.detail
    return pending


def explain(cluster: Cluster, pending: Pending, refs: list[ObjectRef]) -> Pending:
    """``pending`` with each workload's broken pods added to its reason."""
    out: Pending = {}
    for ref in refs:
        if str(ref) not in pending:
            continue
        live = cluster.get(ref)
        problems = pod_problems(cluster, live) if live is not None else []
        out[str(ref)] = "; ".join([pending[str(ref)], *problems])
    return out


@register
class RolloutRestart(Action[RolloutRestartArgs]):
    name = "rollout_restart"
    Args = RolloutRestartArgs

    def plan(self, ctx: ActionContext, args: RolloutRestartArgs) -> Planned:
        _, workloads, missing = find_targets(ctx.cluster, args)
        if missing:
            return Planned(failed=True, msg=f"not found: {describe_refs(missing)}", result={"changed": False})
        stamp = now_rfc3339()
        changes = [restart_change(w, stamp) for w in workloads]
        result = {"changed": bool(changes), "restarted": [str(c.ref) for c in changes]}
        if not changes:
            return Planned(msg=f"no {args.kind.value} matches selector {args.selector!r}", result=result)
        return Planned(changes=changes, msg=f"{len(changes)} to restart", result=result)

    def settle(self, ctx: ActionContext, args: RolloutRestartArgs, applied: list[Change]) -> Settled:
        refs = [c.ref for c in applied if c.kind is ChangeKind.RESTART]
        if not args.wait or not refs:
            return Settled(msg="restarted; not waiting for the rollout" if refs else "nothing restarted")
        outcome = wait_until(ctx, "rollout", len(refs), lambda: observe_rollouts(ctx.cluster, refs),
                             args.timeout, args.interval)
        if outcome.ok:
            return Settled(msg=f"rolled out: {describe_refs(refs)}", result={"rolled_out": [str(r) for r in refs]})
        pending = explain(ctx.cluster, outcome.pending, refs)
        return Settled(
            ok=False,
            msg=f"timed out after {args.timeout:g}s; not rolled out: {describe_pending(pending)}",
            result={"not_rolled_out": sorted(pending)},
        )
