"""Shared helpers for the object actions: target selection, field comparison, patch-carrying changes.

Actions that modify *part* of an object (``k8s_patch``, ``k8s_label``, ``rollout_restart``) return a
``Change`` whose ``before`` is the live object, whose ``after`` is the object as it will be once
patched (computed locally, for diffs and for rollback), and whose ``meta`` carries the patch itself
under ``PATCH_KEY``/``PATCH_TYPE_KEY``. The engine sends that patch with ``Cluster.patch`` instead
of applying ``after``: server-side apply of a whole object would neither remove fields owned by
other managers nor leave their ownership alone. Rollback restores ``before`` (the full pre-image).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, model_validator

from runbook_engine.actions.base import ActionArgs
from runbook_engine.errors import UserInputError
from runbook_engine.kube.change import Change, ChangeKind
from runbook_engine.kube.cluster import Cluster, Obj, PatchType
from runbook_engine.kube.lookup import resolve_kind
from runbook_engine.kube.merge import list_key
from runbook_engine.kube.refs import KindInfo, ObjectRef
from runbook_engine.kube.selectors import parse_selector

#: ``Change.meta`` key holding the patch document the engine sends instead of applying ``after``.
PATCH_KEY = "patch"
#: ``Change.meta`` key holding the ``PatchType`` value (a content type string) of ``PATCH_KEY``.
PATCH_TYPE_KEY = "patch_type"


def patch_meta(patch: Any, patch_type: PatchType) -> dict[str, Any]:
    """The ``Change.meta`` of a change the engine must execute as a patch."""
    return {PATCH_KEY: patch, PATCH_TYPE_KEY: patch_type.value}


def patch_of(change: Change) -> tuple[Any, PatchType] | None:
    """The patch a change carries (and its type), or None when ``after`` is to be applied."""
    if PATCH_KEY not in change.meta:
        return None
    return change.meta[PATCH_KEY], PatchType(change.meta.get(PATCH_TYPE_KEY, PatchType.MERGE.value))


def _label_value(value: Any) -> Any:
    """Numbers in YAML (``version: 2``) become the strings Kubernetes requires; booleans are refused."""
    if isinstance(value, bool):
        raise ValueError(f"label and annotation values are strings: quote it, e.g. \"{str(value).lower()}\"")
    if isinstance(value, int | float):
        return str(value)
    return value


LabelValue = Annotated[str | None, BeforeValidator(_label_value)]


class TargetArgs(ActionArgs):
    """Which objects a task acts on: one by ``name``, or all matching ``selector``, in namespaces."""

    kind: str = Field(description="Kind of the objects, e.g. Deployment or PeerAuthentication.")
    api_version: str | None = Field(
        default=None, description="apiVersion, e.g. apps/v1; may be omitted when the kind is unambiguous."
    )
    name: str | None = Field(default=None, description="Name of one object (or use selector).")
    selector: str | None = Field(
        default=None, description="Label selector in kubectl form, e.g. 'app=api,tier!=db' (or use name)."
    )
    namespace: str | list[str] | None = Field(
        default=None,
        description="Namespace, or a list of namespaces, of namespaced kinds; with a selector and no "
        "namespace, every namespace is searched.",
    )

    @model_validator(mode="after")
    def _name_xor_selector(self) -> TargetArgs:
        if (self.name is None) == (self.selector is None):
            raise ValueError("give exactly one of 'name' or 'selector'")
        if self.selector is not None:
            parse_selector(self.selector)  # raises a clear error for a malformed selector
        return self

    def namespaces(self) -> list[str | None]:
        if self.namespace is None:
            return [None]
        return [self.namespace] if isinstance(self.namespace, str) else list(self.namespace)


def find_targets(cluster: Cluster, args: TargetArgs) -> tuple[KindInfo, list[Obj], list[ObjectRef]]:
    """The live objects ``args`` names, and the refs of named objects that do not exist."""
    info = resolve_kind(args.kind, args.api_version)
    found: list[Obj] = []
    missing: list[ObjectRef] = []
    for scope in args.namespaces() if info.namespaced else [None]:
        if info.namespaced and args.name is not None and not scope:
            raise UserInputError(f"{info.kind} is namespaced: set 'namespace' for {args.name}")
        if args.name is not None:
            ref = ObjectRef(info.api_version, info.kind, scope or "", args.name)
            live = cluster.get(ref)
            found.extend([live] if live is not None else [])
            missing.extend([] if live is not None else [ref])
        else:
            found.extend(cluster.list(info.api_version, info.kind, scope, args.selector))
    return info, _unique(found), missing


def _unique(objs: Iterable[Obj]) -> list[Obj]:
    seen: dict[ObjectRef, Obj] = {}
    for obj in objs:
        seen.setdefault(ObjectRef.of(obj), obj)
    return list(seen.values())


def patch_change(kind: ChangeKind, live: Obj, after: Obj, patch: Any, patch_type: PatchType, reason: str) -> Change:
    """A change executed as ``patch`` whose ``before``/``after`` are full objects."""
    return Change(kind, ObjectRef.of(live), before=live, after=after, reason=reason,
                  meta=patch_meta(patch, patch_type))


def sets_differ(desired: Any, live: Any, field_name: str = "") -> bool:
    """Whether ``live`` differs from ``desired`` in any field ``desired`` sets.

    Maps compare key by key over ``desired``'s keys only (fields the server defaults or other
    managers own are ignored). Lists keyed by a merge key (containers by name, ports by port…)
    compare each desired item with the live item of the same key, as server-side apply merges
    them; other lists are atomic and compare element by element.
    """
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return True
        return any(sets_differ(v, live.get(k), k) for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(live, list):
            return True
        key = list_key(field_name, desired)
        if key is not None:
            return any(sets_differ(item, _item_with(live, key, item.get(key)), field_name) for item in desired)
        return len(live) != len(desired) or any(
            sets_differ(d, v, field_name) for d, v in zip(desired, live, strict=True)
        )
    return bool(desired != live)


def _item_with(items: list[Any], key: str, value: Any) -> Any:
    return next((i for i in items if isinstance(i, Mapping) and i.get(key) == value), None)


def plural(n: int, noun: str) -> str:
    """``1 object``, ``2 objects``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def describe_refs(refs: Iterable[ObjectRef]) -> str:
    return ", ".join(str(r) for r in refs)
