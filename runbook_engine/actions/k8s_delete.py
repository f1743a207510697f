"""``k8s_delete``: delete objects by name or by selector.

One DELETE change per existing object, with the full live object as its pre-image, so rollback
recreates it. An object that is already gone is the desired state, not an error.
"""

from __future__ import annotations

from runbook_engine.actions.base import Action, ActionContext, Planned, register
from runbook_engine.actions.objects import TargetArgs, describe_refs, find_targets
from runbook_engine.kube.change import Change, ChangeKind
from runbook_engine.kube.refs import ObjectRef


class K8sDeleteArgs(TargetArgs):
    """Which objects to delete: ``kind`` plus ``name`` or ``selector``, in ``namespace``(s)."""


@register
class K8sDelete(Action[K8sDeleteArgs]):
    name = "k8s_delete"
    Args = K8sDeleteArgs

    def plan(self, ctx: ActionContext, args: K8sDeleteArgs) -> Planned:
        _, objects, missing = find_targets(ctx.cluster, args)
        changes = [Change(ChangeKind.DELETE, ObjectRef.of(o), before=o, after=None, reason="k8s_delete")
                   for o in objects]
        result = {"changed": bool(changes), "objects": [str(c.ref) for c in changes],
                  "absent": [str(r) for r in missing]}
        if not changes:
            gone = describe_refs(missing) if missing else f"no {args.kind} matches selector {args.selector!r}"
            return Planned(msg=f"already in desired state: {gone}", result=result)
        return Planned(changes=changes, msg=f"{len(changes)} to delete", result=result)
