"""``k8s_apply``: make objects exist as written (``state: present``) or not exist (``state: absent``).

Objects come from exactly one of ``definition`` (inline object or list), ``src`` (a multi-document
YAML file) or ``template`` (a Jinja2 file rendered with the task's variables). One ``Change`` per
object: CREATE when it is missing, UPDATE when the live object differs in a field the configuration
sets (fields the server defaults or other managers own are not compared), DELETE for
``state: absent``. ``after`` is the apply configuration, executed with server-side apply;
``before`` is the full live pre-image. Objects already as written produce no change and are listed
in the result as ``unchanged``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from runbook_engine.actions.base import Action, ActionArgs, ActionContext, Planned, register
from runbook_engine.actions.manifests import find_file, flatten_objects, parse_documents, read_text, require_identity
from runbook_engine.actions.objects import plural, sets_differ
from runbook_engine.errors import Location, UserInputError
from runbook_engine.kube.change import Change, ChangeKind
from runbook_engine.kube.cluster import Cluster, Obj
from runbook_engine.kube.merge import to_apply_config
from runbook_engine.kube.refs import REGISTRY, ObjectRef
from runbook_engine.spec.templating import Templar


class State(StrEnum):
    PRESENT = "present"
    ABSENT = "absent"


class K8sApplyArgs(ActionArgs):
    definition: dict[str, Any] | list[dict[str, Any]] | None = Field(
        default=None, description="An object, or a list of objects, written inline."
    )
    src: str | None = Field(
        default=None, description="A YAML file of one or more documents (role files/ or the playbook directory)."
    )
    template: str | None = Field(
        default=None, description="A Jinja2 file rendered with the task's variables into YAML documents."
    )
    namespace: str | None = Field(
        default=None, description="Namespace for namespaced objects that do not set metadata.namespace."
    )
    state: State = Field(default=State.PRESENT, description="present: create or update; absent: delete.")

    @model_validator(mode="after")
    def _one_source(self) -> K8sApplyArgs:
        given = [n for n in ("definition", "src", "template") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of 'definition', 'src' or 'template' (got {given or 'none'})")
        return self


def load_objects(ctx: ActionContext, args: K8sApplyArgs) -> list[Obj]:
    """The objects the task names, each with its namespace defaulted and its identity checked."""
    if args.definition is not None:
        items = args.definition if isinstance(args.definition, list) else [args.definition]
        objects, where = flatten_objects(items, "definition"), "definition"
    elif args.src is not None:
        path = find_file(ctx, args.src, "files")
        objects, where = parse_documents(read_text(path), str(path)), str(path)
    else:
        path = find_file(ctx, str(args.template), "templates")
        objects, where = parse_documents(render_file(ctx, path), str(path)), str(path)
    for obj in objects:
        require_identity(obj, where)
        default_namespace(obj, args.namespace, where)
    return objects


def render_file(ctx: ActionContext, path: Path) -> str:
    """A template file rendered with the task's variables (sandboxed Jinja2, undefined is an error)."""
    return Templar(ctx.vars).render_text(read_text(path), location=Location(str(path), 1, 1))


def default_namespace(obj: Obj, namespace: str | None, where: str) -> None:
    """Set ``metadata.namespace`` of a namespaced object that lacks one; refuse when none is known."""
    info = REGISTRY.find(str(obj["apiVersion"]), str(obj["kind"]))
    meta = obj["metadata"]
    if info is not None and not info.namespaced:
        meta.pop("namespace", None)
        return
    if meta.get("namespace"):
        return
    if namespace is None and info is not None:
        raise UserInputError(
            f"{where}: {obj['kind']}/{meta['name']} is namespaced but has no namespace",
            hint="set metadata.namespace in the object or the task's 'namespace' argument",
        )
    if namespace is not None:
        meta["namespace"] = namespace


def comparable(config: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a configuration sets, as the server stores them: no status or server metadata (an
    exported manifest may carry them), and a Secret's write-only ``stringData`` folded into ``data``."""
    out = to_apply_config(config)
    if out.get("kind") == "Secret" and out.get("apiVersion") == "v1" and out.get("stringData"):
        data = dict(out.get("data") or {})
        for key, value in dict(out.pop("stringData")).items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        out["data"] = data
    return out


def plan_object(cluster: Cluster, config: Obj, state: State) -> Change | None:
    """The change one object needs, or None when it is already in the desired state."""
    ref = ObjectRef.of(config)
    live = cluster.get(ref)
    if state is State.ABSENT:
        return Change(ChangeKind.DELETE, ref, before=live, reason="state: absent") if live is not None else None
    if live is None:
        return Change(ChangeKind.CREATE, ref, before=None, after=config, reason="missing")
    if sets_differ(comparable(config), live):
        return Change(ChangeKind.UPDATE, ref, before=live, after=config, reason="differs from configuration")
    return None


def summary(changes: list[Change], unchanged: list[ObjectRef]) -> str:
    if not changes:
        return f"already in desired state ({plural(len(unchanged), 'object')})"
    counts: dict[str, int] = {}
    for change in changes:
        counts[change.kind.value] = counts.get(change.kind.value, 0) + 1
    parts = [f"{n} to {kind}" for kind, n in counts.items()]
    if unchanged:
        parts.append(f"{len(unchanged)} already in desired state")
    return ", ".join(parts)


@register
class K8sApply(Action[K8sApplyArgs]):
    name = "k8s_apply"
    Args = K8sApplyArgs
    template_args = ("template",)

    def plan(self, ctx: ActionContext, args: K8sApplyArgs) -> Planned:
        changes: list[Change] = []
        unchanged: list[ObjectRef] = []
        for config in load_objects(ctx, args):
            change = plan_object(ctx.cluster, config, args.state)
            if change is None:
                unchanged.append(ObjectRef.of(config))
            else:
                changes.append(change)
        result = {
            "changed": bool(changes),
            "objects": [f"{c.kind.value} {c.ref}" for c in changes],
            "unchanged": [str(r) for r in unchanged],
        }
        return Planned(changes=changes, result=result, msg=summary(changes, unchanged))
