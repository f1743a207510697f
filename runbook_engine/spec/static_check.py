"""Everything wrong with a playbook that can be found before a run touches a cluster.

``check_playbook`` walks every play, phase, task and check in execution order and reports, each at
file:line:column: Jinja syntax errors and unknown filters/tests in every template; variables used
by a template that nothing defines at that point (inventory vars of *every* cluster the play runs
on, play/phase/block/task vars, role defaults/vars/params, ``register`` results and ``set_fact``
keys of earlier tasks, loop variables, ``batch`` in serial phases, ``-e`` extra vars and the magic
variables); templated task arguments whose variables all have values before the run, rendered and
type-checked (``spec.static_args``); template files named by arguments (syntax, undefined names, at
the file's own line and column); ``hosts`` patterns that match no cluster; and
``--tags``/``--skip-tags`` naming tags no task has. A name guarded by ``is defined`` or
``| default(...)`` in the same template is not reported. Values of variables are templated lazily
at their use, so they are checked against every name the play defines anywhere (a typo is still
caught).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jinja2 import meta, nodes

from runbook_engine.errors import Location, UserInputError
from runbook_engine.spec.catalog import ModuleCatalog, ModuleKind
from runbook_engine.spec.hints import did_you_mean, unique_errors
from runbook_engine.spec.hosts import select_clusters
from runbook_engine.spec.loader import iter_tasks
from runbook_engine.spec.model import CheckSpec, InventorySpec, PhaseSpec, PlaybookSpec, PlaySpec, TaskSpec
from runbook_engine.spec.static_args import (
    TaskScope,
    TemplateFile,
    check_static_args,
    load_template_file,
    static_values,
    statically_false,
    template_file_name,
)
from runbook_engine.spec.templating import (
    ENV,
    TEMPLATE_ERRORS,
    compile_expression,
    compile_template,
    contains_template,
    has_template,
    name_position,
    single_expression,
    template_error,
    within,
)
from runbook_engine.spec.vars import BATCH_VAR, MAGIC_VARS, RESCUE_VARS

SET_FACT = "set_fact"
SPECIAL_TAGS = frozenset({"all", "always", "never", "tagged", "untagged"})
_GUARD_TESTS = frozenset({"defined", "undefined"})
_GUARD_FILTERS = frozenset({"default", "d"})
_CONDITIONS = ("when", "until", "changed_when", "failed_when")


def _root_name(node: nodes.Node) -> str | None:
    while isinstance(node, nodes.Getattr | nodes.Getitem):
        node = node.node
    return node.name if isinstance(node, nodes.Name) else None


def _guarded(ast: nodes.Template) -> set[str]:
    """Names used under ``is defined``/``is undefined`` or ``| default(...)`` in this template."""
    guarded: set[str] = set()
    for test in ast.find_all(nodes.Test):
        if test.name in _GUARD_TESTS and (name := _root_name(test.node)):
            guarded.add(name)
    for flt in ast.find_all(nodes.Filter):
        if flt.name in _GUARD_FILTERS and flt.node is not None and (name := _root_name(flt.node)):
            guarded.add(name)
    return guarded


def _assigned(ast: nodes.Template) -> set[str]:
    """Names the template itself sets anywhere (``{% set %}``, loop targets, macros and their
    parameters): Jinja counts one set in an ``if`` branch as undeclared where it is read later."""
    names = {n.name for n in ast.find_all(nodes.Name) if n.ctx in ("store", "param")}
    return names | {m.name for m in ast.find_all(nodes.Macro)}


def _unknown_names(ast: nodes.Template, names: set[str]) -> list[str]:
    """The variables ``ast`` reads that neither ``names`` nor the template defines, unless guarded."""
    return sorted(meta.find_undeclared_variables(ast) - names - _guarded(ast) - _assigned(ast))


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(dotted path, string) for every string inside ``value`` that contains a template."""
    if isinstance(value, str):
        if has_template(value):
            yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}.{index}")


def _nearest(locations: Mapping[str, Location], path: str, fallback: Location | None) -> Location | None:
    parts = path.split(".")
    for end in range(len(parts), 0, -1):
        found = locations.get(".".join(parts[:end]))
        if found is not None:
            return found
    return fallback


