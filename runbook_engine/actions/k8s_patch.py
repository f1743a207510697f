"""``k8s_patch``: patch one existing object with a merge, JSON or strategic merge patch.

The patched object is computed locally with the API server's patch semantics (``kube.merge``). When
it equals the live object the task is already in its desired state and plans nothing. Otherwise it
plans one UPDATE whose ``before`` is the live object, whose ``after`` is the patched object, and
whose ``meta`` carries the patch (``actions.objects.PATCH_KEY``/``PATCH_TYPE_KEY``): the engine sends
that patch as written rather than applying ``after``, so fields other managers own are untouched and
a patch that removes a field really removes it. Rollback restores ``before``, the full pre-image.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field, model_validator

from runbook_engine.actions.base import Action, ActionArgs, ActionContext, Planned, register
from runbook_engine.actions.objects import patch_change
from runbook_engine.errors import ClusterError, UserInputError
from runbook_engine.kube.change import ChangeKind
from runbook_engine.kube.cluster import Obj, PatchType
from runbook_engine.kube.lookup import resolve_kind
from runbook_engine.kube.merge import json_patch, merge_patch, strategic_merge
from runbook_engine.kube.refs import KindInfo, ObjectRef


class PatchKind(StrEnum):
    MERGE = "merge"
    JSON = "json"
    STRATEGIC = "strategic"

    @property
    def patch_type(self) -> PatchType:
        return {PatchKind.MERGE: PatchType.MERGE, PatchKind.JSON: PatchType.JSON,
                PatchKind.STRATEGIC: PatchType.STRATEGIC}[self]


class K8sPatchArgs(ActionArgs):
    kind: str = Field(description="Kind of the object, e.g. Deployment.")
    api_version: str | None = Field(default=None, description="apiVersion; may be omitted when unambiguous.")
    name: str = Field(description="Name of the object.")
    namespace: str | None = Field(default=None, description="Namespace of a namespaced object.")
    patch: dict[str, Any] | list[dict[str, Any]] = Field(
        description="The patch: a map for merge/strategic, a list of RFC 6902 operations for json."
    )
    type: PatchKind | None = Field(
        default=None,
        description="merge, json or strategic; by default strategic for built-in kinds and merge for custom "
        "resources (the API server refuses strategic merge patches of custom resources).",
    )

    @model_validator(mode="after")
    def _shape_matches_type(self) -> K8sPatchArgs:
        if (self.type is PatchKind.JSON) != isinstance(self.patch, list):
            want = "a list of operations" if self.type is PatchKind.JSON else "a map"
            raise ValueError(f"a {(self.type or PatchKind.STRATEGIC).value} patch must be {want}")
        return self


#: API groups served by Kubernetes itself (everything else is a custom resource).
_BUILTIN_GROUPS = frozenset({"", "apps", "batch", "policy", "autoscaling"})


def is_builtin(info: KindInfo) -> bool:
    group = info.group
    return group in _BUILTIN_GROUPS or (group.endswith(".k8s.io") and group != "gateway.networking.k8s.io")


def patch_kind(info: KindInfo, requested: PatchKind | None) -> PatchKind:
    """The patch type to use; strategic merge is refused for custom resources, as the API server does."""
    if requested is None:
        return PatchKind.STRATEGIC if is_builtin(info) else PatchKind.MERGE
    if requested is PatchKind.STRATEGIC and not is_builtin(info):
        raise UserInputError(f"{info.kind} is a custom resource: strategic merge patches are not supported",
                             hint="use type: merge (or json)")
    return requested


def patched(live: Obj, patch: Any, kind: PatchKind) -> Obj:
    """``live`` with ``patch`` applied as the API server would apply it."""
    if kind is PatchKind.JSON:
        result = json_patch(live, patch)
    elif kind is PatchKind.STRATEGIC:
        result = strategic_merge(live, patch)
    else:
        result = merge_patch(live, patch)
    if not isinstance(result, dict) or ObjectRef.of(result) != ObjectRef.of(live):
        raise UserInputError("the patch must keep the object's apiVersion, kind, namespace and name")
    return result


@register
class K8sPatch(Action[K8sPatchArgs]):
    name = "k8s_patch"
    Args = K8sPatchArgs

    def plan(self, ctx: ActionContext, args: K8sPatchArgs) -> Planned:
        info = resolve_kind(args.kind, args.api_version)
        if info.namespaced and not args.namespace:
            raise UserInputError(f"{info.kind} is namespaced: set 'namespace'")
        kind = patch_kind(info, args.type)
        ref = ObjectRef(info.api_version, info.kind, (args.namespace or "") if info.namespaced else "", args.name)
        live = ctx.cluster.get(ref)
        if live is None:
            return Planned(failed=True, msg=f"{ref} not found: nothing to patch", result={"changed": False})
        try:
            after = patched(live, args.patch, kind)
        except ClusterError as exc:  # an invalid JSON patch operation against this object
            raise UserInputError(f"cannot patch {ref}: {exc.message}", hint=exc.hint) from None
        if after == live:
            return Planned(msg=f"{ref} already in desired state", result={"changed": False})
        change = patch_change(ChangeKind.UPDATE, live, after, args.patch, kind.patch_type, f"{kind.value} patch")
        return Planned(changes=[change], msg=f"{ref} to patch", result={"changed": True})
