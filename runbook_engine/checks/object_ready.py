"""``object_ready``: an object exists and reports itself ready.

Workloads (Deployment, StatefulSet, DaemonSet) are ready when their rollout is complete and every
replica is ready, as ``kubectl rollout status`` judges; other objects by a status condition: the one
named in ``condition``, else Ready for Pods and Nodes, Established for CRDs, Complete for Jobs, and
for anything else the first of Ready or Available it reports. An object that reports no conditions
at all (a ConfigMap, a policy) is ready when it exists. A failing object whose pods were already
unhealthy in the run's baseline is PRE-EXISTING, not a new failure.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from runbook_engine.checks.base import Check, CheckArgs, CheckContext, register
from runbook_engine.errors import UserInputError
from runbook_engine.kube.cluster import Obj
from runbook_engine.kube.health import WORKLOAD_KINDS, condition, rollout_state
from runbook_engine.kube.lookup import resolve_kind
from runbook_engine.kube.refs import KindInfo, ObjectRef
from runbook_engine.report.verdict import Evidence, Section, Status, Verdict

#: The readiness condition each kind reports, where it is not Ready-or-Available.
DEFAULT_CONDITIONS: dict[str, str] = {"Pod": "Ready", "Node": "Ready", "CustomResourceDefinition": "Established",
                                      "Job": "Complete"}

_CORE_GROUPS = frozenset({"", "apps", "batch"})


class ObjectReadyArgs(CheckArgs):
    kind: str = Field(description="Kind of the object, e.g. Deployment, CustomResourceDefinition.")
    api_version: str | None = Field(default=None, description="apiVersion; may be omitted when unambiguous.")
    name: str = Field(description="Name of the object.")
    namespace: str | None = Field(default=None, description="Namespace of a namespaced object.")
    condition: str | None = Field(default=None, description="Condition type that must be True (default: by kind).")


def kubectl_resource(info: KindInfo) -> str:
    """How kubectl names a kind unambiguously: ``deployment``, ``peerauthentications.security.istio.io``."""
    return info.singular if info.group in _CORE_GROUPS else f"{info.plural}.{info.group}"


def kubectl_get(info: KindInfo, ref: ObjectRef, suffix: str = "") -> str:
    ns = f" -n {ref.namespace}" if ref.namespace else ""
    return f"kubectl get {kubectl_resource(info)} {ref.name}{ns}{suffix}"


def conditions_evidence(info: KindInfo, ref: ObjectRef, obj: Mapping[str, Any]) -> Evidence:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return Evidence(kubectl_get(info, ref, " -o jsonpath='{.status.conditions}'"),
                    json.dumps(conditions, separators=(",", ":")) if conditions else "")


def condition_verdict(obj: Obj, wanted: str | None) -> tuple[bool, str]:
    """(ready?, what was seen) by the object's status conditions."""
    types = [wanted] if wanted else [DEFAULT_CONDITIONS.get(str(obj.get("kind")), ""), "Ready", "Available"]
    for type_ in [t for t in types if t]:
        cond = condition(obj, type_)
        if cond is None:
            continue
        detail = cond.get("message") or cond.get("reason") or ""
        seen = f"{type_}={cond.get('status')}" + (f": {detail}" if detail else "")
        return cond.get("status") == "True", seen
    if wanted or str(obj.get("kind")) in DEFAULT_CONDITIONS:
        return False, f"no {wanted or DEFAULT_CONDITIONS[str(obj.get('kind'))]} condition reported yet"
    return True, "exists (reports no readiness conditions)"


def baseline_key(ref: ObjectRef) -> str:
    """How the baseline names the owner of this object's pods."""
    return f"{ref.namespace}/{ref.name}" if ref.kind == "Pod" else f"{ref.namespace}/{ref.kind}/{ref.name}"


@register
class ObjectReady(Check[ObjectReadyArgs]):
    name = "object_ready"
    section = Section.FOUNDATION
    purpose = "The object exists and reports itself ready."
    Args = ObjectReadyArgs

    def run(self, ctx: CheckContext, args: ObjectReadyArgs) -> Verdict:
        info = resolve_kind(args.kind, args.api_version)
        if info.namespaced and not args.namespace:
            raise UserInputError(f"{info.kind} is namespaced: set 'namespace' for {args.name}")
        ref = ObjectRef(info.api_version, info.kind, (args.namespace or "") if info.namespaced else "", args.name)
        obj = ctx.cluster.get(ref)
        if obj is None:
            return self._verdict(ctx, Status.FAIL, f"{ref} not found",
                                 (Evidence(kubectl_get(info, ref), f'Error from server (NotFound): "{ref.name}" '
                                           "not found"),),
                                 hint="apply the object, or check kind, name and namespace")
        ready, seen, evidence = self._readiness(info, ref, obj, args.condition)
        if ready:
            return self._verdict(ctx, Status.PASS, f"{ref} is ready: {seen}", evidence)
        preexisting = ctx.baseline is not None and baseline_key(ref) in ctx.baseline.unhealthy_owners()
        status = Status.PREEXISTING if preexisting else Status.FAIL
        note = " (already unhealthy before the run)" if preexisting else ""
        return self._verdict(ctx, status, f"{ref} is not ready: {seen}{note}", evidence,
                             hint=f"inspect it: kubectl describe {kubectl_resource(info)} {ref.name}"
                             + (f" -n {ref.namespace}" if ref.namespace else ""))

    @staticmethod
    def _readiness(
        info: KindInfo, ref: ObjectRef, obj: Obj, wanted: str | None
    ) -> tuple[bool, str, tuple[Evidence, ...]]:
        evidence = conditions_evidence(info, ref, obj)
        if info.kind in WORKLOAD_KINDS and not wanted:
            state = rollout_state(obj)
            ns = f" -n {ref.namespace}" if ref.namespace else ""
            rollout = Evidence(f"kubectl rollout status {info.singular}/{ref.name}{ns} --watch=false", state.detail)
            return state.done, state.detail, (rollout, evidence)
        ready, seen = condition_verdict(obj, wanted)
        return ready, seen, (evidence,)

    def _verdict(self, ctx: CheckContext, status: Status, summary: str, evidence: tuple[Evidence, ...],
                 hint: str = "") -> Verdict:
        return Verdict(check=self.name, title=ctx.title or self.name, status=status, summary=summary, hint=hint,
                       evidence=evidence, section=self.section, purpose=self.purpose)
