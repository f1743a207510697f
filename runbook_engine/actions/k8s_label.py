"""``k8s_label``: set or remove labels and annotations on any objects, by name or by selector.

A value of ``null`` removes the key. Only objects whose labels or annotations actually change get a
change: an UPDATE whose ``after`` is the relabelled object and whose ``meta`` carries the JSON merge
patch of exactly the changed keys (see ``actions.objects``), so labels other tools own are left
alone and rollback restores the full pre-image.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from pydantic import Field, model_validator

from runbook_engine.actions.base import Action, ActionContext, Planned, register
from runbook_engine.actions.objects import LabelValue, TargetArgs, describe_refs, find_targets, patch_change, plural
from runbook_engine.kube.change import Change, ChangeKind
from runbook_engine.kube.cluster import Obj, PatchType
from runbook_engine.kube.refs import ObjectRef


class K8sLabelArgs(TargetArgs):
    labels: dict[str, LabelValue] = Field(default_factory=dict, description="Labels to set; null removes one.")
    annotations: dict[str, LabelValue] = Field(
        default_factory=dict, description="Annotations to set; null removes one."
    )

    @model_validator(mode="after")
    def _something_to_do(self) -> K8sLabelArgs:
        if not self.labels and not self.annotations:
            raise ValueError("give 'labels' and/or 'annotations' to set or remove")
        return self


def delta(current: Mapping[str, str], wanted: Mapping[str, str | None]) -> dict[str, str | None]:
    """The keys of ``wanted`` that change ``current`` (None: remove a present key)."""
    out: dict[str, str | None] = {}
    for key, value in wanted.items():
        if value is None and key in current:
            out[key] = None
        elif value is not None and current.get(key) != value:
            out[key] = value
    return out


def relabel(obj: Obj, args: K8sLabelArgs) -> Change | None:
    """The change relabelling one object, or None when it already carries the wanted metadata."""
    meta = obj.get("metadata") or {}
    patch_meta: dict[str, Any] = {}
    for field, wanted in (("labels", args.labels), ("annotations", args.annotations)):
        changed = delta(meta.get(field) or {}, wanted)
        if changed:
            patch_meta[field] = changed
    if not patch_meta:
        return None
    after = copy.deepcopy(obj)
    for field, changed in patch_meta.items():
        merged = {**(after["metadata"].get(field) or {}), **changed}
        after["metadata"][field] = {k: v for k, v in merged.items() if v is not None}
    patch = {"metadata": patch_meta}
    return patch_change(ChangeKind.UPDATE, obj, after, patch, PatchType.MERGE, "label/annotate")


@register
class K8sLabel(Action[K8sLabelArgs]):
    name = "k8s_label"
    Args = K8sLabelArgs

    def plan(self, ctx: ActionContext, args: K8sLabelArgs) -> Planned:
        _, objects, missing = find_targets(ctx.cluster, args)
        if missing:
            return Planned(failed=True, msg=f"not found: {describe_refs(missing)}", result={"changed": False})
        changes = [c for c in (relabel(obj, args) for obj in objects) if c is not None]
        unchanged = [ObjectRef.of(o) for o in objects if ObjectRef.of(o) not in {c.ref for c in changes}]
        result = {"changed": bool(changes), "objects": [str(c.ref) for c in changes],
                  "unchanged": [str(r) for r in unchanged]}
        if not objects:
            return Planned(msg=f"no {args.kind} matches selector {args.selector!r}", result=result)
        if not changes:
            return Planned(msg=f"already in desired state ({plural(len(objects), 'object')})", result=result)
        return Planned(changes=changes, msg=f"{len(changes)} to relabel, {len(unchanged)} unchanged", result=result)
