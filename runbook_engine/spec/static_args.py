"""Task arguments checked before a run with the variable values already known then.

An argument written as a template (``timeout: "{{ restart_timeout }}"``) can only be type-checked
after rendering. When every variable it uses — directly or through the values of other variables —
has a value known before the run (inventory, play, phase, block, task and role variables, role
defaults and parameters, ``-e`` extra vars and the magic variables fixed by the inventory and the
playbook), it renders to exactly what the task will get, so it is rendered and validated against the
module's arguments model here. Anything that depends on ``register`` results, ``set_fact`` facts,
loop items, ``batch`` or the run id is only known at run time and is left to the task. A task whose
``when`` (or whose block's or phase's) is already known to be false is not judged at all.

Template files named by arguments (``k8s_apply``'s ``template``) are found the way the action finds
them, read and compiled here; the static check then reports the names they use that are undefined
at their task.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import meta
from pydantic import BaseModel, ValidationError

from runbook_engine.errors import Location, UserInputError
from runbook_engine.spec.catalog import ModuleCatalog, arg_names, args_locations, pydantic_errors
from runbook_engine.spec.model import Condition, InventorySpec, PhaseSpec, PlaybookSpec, PlaySpec, TaskSpec
from runbook_engine.spec.templating import (
    ENV,
    TEMPLATE_ERRORS,
    Templar,
    compile_template,
    contains_template,
    has_template,
    text_error,
)
from runbook_engine.spec.vars import Scope, merge_scopes

#: magic variables whose value is only known once the run has started
RUNTIME_MAGIC = frozenset({"run_id", "check_mode"})


@dataclass(frozen=True)
class TaskScope:
    """Where a task sits: its play, phase and the ``vars`` of its enclosing blocks (outermost first)."""

    playbook: PlaybookSpec
    play: PlaySpec
    inventory: InventorySpec
    phase: PhaseSpec
    blocks: tuple[Mapping[str, Any], ...] = ()
    block_conditions: tuple[Condition, ...] = ()

    def inside(self, block: TaskSpec) -> TaskScope:
        return TaskScope(self.playbook, self.play, self.inventory, self.phase, (*self.blocks, block.vars),
                         (*self.block_conditions, block.when))  # fmt: skip

    def conditions(self, task: TaskSpec) -> tuple[Condition, ...]:
        """The conditions that must all hold for ``task`` to run: its phase's, its blocks' and its own."""
        return (self.phase.when, *self.block_conditions, task.when)


def _magic(scope: TaskScope, cluster: str, task: TaskSpec) -> dict[str, Any]:
    """The magic variables known before the run, with the values the engine gives them."""
    inventory, spec = scope.inventory, scope.inventory.clusters[cluster]
    magic: dict[str, Any] = {
        "inventory_hostname": cluster, "cluster": cluster,
        "inventory_dir": str((inventory.path.parent if inventory.path.is_file() else inventory.path).resolve()),
        "group_names": list(spec.groups), "groups": {k: list(v) for k, v in inventory.groups.items()},
        "hostvars": {k: v.vars for k, v in inventory.clusters.items()},
        "playbook_dir": str(scope.playbook.path.resolve().parent), "phase_name": scope.phase.name,
    }  # fmt: skip
    role = scope.playbook.roles.get(task.role or "")
    if role is not None:
        magic |= {"role_name": role.name, "role_path": str(role.path)}
    return magic


def static_values(
    scope: TaskScope, cluster: str, task: TaskSpec, extra: Mapping[str, Any], runtime: Collection[str]
) -> dict[str, Any]:
    """The variables ``task`` sees on ``cluster`` whose values are known now, merged by precedence.

    ``runtime`` names (facts, registered results, the loop variable, ``batch``) are left out unless
    a scope that outranks them (``-e``, magic) fixes their value.
    """
    layers: dict[Scope, list[Mapping[str, Any]]] = {
        Scope.INVENTORY: [scope.inventory.clusters[cluster].vars], Scope.PLAY: [scope.play.vars],
        Scope.PHASE: [scope.phase.vars], Scope.BLOCK: list(scope.blocks), Scope.TASK: [task.vars],
    }  # fmt: skip
    role = scope.playbook.roles.get(task.role or "")
    if role is not None:
        layers |= {Scope.ROLE_DEFAULTS: [role.defaults], Scope.ROLE_VARS: [role.vars],
                   Scope.ROLE_PARAMS: [task.role_params]}  # fmt: skip
    merged = merge_scopes(layers)
    hidden = (set(runtime) | RUNTIME_MAGIC) - set(extra)
    merged = {k: v for k, v in merged.items() if k not in hidden}
    return merged | dict(extra) | _magic(scope, cluster, task)


def _templates(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        if has_template(value):
            yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _templates(key)
            yield from _templates(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _templates(item)


def is_static(value: Any, values: Mapping[str, Any]) -> bool:
    """Whether every variable ``value`` uses, directly or through other variables' values, is in ``values``."""
    pending, seen = [value], set[str]()
    while pending:
        for source in _templates(pending.pop()):
            try:
                used = meta.find_undeclared_variables(ENV.parse(source))
            except TEMPLATE_ERRORS:
                return False
            for name in used - seen:
                seen.add(name)
                if name in values:
                    pending.append(values[name])
                elif name not in ENV.globals:
                    return False
    return True


