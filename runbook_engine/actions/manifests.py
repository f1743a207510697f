"""Reading manifests for ``k8s_apply``: inline definitions, multi-document YAML files, Jinja2 templates.

Relative paths resolve against the task's directories the way Ansible resolves them: a role's
``files/`` (for ``src``) or ``templates/`` (for ``template``), then the role or playbook directory.
Every problem is a ``UserInputError`` naming the file (and line:column for YAML errors).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from runbook_engine.actions.base import ActionContext
from runbook_engine.errors import Location, UserInputError
from runbook_engine.kube.cluster import Obj


def find_file(ctx: ActionContext, name: str, subdir: str) -> Path:
    """The file ``name`` refers to: absolute, or the first of the task's search directories holding it."""
    path = Path(name)
    if path.is_absolute():
        candidates = [path]
    else:
        dirs = [*ctx.template_dirs] if subdir == "templates" else []
        dirs += [ctx.base_dir / subdir, ctx.base_dir]
        candidates = [d / path for d in dirs]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    searched = ", ".join(str(c) for c in candidates)
    raise UserInputError(f"file not found: {name}", hint=f"searched {searched}; check the path")


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserInputError(f"cannot read {path}: {exc}", Location(str(path))) from None


def parse_documents(text: str, file: str) -> list[Obj]:
    """Every non-empty document of a multi-document YAML text, each of which must be a mapping."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file)
        raise UserInputError(f"YAML syntax error: {exc.problem or exc}", where,
                             hint="check indentation, a missing ':' or an unclosed quote near here") from None
    except yaml.YAMLError as exc:
        raise UserInputError(f"YAML syntax error: {exc}", Location(file)) from None
    return flatten_objects(docs, file)


def flatten_objects(items: Iterable[Any], where: str) -> list[Obj]:
    """Objects from documents or definitions; a ``kind: List`` contributes its ``items``."""
    out: list[Obj] = []
    for index, item in enumerate(items, start=1):
        if not isinstance(item, Mapping):
            raise UserInputError(f"{where}: item {index} is not a Kubernetes object (a mapping)",
                                 Location(where) if where != "definition" else None,
                                 hint="each document needs apiVersion, kind and metadata")
        if str(item.get("kind", "")).endswith("List") and isinstance(item.get("items"), list):
            out.extend(flatten_objects(item["items"], where))
        else:
            out.append(_plain(item))
    return out


def _plain(value: Any) -> Any:
    """Deep copy into plain dicts and lists (loaders may hand us dict/list subclasses)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def require_identity(obj: Mapping[str, Any], where: str) -> None:
    """An object must name its apiVersion, kind and metadata.name."""
    meta = obj.get("metadata")
    missing = [f for f in ("apiVersion", "kind") if not obj.get(f)]
    if not isinstance(meta, Mapping) or not meta.get("name"):
        missing.append("metadata.name")
    if missing:
        raise UserInputError(f"{where}: an object is missing {', '.join(missing)}",
                             hint="every manifest needs apiVersion, kind and metadata.name")