@dataclass
class _Where:
    """Where a spec's values were written, for locating errors."""

    locations: Mapping[str, Location]
    fallback: Location | None

    def at(self, path: str) -> Location | None:
        return _nearest(self.locations, path, self.fallback)


@dataclass(frozen=True)
class _Scope:
    """A task's place for the static argument check, and the names only known at run time there."""

    task: TaskScope
    runtime: frozenset[str] = frozenset()

    def inside(self, block: TaskSpec) -> _Scope:
        return _Scope(self.task.inside(block), self.runtime)

    def with_runtime(self, names: Iterable[str]) -> _Scope:
        return _Scope(self.task, self.runtime | frozenset(names))


@dataclass
class _PlayCheck:
    """Checks one play against the clusters it runs on."""

    playbook: PlaybookSpec
    play: PlaySpec
    inventory: InventorySpec
    clusters: tuple[str, ...]
    extra_vars: Mapping[str, Any]
    catalog: ModuleCatalog
    errors: list[UserInputError] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.extra = frozenset(self.extra_vars)
        cluster_vars = [set(self.inventory.clusters[c].vars) for c in self.clusters]
        self.inventory_common = set.intersection(*cluster_vars) if cluster_vars else set()
        self.inventory_some = set.union(*cluster_vars) if cluster_vars else set()
        self.base = frozenset(MAGIC_VARS) | self.extra | self.inventory_common | set(self.play.vars) | set(ENV.globals)
        self.anywhere = self.base | self.inventory_some | self._declared_anywhere()

    # -- scopes --------------------------------------------------------------------------------

    def _declared_anywhere(self) -> set[str]:
        names: set[str] = {BATCH_VAR, *RESCUE_VARS}
        for phase in self.play.phases:
            names |= set(phase.vars)
            for task in iter_tasks(phase.tasks):
                names |= set(task.vars) | set(task.role_params) | _produces(task)
                names |= {task.loop_var} if task.loop is not None else set()
                names |= self._role_names(task)
        return names

    def _role_names(self, task: TaskSpec) -> set[str]:
        role = self.playbook.roles.get(task.role) if task.role else None
        return set(role.defaults) | set(role.vars) if role else set()

    # -- templates -----------------------------------------------------------------------------

    def template(
        self, source: str, location: Location | None, names: Iterable[str], *, condition: bool = False
    ) -> None:
        """Compile one template (or bare condition) and report its errors and undefined names."""
        try:
            expression = single_expression(source) if condition else None
            if condition and expression is None and not has_template(source):
                expression = source
            if expression is not None:
                compile_expression(expression)
            else:
                compile_template(source)
            ast = ENV.parse("{% set __v = " + expression + " %}" if expression is not None else source)
        except TEMPLATE_ERRORS as exc:
            self.errors.append(template_error(exc, source, location))
            return
        self._undefined(ast, source, location, set(names))

    def _undefined(self, ast: nodes.Template, source: str, location: Location | None, names: set[str]) -> None:
        for name in _unknown_names(ast, names):
            self.errors.append(self._undefined_error(name, source, location, names))

    def _undefined_error(
        self, name: str, source: str, location: Location | None, names: set[str], *, label: str = ""
    ) -> UserInputError:
        shown = label or f"template {source!r}"
        if name in self.inventory_some:
            lacking = [c for c in self.clusters if name not in self.inventory.clusters[c].vars]
            return UserInputError(
                f"variable {name!r} in {shown} is not defined for cluster(s) {', '.join(lacking)}",
                location,
                hint=f"define {name} in group_vars/all or for each cluster, or use '| default(...)'",
            )
        close = did_you_mean(name, [n for n in names if n not in ENV.globals], fallback="")
        near = f"{close} " if close else ""
        return UserInputError(
            f"undefined variable {name!r} in {shown}",
            location,
            hint=f"{near}define {name} in vars, the inventory or with -e {name}=..., or use '| default(...)'",
        )

    def values(self, value: Any, path: str, where: _Where, names: Iterable[str]) -> None:
        scope = set(names)
        for sub, source in _strings(value, path):
            self.template(source, where.at(sub), scope)

    def conditions(
        self, spec: TaskSpec | PhaseSpec | CheckSpec, keys: Sequence[str], where: _Where, names: set[str]
    ) -> None:
        for key in keys:
            value = getattr(spec, key, None)
            items = value if isinstance(value, list) else [value]
            for index, item in enumerate(items):
                if isinstance(item, str):
                    path = f"{key}.{index}" if isinstance(value, list) else key
                    self.template(item, where.at(path), names, condition=True)

    def var_values(self, variables: Mapping[str, Any], prefix: str, where: _Where) -> None:
        """Variable values are templated lazily where used: check them against every name in the play."""
        self.values(dict(variables), prefix, where, self.anywhere)

    # -- walk ----------------------------------------------------------------------------------

    def run(self) -> list[UserInputError]:
        self.var_values(self.play.vars, "vars", _Where(self.play.locations, self.play.location))
        facts: set[str] = set()
        for phase in self.play.phases:
            facts = self.phase(phase, facts)
        return self.errors

    def phase(self, phase: PhaseSpec, facts: set[str]) -> set[str]:
        where = _Where(phase.locations, phase.location)
        batch = {BATCH_VAR} if phase.serial is not None else set()
        names = set(self.base) | facts | set(phase.vars) | batch
        self.var_values(phase.vars, "vars", where)
        self.conditions(phase, ("when",), where, names - {BATCH_VAR})
        for key in ("batch_over", "serial", "pause_before", "pause_after"):
            self.values(getattr(phase, key), key, where, names - {BATCH_VAR})
        self.checks(phase.checkpoint.preflight, names)
        scope = _Scope(TaskScope(self.playbook, self.play, self.inventory, phase), frozenset(batch))
        facts = self.tasks(phase.tasks, names, set(facts), scope)
        self.checks(phase.checkpoint.checks, names | facts)
        return facts

    def checks(self, checks: Iterable[CheckSpec], names: set[str]) -> None:
        for check in checks:
            where = _Where(check.locations, check.location)
            self.conditions(check, ("when",), where, names)
            self.values(check.args, "args", where, names)

    def tasks(self, tasks: Iterable[TaskSpec], names: set[str], facts: set[str], scope: _Scope) -> set[str]:
        for task in tasks:
            facts = self.task(task, names, facts, scope)
        return facts

    def task(self, task: TaskSpec, outer: set[str], facts: set[str], scope: _Scope) -> set[str]:
        where = _Where(task.locations, task.location)
        names = outer | facts | set(task.vars) | set(task.role_params) | self._role_names(task)
        self.var_values(task.vars, "vars", where)
        if task.is_block:
            self.conditions(task, ("when",), where, names)
            inner = scope.inside(task)
            facts = self.tasks(task.block, names, facts, inner)
            facts = self.tasks(task.rescue, names | RESCUE_VARS, facts, inner.with_runtime(RESCUE_VARS))
            return self.tasks(task.always, names, facts, inner)
        self.values(task.loop, "loop", where, names)
        looped = names | ({task.loop_var} if task.loop is not None else set())
        self.conditions(task, ("when",), where, looped)
        self.values(task.args, "args", where, looped)
        runtime = scope.runtime | facts | ({task.loop_var} if task.loop is not None else set())
        self.static(task, scope.task, runtime, looped)
        if isinstance(task.ignore_errors, str):
            self.template(task.ignore_errors, where.at("ignore_errors"), looped, condition=True)
        registered = looped | ({task.register_var} if task.register_var else set())
        self.conditions(task, ("until", "changed_when", "failed_when"), where, registered)
        return facts | _produces(task)

    # -- arguments rendered with the values known before the run ------------------------------

    def static(self, task: TaskSpec, scope: TaskScope, runtime: frozenset[str], names: set[str]) -> None:
        """On each cluster, unless the task is known not to run there: validate its templated arguments
        whose variables all have values before the run, and parse the template files it names."""
        module = task.module or ""
        files = [a for a in self.catalog.template_args.get(module, ()) if a in task.args]
        templated = contains_template(task.args)
        if not templated and not files:
            return
        model = self.catalog.actions.get(module)
        checked: set[tuple[str, str]] = set()
        for cluster in self.clusters:
            values = static_values(scope, cluster, task, self.extra_vars, runtime)
            if statically_false(scope.conditions(task), values):
                continue
            if templated and model is not None:
                self.errors.extend(check_static_args(task, model, self.catalog, values))
            found = {(arg, template_file_name(task, arg, values)) for arg in files}
            for arg, name in sorted((a, n) for a, n in found - checked if n is not None):
                checked.add((arg, name))
                self.template_file(task, arg, name, names)

    def template_file(self, task: TaskSpec, arg: str, name: str, names: set[str]) -> None:
        """Parse one template file the task names; report its syntax errors and undefined names."""
        template, error = load_template_file(task, arg, name, task.base_dir or self.playbook.path.parent)
        self.errors.extend([error] if error is not None else [])
        if template is not None:
            self._file_names(template, names)

    def _file_names(self, template: TemplateFile, names: set[str]) -> None:
        ast = ENV.parse(template.source)
        label = f"template {template.path.name}"
        for name in _unknown_names(ast, names):
            where = within(template.start, template.source, name_position(template.source, name))
            self.errors.append(self._undefined_error(name, template.source, where, names, label=label))