def _condition_sources(condition: Condition) -> list[str]:
    """Each string of a ``when``-style condition as a template (bare expressions wrapped in ``{{ }}``)."""
    items = condition if isinstance(condition, list) else [condition]
    return [c if has_template(c) else "{{ (" + c + ") }}" for c in items if isinstance(c, str)]


def statically_false(conditions: Sequence[Condition], values: Mapping[str, Any]) -> bool:
    """Whether one of ``conditions`` (a task's and its blocks' and phase's ``when``) is known to be false
    now: its arguments are then never rendered, so they must not be judged."""
    for condition in conditions:
        if condition is None or not is_static(_condition_sources(condition), values):
            continue
        try:
            if not Templar(values).evaluate(condition):
                return True
        except UserInputError:
            continue  # not decidable here; the condition's own mistakes are reported by the run
    return False


def _render_static(
    task: TaskSpec, values: Mapping[str, Any], skip: Collection[str]
) -> tuple[dict[str, Any], set[str]]:
    """The task's arguments with each static templated one rendered, and the names of those rendered."""
    args, rendered = dict(task.args), set()
    templar = Templar(values)
    for name, raw in task.args.items():
        if name in skip or not contains_template(raw) or not is_static(raw, values):
            continue
        args[name] = templar.render({name: raw}, location=task.location,
                                    locations=args_locations(task.locations))[name]  # fmt: skip
        rendered.add(str(name))
    return args, rendered


def check_static_args(
    task: TaskSpec, model: type[BaseModel], catalog: ModuleCatalog, values: Mapping[str, Any]
) -> list[UserInputError]:
    """Render the templated arguments of ``task`` that are static under ``values`` and validate them."""
    module = task.module or ""
    conditions = catalog.conditions.get(module, ())
    try:
        args, rendered = _render_static(task, values, conditions)
    except UserInputError as exc:
        return [exc]
    if not rendered:
        return []
    try:
        model.model_validate(args)
    except ValidationError as exc:
        whole = not conditions and not any(contains_template(v) for k, v in args.items() if k not in rendered)
        kept = [e for e in exc.errors() if (e["loc"][0] in rendered if e["loc"] else whole)]
        return pydantic_errors(kept, module=module, location=task.location,
                               locations=args_locations(task.locations), known_args=arg_names(model))  # fmt: skip
    return []


def find_template(name: str, base_dir: Path) -> tuple[Path | None, list[Path]]:
    """The template file ``name`` refers to, searched like the actions do: absolute, else the task's
    ``templates/`` directory, then its role or playbook directory; and the paths searched."""
    path = Path(name)
    candidates = [path] if path.is_absolute() else [base_dir / "templates" / path, base_dir / path]
    return next((c for c in candidates if c.is_file()), None), candidates


def template_file_name(task: TaskSpec, arg: str, values: Mapping[str, Any]) -> str | None:
    """The file name argument ``arg`` gives, rendered if it is a static template; None when unknown."""
    raw = task.args.get(arg)
    if not isinstance(raw, str):
        return None
    if not has_template(raw):
        return raw
    if not is_static(raw, values):
        return None
    try:
        name = Templar(values).render(raw)
    except UserInputError:
        return None  # reported by check_static_args for the same argument
    return name if isinstance(name, str) else None


@dataclass(frozen=True)
class TemplateFile:
    """A template file named by a task argument, read and parsed."""

    path: Path
    source: str

    @property
    def start(self) -> Location:
        return Location(str(self.path), 1, 1)


def load_template_file(
    task: TaskSpec, arg: str, name: str, base_dir: Path
) -> tuple[TemplateFile | None, UserInputError | None]:
    """Find, read and compile the template file ``name``; a problem is an error at the argument or in the file."""
    where = task.locations.get(f"args.{arg}", task.location)
    path, searched = find_template(name, base_dir)
    if path is None:
        return None, UserInputError(
            f"{task.module}: template file {name!r} not found", where,
            hint=f"searched {', '.join(str(c) for c in searched)}; check the name or put it in the role's templates/",
        )  # fmt: skip
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, UserInputError(f"cannot read template file {path}: {exc}", where)
    template = TemplateFile(path, source)
    try:
        compile_template(source)
    except TEMPLATE_ERRORS as exc:
        return None, text_error(exc, source, template.start)
    return template, None
