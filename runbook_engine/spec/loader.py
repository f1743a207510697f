"""Loading playbooks into the validated model, with every mistake reported at file:line:column.

``load_playbook`` reads plays → phases → roles/tasks/blocks/checkpoints, expands roles (their
dependencies first) and ``include_tasks``/``import_tasks`` files, refuses unknown keywords and
modules with a did-you-mean hint, and type-checks module arguments that contain no template
(templated ones are checked after rendering, by ``catalog.validate_args``). All errors found in one
pass are raised together as ``UserInputErrors``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from runbook_engine.errors import Location, UserInputError, UserInputErrors
from runbook_engine.spec import fields
from runbook_engine.spec.catalog import ModuleCatalog, ModuleKind, arg_names, args_locations, pydantic_errors
from runbook_engine.spec.filters import plain, plain_mapping
from runbook_engine.spec.hints import did_you_mean, similar, unique_errors
from runbook_engine.spec.model import (
    CheckpointSpec,
    CheckSpec,
    Condition,
    NoData,
    OnFailure,
    OnFlag,
    PhaseSpec,
    PlaybookSpec,
    PlaySpec,
    TaskSpec,
)
from runbook_engine.spec.roles import RoleLibrary, RoleRef, parse_role_entry, role_search_path
from runbook_engine.spec.templating import contains_template
from runbook_engine.spec.yamlpos import LocatedDict, LocatedList, load_yaml_file

T = TypeVar("T")

PLAY_KEYS = frozenset({"name", "hosts", "vars", "vars_files", "phases", "roles", "tasks"})
PHASE_KEYS = frozenset({
    "name", "roles", "tasks", "checkpoint", "pause_before", "pause_after", "on_failure", "serial",
    "batch_over", "max_fail_percentage", "when", "tags", "accept", "vars",
})  # fmt: skip
TASK_KEYWORDS = frozenset({
    "name", "when", "loop", "loop_control", "register", "until", "retries", "delay", "tags",
    "ignore_errors", "changed_when", "failed_when", "vars", "block", "rescue", "always",
})  # fmt: skip
INCLUDE_KEYS = frozenset({"include_tasks", "import_tasks"})
INCLUDE_KEYWORDS = frozenset({"name", "when", "tags", "vars"})
CHECKPOINT_KEYS = frozenset({"checks", "preflight", "on_failure", "on_flag", "no_data"})
CHECK_KEYWORDS = frozenset({"name", "when", "tags"})
LOOP_CONTROL_KEYS = frozenset({"loop_var"})


def _serial_ok(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value > 0
    if isinstance(value, str) and value.endswith("%") and value[:-1].strip().isdigit():
        return 0 < int(value[:-1]) <= 100
    return isinstance(value, str) and contains_template(value)


@dataclass(frozen=True)
class _TaskScope:
    """Where tasks being read come from: their role, base directory and include chain."""

    base_dir: Path
    tasks_dir: Path
    role: str | None = None
    role_params: Mapping[str, Any] | None = None
    includes: tuple[Path, ...] = ()


class _Errors:
    """Collects user-input errors so one pass reports all of them."""

    def __init__(self) -> None:
        self.found: list[UserInputError] = []

    def attempt(self, work: Callable[[], T]) -> T | None:
        try:
            return work()
        except UserInputErrors as exc:
            self.found.extend(exc.errors)
        except UserInputError as exc:
            self.found.append(exc)
        return None

    def raise_any(self) -> None:
        found = unique_errors(self.found)
        if len(found) == 1:
            raise found[0]
        if found:
            raise UserInputErrors(found)


def _and(first: Condition, second: Condition) -> Condition:
    """Both conditions (a list means all)."""
    parts = [c for c in (first, second) if c is not None]
    if len(parts) < 2:
        return parts[0] if parts else None
    flat: list[str | bool] = []
    for part in parts:
        flat.extend(part if isinstance(part, list) else [part])
    return flat


class PlaybookLoader:
    """Reads one playbook file; use ``load_playbook``."""

    def __init__(self, path: Path, catalog: ModuleCatalog) -> None:
        self.path = path
        self.dir = path.parent
        self.catalog = catalog
        self.roles = RoleLibrary(role_search_path(self.dir))
        self.errors = _Errors()

    def load(self) -> PlaybookSpec:
        data = load_yaml_file(self.path, what="playbook")
        plays = fields.sequence(data, Location(str(self.path), 1, 1), "a playbook (a list of plays)")
        if not plays:
            raise UserInputError("the playbook has no plays", plays.location, hint="add - hosts: <cluster or group>")
        specs = [self.errors.attempt(partial(self._play, p, plays.item_loc(i))) for i, p in enumerate(plays)]
        self.errors.raise_any()
        return PlaybookSpec(path=self.path, plays=tuple(s for s in specs if s), roles=self.roles.specs())

    # -- plays and phases ------------------------------------------------------------------

    def _play(self, value: Any, location: Location) -> PlaySpec:
        play = fields.mapping(value, location, "a play")
        fields.check_keys(play, PLAY_KEYS, "play")
        hosts = self._hosts(play)
        play_vars = {**fields.get_vars(play), **self._vars_files(play)}
        return PlaySpec(
            name=fields.get_str(play, "name") or hosts,
            hosts=hosts,
            vars=play_vars,
            phases=self._play_phases(play, hosts),
            location=play.location,
            locations=fields.locations_of(play, skip=("phases", "roles", "tasks")),
        )

    def _hosts(self, play: LocatedDict) -> str:
        if "hosts" not in play:
            raise UserInputError("a play needs 'hosts'", play.location, hint="e.g. hosts: prod (a cluster or group)")
        value = play["hosts"]
        if isinstance(value, list) and value and all(isinstance(h, str) for h in value):
            return ",".join(value)
        hosts = fields.get_str(play, "hosts")
        if not hosts:
            raise fields.wrong(play, "hosts", "a cluster or group pattern")
        return hosts

    def _vars_files(self, play: LocatedDict) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        if "vars_files" not in play:
            return merged
        files = play["vars_files"]
        names = [files] if isinstance(files, str) else files
        if not isinstance(names, LocatedList) and not isinstance(files, str):
            raise fields.wrong(play, "vars_files", "a file name or a list of file names")
        for index, name in enumerate(names):
            where = names.item_loc(index) if isinstance(names, LocatedList) else play.value_loc("vars_files")
            if not isinstance(name, str):
                raise UserInputError(f"vars_files entries must be file names, got {name!r}", where)
            data = load_yaml_file(self.dir / name, what="vars file", referenced_at=where)
            if data is not None:
                merged.update(plain(fields.mapping(data, Location(str(self.dir / name), 1, 1), f"vars file {name}")))
        return merged

    def _play_phases(self, play: LocatedDict, hosts: str) -> tuple[PhaseSpec, ...]:
        if "phases" in play:
            for key in ("roles", "tasks"):
                if key in play:
                    raise UserInputError(
                        f"a play with 'phases' cannot also have '{key}'",
                        play.key_loc(key),
                        hint=f"move the {key} into a phase",
                    )
            return self._phases(play)
        if "roles" not in play and "tasks" not in play:
            raise UserInputError("a play needs 'phases' (or 'roles'/'tasks')", play.location, hint="add phases: [...]")
        body = LocatedDict(play.location)
        for key in ("roles", "tasks"):
            if key in play:
                body[key] = play[key]
                body.key_locations[key] = play.key_loc(key)
                body.value_locations[key] = play.value_loc(key)
        implicit = self.errors.attempt(partial(self._phase_body, body, fields.get_str(play, "name") or hosts))
        return (implicit,) if implicit else ()

    def _phases(self, play: LocatedDict) -> tuple[PhaseSpec, ...]:
        phases = fields.sequence(play["phases"], play.value_loc("phases"), "phases")
        out: list[PhaseSpec] = []
        seen: dict[str, Location] = {}
        for index, value in enumerate(phases):
            phase = self.errors.attempt(partial(self._phase, value, phases.item_loc(index)))
            if phase is None:
                continue
            if phase.name in seen:
                self.errors.found.append(UserInputError(
                    f"duplicate phase name {phase.name!r} (first at line {seen[phase.name].line})",
                    phase.location,
                    hint="phase names must be unique: resume and rollback refer to phases by name",
                ))  # fmt: skip
            seen.setdefault(phase.name, phase.location or phases.item_loc(index))
            out.append(phase)
        return tuple(out)

    def _phase(self, value: Any, location: Location) -> PhaseSpec:
        phase = fields.mapping(value, location, "a phase")
        fields.check_keys(phase, PHASE_KEYS, "phase")
        name = fields.get_str(phase, "name")
        if not name:
            raise UserInputError("a phase needs a name", phase.location, hint="add name: <phase name>")
        return self._phase_body(phase, name)

    def _phase_body(self, phase: LocatedDict, name: str) -> PhaseSpec:
        serial = self._serial(phase)
        return PhaseSpec(
            name=name,
            tasks=self._phase_tasks(phase),
            checkpoint=self._checkpoint(phase),
            pause_before=fields.get_bool_or_str(phase, "pause_before"),
            pause_after=fields.get_bool_or_str(phase, "pause_after"),
            on_failure=fields.get_enum(phase, "on_failure", OnFailure),
            serial=serial,
            batch_over=plain(phase.get("batch_over")),
            max_fail_percentage=fields.get_number(phase, "max_fail_percentage", None, maximum=100),
            when=fields.get_condition(phase, "when"),
            tags=fields.get_tags(phase),
            accept=fields.get_str_list(phase, "accept"),
            vars=fields.get_vars(phase),
            location=phase.location,
            locations=fields.locations_of(phase, skip=("tasks", "roles", "checkpoint")),
        )

    def _serial(self, phase: LocatedDict) -> int | str | None:
        if "serial" not in phase:
            if "batch_over" in phase:
                raise UserInputError(
                    "batch_over needs serial (the batch size)", phase.key_loc("batch_over"), hint="add serial: 10"
                )
            return None
        value: int | str = phase["serial"]
        if not _serial_ok(value):
            raise fields.wrong(phase, "serial", "a batch size > 0 or a percentage like '25%'", hint="e.g. serial: 5")
        if "batch_over" not in phase:
            raise UserInputError(
                "serial needs batch_over (the namespaces or workloads to batch)",
                phase.key_loc("serial"),
                hint="add batch_over: \"{{ namespaces }}\"",
            )
        return value

    def _phase_tasks(self, phase: LocatedDict) -> tuple[TaskSpec, ...]:
        scope = _TaskScope(base_dir=self.dir, tasks_dir=self.dir)
        tasks: list[TaskSpec] = []
        if "roles" in phase:
            roles = fields.sequence(phase["roles"], phase.value_loc("roles"), "roles")
            for index, entry in enumerate(roles):
                ref = self.errors.attempt(partial(parse_role_entry, entry, roles.item_loc(index)))
                expanded = self.errors.attempt(partial(self._role_tasks, ref, ())) if ref else None
                tasks.extend(expanded or ())
        if "tasks" in phase:
            tasks.extend(self._task_list(phase["tasks"], phase.value_loc("tasks"), scope))
        return tuple(tasks)

    # -- roles -----------------------------------------------------------------------------

    def _role_tasks(self, ref: RoleRef, chain: tuple[str, ...]) -> list[TaskSpec]:
        if ref.name in chain:
            cycle = " -> ".join([*chain[chain.index(ref.name) :], ref.name])
            raise UserInputError(
                f"role dependency cycle: {cycle}", ref.location, hint="remove one of these dependencies"
            )
        role = self.roles.get(ref)
        tasks: list[TaskSpec] = []
        for dependency in role.dependencies:
            tasks.extend(self._role_tasks(dependency, (*chain, ref.name)))
        if role.tasks is not None:
            scope = _TaskScope(role.spec.path, role.tasks_dir, ref.name, ref.params)
            tasks.extend(self._task_list(role.tasks, role.tasks.location, scope))
        return [self._with_role_entry(t, ref) for t in tasks]

    @staticmethod
    def _with_role_entry(task: TaskSpec, ref: RoleRef) -> TaskSpec:
        if ref.when is None and not ref.tags:
            return task
        return task.model_copy(update={"when": _and(ref.when, task.when), "tags": (*ref.tags, *task.tags)})

    # -- tasks -----------------------------------------------------------------------------

    def _task_list(self, value: Any, location: Location, scope: _TaskScope) -> list[TaskSpec]:
        if value is None:
            return []
        items = fields.sequence(value, location, "tasks")
        out = [self.errors.attempt(partial(self._task, v, items.item_loc(i), scope)) for i, v in enumerate(items)]
        return [t for t in out if t is not None]

    def _task(self, value: Any, location: Location, scope: _TaskScope) -> TaskSpec:
        task = fields.mapping(value, location, "a task")
        include = [k for k in task if k in INCLUDE_KEYS]
        if include:
            return self._include(task, include[0], scope)
        module = self._task_module(task)
        if module is None:
            return self._block(task, scope)
        return self._module_task(task, module, scope)

    def _task_module(self, task: LocatedDict) -> str | None:
        """The task's one module key (``None`` for a block); unknown or extra keys are errors."""
        modules = [k for k in task if k not in TASK_KEYWORDS]
        for key in modules:
            if key not in self.catalog.actions:
                raise self._unknown_task_key(task, key)
        if len(modules) > 1:
            raise UserInputError(
                f"a task can call one module, this one has {len(modules)}: {', '.join(modules)}",
                task.key_loc(modules[1]),
                hint="split it into one task per module",
            )
        if "block" in task:
            if modules:
                raise UserInputError(
                    f"a task cannot have both 'block' and module {modules[0]!r}", task.key_loc(modules[0]),
                    hint="put the module call inside the block as its own task",
                )  # fmt: skip
            return None
        for key in ("rescue", "always"):
            if key in task:
                raise UserInputError(f"'{key}' needs a 'block'", task.key_loc(key), hint="add block: [...] before it")
        if not modules:
            known = ", ".join(sorted(self.catalog.actions))
            raise UserInputError("the task calls no module", task.location, hint=f"add one of: {known}")
        return str(modules[0])

    def _unknown_task_key(self, task: LocatedDict, key: Any) -> UserInputError:
        name = str(key)
        keyword = similar(name, TASK_KEYWORDS | INCLUDE_KEYS, limit=1)
        module = similar(name, self.catalog.actions, limit=1)
        if keyword and not module:
            hint = f"did you mean {keyword[0]!r}?"
            return UserInputError(f"unknown task keyword {name!r}", task.key_loc(key), hint=hint)
        return UserInputError(
            f"unknown module {name!r}",
            task.key_loc(key),
            hint=did_you_mean(name, [*self.catalog.actions, *keyword], fallback=self._module_list()),
        )

    def _module_list(self) -> str:
        return "available modules: " + ", ".join(sorted(self.catalog.actions))

    def _common(self, task: LocatedDict, scope: _TaskScope) -> dict[str, Any]:
        """Keywords every task and block shares."""
        return {
            "when": fields.get_condition(task, "when"),
            "tags": fields.get_tags(task),
            "vars": fields.get_vars(task),
            "ignore_errors": fields.get_bool_or_str(task, "ignore_errors"),
            "role": scope.role,
            "role_params": dict(scope.role_params or {}),
            "base_dir": scope.base_dir,
            "location": task.location,
        }

    def _module_task(self, task: LocatedDict, module: str, scope: _TaskScope) -> TaskSpec:
        args = self._args(task, module)
        locations = fields.locations_of(task, rename={module: "args"})
        self._check_args(ModuleKind.ACTION, module, args, task.value_loc(module), locations)
        return TaskSpec(
            name=fields.get_str(task, "name") or module,
            module=module,
            args=args,
            loop=plain(task.get("loop")),
            loop_var=self._loop_var(task),
            register_var=fields.get_identifier(task, "register"),
            until=fields.get_condition(task, "until"),
            retries=fields.get_int(task, "retries", 3),
            delay=fields.get_number(task, "delay", 5.0) or 0.0,
            changed_when=fields.get_condition(task, "changed_when"),
            failed_when=fields.get_condition(task, "failed_when"),
            locations=locations,
            **self._common(task, scope),
        )

    def _block(self, task: LocatedDict, scope: _TaskScope) -> TaskSpec:
        for key in ("loop", "register", "until", "changed_when", "failed_when", "loop_control"):
            if key in task:
                raise UserInputError(
                    f"'{key}' does not apply to a block", task.key_loc(key), hint="put it on a task inside the block"
                )
        parts = {
            k: tuple(self._task_list(task.get(k), task.value_loc(k), scope)) for k in ("block", "rescue", "always")
        }
        return TaskSpec(
            name=fields.get_str(task, "name") or "block",
            block=parts["block"],
            rescue=parts["rescue"],
            always=parts["always"],
            locations=fields.locations_of(task, skip=("block", "rescue", "always")),
            **self._common(task, scope),
        )

    def _include(self, task: LocatedDict, key: str, scope: _TaskScope) -> TaskSpec:
        fields.check_keys(task, INCLUDE_KEYWORDS | {key}, key)
        name = fields.get_str(task, key)
        if not name or contains_template(name):
            raise fields.wrong(task, key, "a task file name (without templates)")
        path = (scope.tasks_dir / name).resolve()
        where = task.value_loc(key)
        if path in scope.includes:
            chain = " -> ".join(p.name for p in (*scope.includes, path))
            raise UserInputError(f"{key} cycle: {chain}", where, hint="a task file cannot include itself")
        data = load_yaml_file(path, what="task file", referenced_at=where)
        inner = replace(scope, tasks_dir=path.parent, includes=(*scope.includes, path))
        return TaskSpec(
            name=fields.get_str(task, "name") or f"{key} {name}",
            block=tuple(self._task_list(data, Location(str(path), 1, 1), inner)),
            locations=fields.locations_of(task, skip=(key,)),
            **self._common(task, scope),
        )

    def _loop_var(self, task: LocatedDict) -> str:
        if "loop_control" not in task:
            return "item"
        control = fields.mapping(task["loop_control"], task.value_loc("loop_control"), "loop_control")
        fields.check_keys(control, LOOP_CONTROL_KEYS, "loop_control")
        return fields.get_identifier(control, "loop_var") or "item"

    @staticmethod
    def _args(owner: LocatedDict, module: str) -> dict[str, Any]:
        value = owner[module]
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise fields.wrong(owner, module, "a mapping of arguments", hint=f"e.g. {module}: {{name: value}}")
        return plain_mapping(value)

    def _check_args(
        self, kind: ModuleKind, module: str, args: dict[str, Any], location: Location, locations: dict[str, Location]
    ) -> None:
        """Type-check the arguments that contain no template (the rest are checked after rendering)."""
        model = self.catalog.args_model(kind, module, location)
        try:
            model.model_validate(args)
        except ValidationError as exc:
            conditions = self.catalog.conditions.get(module, ()) if kind is ModuleKind.ACTION else ()
            kept = [
                e
                for e in exc.errors()
                if not _templated(tuple(e["loc"]), args) and not (e["loc"] and e["loc"][0] in conditions)
            ]
            if not kept:
                return
            errors = pydantic_errors(
                kept, module=module, location=location, locations=args_locations(locations),
                known_args=arg_names(model),
            )  # fmt: skip
            raise (errors[0] if len(errors) == 1 else UserInputErrors(errors)) from None

    # -- checkpoints -----------------------------------------------------------------------

    def _checkpoint(self, phase: LocatedDict) -> CheckpointSpec:
        if phase.get("checkpoint") is None:
            return CheckpointSpec()
        cp = fields.mapping(phase["checkpoint"], phase.value_loc("checkpoint"), "checkpoint")
        fields.check_keys(cp, CHECKPOINT_KEYS, "checkpoint")
        return CheckpointSpec(
            checks=self._checks(cp, "checks"),
            preflight=self._checks(cp, "preflight"),
            on_failure=fields.get_enum(cp, "on_failure", OnFailure) or OnFailure.PAUSE,
            on_flag=fields.get_enum(cp, "on_flag", OnFlag) or OnFlag.CONTINUE,
            no_data=fields.get_enum(cp, "no_data", NoData) or NoData.PAUSE,
            location=cp.location,
        )

    def _checks(self, cp: LocatedDict, key: str) -> tuple[CheckSpec, ...]:
        if cp.get(key) is None:
            return ()
        items = fields.sequence(cp[key], cp.value_loc(key), key)
        out = [self.errors.attempt(partial(self._check, v, items.item_loc(i))) for i, v in enumerate(items)]
        return tuple(c for c in out if c is not None)

    def _check(self, value: Any, location: Location) -> CheckSpec:
        entry = fields.mapping(value, location, "a check")
        modules = [k for k in entry if k not in CHECK_KEYWORDS]
        for key in modules:
            if key not in self.catalog.checks:
                raise UserInputError(
                    f"unknown check {key!r}", entry.key_loc(key),
                    hint=did_you_mean(str(key), [*self.catalog.checks, *CHECK_KEYWORDS],
                                      fallback="available checks: " + ", ".join(sorted(self.catalog.checks))),
                )  # fmt: skip
        if len(modules) != 1:
            where = entry.key_loc(modules[1]) if modules else entry.location
            raise UserInputError(
                f"a check entry names exactly one check module, found {len(modules)}", where,
                hint="write one '- name: ...' entry per check",
            )  # fmt: skip
        module = str(modules[0])
        args = self._args(entry, module)
        locations = fields.locations_of(entry, rename={module: "args"})
        self._check_args(ModuleKind.CHECK, module, args, entry.value_loc(module), locations)
        return CheckSpec(
            name=fields.get_str(entry, "name") or module,
            module=module,
            args=args,
            when=fields.get_condition(entry, "when"),
            tags=fields.get_tags(entry),
            location=entry.location,
            locations=locations,
        )


def _templated(path: tuple[int | str, ...], args: Any) -> bool:
    """Whether a pydantic error at ``path`` may be caused by a template (checked after rendering)."""
    if not path:
        return contains_template(args)
    value: Any = args
    for part in path:
        if isinstance(value, str):
            return contains_template(value)
        found = (isinstance(value, Mapping) and part in value) or (
            isinstance(value, list) and isinstance(part, int) and part < len(value)
        )
        if not found:
            return False
        value = value[part]
    return contains_template(value)


def load_playbook(path: Path, *, catalog: ModuleCatalog) -> PlaybookSpec:
    """Load and validate a playbook, its roles and task files; raise ``UserInputError(s)`` on mistakes."""
    return PlaybookLoader(Path(path), catalog).load()


def iter_tasks(tasks: Iterable[TaskSpec]) -> Iterable[TaskSpec]:
    """Every task, depth first, including those inside blocks, rescue and always."""
    for task in tasks:
        yield task
        yield from iter_tasks((*task.block, *task.rescue, *task.always))