def _produces(task: TaskSpec) -> set[str]:
    """Names a task defines for later tasks: its ``register`` and ``set_fact`` keys."""
    names = {task.register_var} if task.register_var else set()
    if task.module == SET_FACT:
        names |= {str(k) for k in task.args}
    return names


def _playbook_tags(playbook: PlaybookSpec) -> set[str]:
    tags: set[str] = set()
    for play in playbook.plays:
        for phase in play.phases:
            tags |= set(phase.tags)
            tags |= {t for task in iter_tasks(phase.tasks) for t in task.tags}
            tags |= {t for c in (*phase.checkpoint.checks, *phase.checkpoint.preflight) for t in c.tags}
    return tags


def check_tags(playbook: PlaybookSpec, selected: Iterable[str], option: str) -> list[UserInputError]:
    """``--tags``/``--skip-tags`` values that no phase, task or check carries."""
    known = _playbook_tags(playbook)
    errors = []
    for tag in selected:
        if tag not in known and tag not in SPECIAL_TAGS:
            errors.append(UserInputError(
                f"{option} {tag!r}: no phase, task or check in {playbook.path} has this tag", None,
                hint=did_you_mean(tag, known, fallback=f"tags in the playbook: {', '.join(sorted(known)) or 'none'}"),
            ))  # fmt: skip
    return errors


def _unknown_modules(playbook: PlaybookSpec, catalog: ModuleCatalog) -> list[UserInputError]:
    """Modules the catalog does not know (the loader refuses these; a playbook built in code may not)."""
    errors: list[UserInputError] = []
    for play in playbook.plays:
        for phase in play.phases:
            used = [(ModuleKind.ACTION, t.module, t.location) for t in iter_tasks(phase.tasks) if t.module]
            checks = (*phase.checkpoint.preflight, *phase.checkpoint.checks)
            used += [(ModuleKind.CHECK, c.module, c.location) for c in checks]
            for kind, module, location in used:
                try:
                    catalog.args_model(kind, module, location)
                except UserInputError as exc:
                    errors.append(exc)
    return errors


def check_playbook(
    playbook: PlaybookSpec,
    inventory: InventorySpec,
    *,
    catalog: ModuleCatalog,
    extra_vars: Mapping[str, Any] | None,
    tags: Sequence[str] = (),
    skip_tags: Sequence[str] = (),
    limit: str | None = None,
) -> list[UserInputError]:
    """Every mistake detectable before a run, in playbook order (empty when the playbook is sound)."""
    errors: list[UserInputError] = _unknown_modules(playbook, catalog)
    for play in playbook.plays:
        try:
            clusters = select_clusters(
                play.hosts, inventory, location=play.locations.get("hosts", play.location), limit=limit
            )
        except UserInputError as exc:
            errors.append(exc)
            continue
        errors.extend(_PlayCheck(playbook, play, inventory, clusters, dict(extra_vars or {}), catalog).run())
    errors.extend(check_tags(playbook, tags, "--tags"))
    errors.extend(check_tags(playbook, skip_tags, "--skip-tags"))
    return unique_errors(errors)

