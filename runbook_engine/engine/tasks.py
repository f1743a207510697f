"""Running a phase's tasks: conditions, loops, retries, blocks, registered results, write-ahead changes.

``TaskRunner.run_tasks`` walks a task list with Ansible's semantics: ``when`` (per loop item),
``loop``/``loop_var``, ``register``, ``until``/``retries``/``delay`` (tenacity), ``tags`` with
``--tags``/``--skip-tags`` (``always``/``never`` as in Ansible), ``ignore_errors``,
``changed_when``, ``failed_when`` and ``block``/``rescue``/``always``.

Every finished task (each loop item separately) is recorded in the journal under a key naming its
phase, batch and position, with its status, result and facts. A resumed phase *replays* recorded
tasks (their registered results and facts come back, nothing is executed) and finishes an
interrupted one from its journaled changes, so no change is applied twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tenacity import Retrying, retry_if_result, stop_after_attempt, wait_fixed

from runbook_engine.actions.base import ACTIONS, Action, ActionContext, Planned, Settled
from runbook_engine.engine.events import EventKind, TaskStatus
from runbook_engine.engine.executor import ChangeExecutor
from runbook_engine.engine.journal import ChangeOrigin, ChangeState, RunStore, TaskRecord
from runbook_engine.errors import RunbookError, UserInputError
from runbook_engine.kube.caching import CachingCluster
from runbook_engine.kube.change import Change
from runbook_engine.kube.cluster import Cluster
from runbook_engine.spec.catalog import args_locations, validate_args
from runbook_engine.spec.model import TaskSpec
from runbook_engine.spec.templating import Templar
from runbook_engine.spec.vars import Scope, merge_scopes

Emit = Callable[[EventKind, str, str, dict[str, Any]], None]  # (kind, message, task name, data)


class TaskFailure(Exception):
    """A task failed and nothing recovered it; carries the journal keys of the failed tasks."""

    def __init__(self, task: str, message: str, keys: Sequence[str]) -> None:
        super().__init__(f"task {task!r} failed: {message}")
        self.task = task
        self.keys = tuple(keys)


class GateReached(Exception):
    """A ``pause`` task asked for an operator: the run pauses here (the gate task is recorded done)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def tags_selected(tags: frozenset[str], only: frozenset[str], skip: frozenset[str]) -> bool:
    """Ansible's tag selection: ``always`` runs unless skipped, ``never`` only when asked for."""
    if tags & skip:
        return False
    if "always" in tags:
        return True
    if "never" in tags and not (tags & only):
        return False
    return not only or "all" in only or bool(tags & only)


@dataclass
class VarLayers:
    """The variable scopes of one phase; ``facts`` grows as tasks ``register`` and ``set_fact``."""

    layers: dict[Scope, list[Mapping[str, Any]]]
    facts: dict[str, Any] = field(default_factory=dict)

    def compose(self, extra: Mapping[Scope, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
        scopes: dict[Scope, list[Mapping[str, Any]]] = {k: list(v) for k, v in self.layers.items()}
        for scope, values in extra.items():
            scopes.setdefault(scope, []).extend(values)
        scopes.setdefault(Scope.FACTS, []).append(self.facts)
        return merge_scopes(scopes)


@dataclass(frozen=True)
class TaskOptions:
    check: bool = False
    diff: bool = False
    tags: frozenset[str] = frozenset()
    skip_tags: frozenset[str] = frozenset()
    simulate: bool = False  # write, but never wait or stop at a gate (a disposable snapshot cluster)


@dataclass
class Outcome:
    """One task execution (one loop item)."""

    status: TaskStatus
    result: dict[str, Any]
    facts: dict[str, Any] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)
    gate: str | None = None
    replayed: bool = False  # recorded by an earlier process of the run: its effect restored, not redone


@dataclass(frozen=True)
class Inherited:
    """What a task inherits from enclosing blocks: tags and block ``vars``."""

    tags: frozenset[str] = frozenset()
    block_vars: tuple[Mapping[str, Any], ...] = ()


@dataclass
class TaskRunner:
    """Runs one batch of one phase's tasks."""

    cluster: Cluster
    store: RunStore
    run_id: str
    origin: ChangeOrigin  # phase and batch; ``task_key``/``task`` are filled per task
    scope: VarLayers
    options: TaskOptions
    emit: Emit
    executor: ChangeExecutor
    base_dir: Path
    records: dict[str, TaskRecord] = field(default_factory=dict)
    role_layers: Callable[[TaskSpec], Mapping[Scope, Sequence[Mapping[str, Any]]]] | None = None
    counts: dict[TaskStatus, int] = field(default_factory=dict)
    planned_here: set[str] = field(default_factory=set)  # task keys this process planned (retries plan anew)

    # task lists and blocks -----------------------------------------------------------------
    def run_tasks(self, tasks: Sequence[TaskSpec], prefix: str, inherited: Inherited) -> None:
        for index, task in enumerate(tasks):
            self.run_task(task, f"{prefix}{index}", inherited)

    def run_task(self, task: TaskSpec, key: str, inherited: Inherited) -> None:
        tags = inherited.tags | frozenset(task.tags)
        if not tags_selected(tags, self.options.tags, self.options.skip_tags):
            return
        if task.is_block:
            self._run_block(task, key, Inherited(tags, (*inherited.block_vars, task.vars)))
        else:
            self._run_module(task, key, Inherited(tags, inherited.block_vars))

    def _run_block(self, task: TaskSpec, key: str, inherited: Inherited) -> None:
        variables = self._variables(task, inherited, {})
        if not Templar(variables).evaluate(task.when, location=_where(task, "when")):
            self._count(TaskStatus.SKIPPED)
            return
        try:
            self.run_tasks(task.block, f"{key}.b", inherited)
        except TaskFailure as failure:
            if not task.rescue:
                self.run_tasks(task.always, f"{key}.a", inherited)
                raise
            self._rescue(task, key, inherited, failure)
        self.run_tasks(task.always, f"{key}.a", inherited)

    def _rescue(self, task: TaskSpec, key: str, inherited: Inherited, failure: TaskFailure) -> None:
        self.scope.facts["ansible_failed_task"] = {"name": failure.task}
        try:
            self.run_tasks(task.rescue, f"{key}.r", inherited)
        except TaskFailure:
            self.run_tasks(task.always, f"{key}.a", inherited)
            raise
        self._count(TaskStatus.RESCUED)

    # module tasks ----------------------------------------------------------------------------
    def _run_module(self, task: TaskSpec, key: str, inherited: Inherited) -> None:
        self.emit(EventKind.TASK_START, task.name, task.name, {"module": task.module or ""})
        if task.loop is None:
            outcomes = [self._item(task, key, self._variables(task, inherited, {}))]
            result = outcomes[0].result
        else:
            items = self._loop_items(task, self._variables(task, inherited, {}))
            outcomes = [self._item(task, f"{key}[{n}]", self._variables(task, inherited, {task.loop_var: item}))
                        for n, item in enumerate(items)]
            result = _loop_result(outcomes)
        if task.register_var:
            self.scope.facts[task.register_var] = result
        self._finish(task, key, outcomes)

    def _finish(self, task: TaskSpec, key: str, outcomes: Sequence[Outcome]) -> None:
        status = _overall(outcomes)
        replayed = all(o.replayed for o in outcomes)
        if not replayed:
            self._count(status)
        changes = [str(c.ref) for o in outcomes for c in o.changes]
        msg = "; ".join(str(o.result.get("msg") or "") for o in outcomes if o.result.get("msg"))
        self.emit(EventKind.TASK_RESULT, msg, task.name,
                  {"status": status.value, "changes": changes, "replayed": replayed})
        gate = next((o.gate for o in outcomes if o.gate), None)
        if status is TaskStatus.FAILED:
            failed = [key] if task.loop is None else [
                f"{key}[{n}]" for n, o in enumerate(outcomes) if o.status is TaskStatus.FAILED]
            raise TaskFailure(task.name, msg or "failed", failed)
        if gate is not None and not (self.options.check or self.options.simulate):
            raise GateReached(gate)

    def _item(self, task: TaskSpec, key: str, variables: dict[str, Any]) -> Outcome:
        recorded = self.records.get(key)
        if recorded is not None:
            self.scope.facts.update(recorded.facts)
            return Outcome(recorded.status, dict(recorded.result), dict(recorded.facts), replayed=True)
        templar = Templar(variables)
        if not templar.evaluate(task.when, location=_where(task, "when")):
            outcome = Outcome(TaskStatus.SKIPPED, {"skipped": True, "changed": False, "failed": False})
        else:
            outcome = self._attempts(task, key, variables)
        self.scope.facts.update(outcome.facts)
        if not self.options.check:
            result = {**outcome.result, "gate": outcome.gate} if outcome.gate else outcome.result
            self.store.record_task(self.run_id, TaskRecord(key, outcome.status, result, outcome.facts))
        return outcome

    def _attempts(self, task: TaskSpec, key: str, variables: dict[str, Any]) -> Outcome:
        """The task, re-run every ``delay`` seconds until ``until`` holds or ``retries`` run out."""
        if task.until is None:
            return self._judged(task, key, variables)
        tried: list[Outcome] = []

        def attempt() -> Outcome:
            outcome = self._judged(task, key, variables)
            tried.append(outcome)
            outcome.result["attempts"] = len(tried)
            return outcome

        def unmet(outcome: Outcome) -> bool:
            return not self._holds(task, task.until, variables, outcome, "until")

        last: Outcome = Retrying(stop=stop_after_attempt(task.retries + 1), wait=wait_fixed(task.delay),
                                 retry=retry_if_result(unmet), retry_error_callback=lambda _: tried[-1])(attempt)
        met = not unmet(last)
        last.changes = [c for o in tried for c in o.changes]
        if last.changes and last.status is TaskStatus.OK:
            last.status, last.result["changed"] = TaskStatus.CHANGED, True
        if not met:
            last.result.update(failed=True, msg=f"condition `until` not met after {len(tried)} attempts")
            last.status = TaskStatus.IGNORED if self._ignored(task, variables) else TaskStatus.FAILED
        return last

    def _judged(self, task: TaskSpec, key: str, variables: dict[str, Any]) -> Outcome:
        """One attempt, with ``changed_when``/``failed_when``/``ignore_errors`` applied."""
        outcome = self._attempt(task, key, variables)
        result = outcome.result
        if task.changed_when is not None:
            result["changed"] = self._holds(task, task.changed_when, variables, outcome, "changed_when")
        if task.failed_when is not None:
            result["failed"] = self._holds(task, task.failed_when, variables, outcome, "failed_when")
        status = TaskStatus.CHANGED if result.get("changed") else TaskStatus.OK
        if result.get("failed"):
            status = TaskStatus.IGNORED if self._ignored(task, variables) else TaskStatus.FAILED
        outcome.status = status
        return outcome

    def _holds(self, task: TaskSpec, condition: Any, variables: Mapping[str, Any], outcome: Outcome,
               keyword: str) -> bool:
        scope = {**variables, **outcome.facts}
        if task.register_var:
            scope[task.register_var] = outcome.result
        return Templar(scope).evaluate(condition, location=_where(task, keyword))

    def _ignored(self, task: TaskSpec, variables: Mapping[str, Any]) -> bool:
        if isinstance(task.ignore_errors, bool):
            return task.ignore_errors
        return Templar(variables).evaluate(task.ignore_errors, location=_where(task, "ignore_errors"))

    def _attempt(self, task: TaskSpec, key: str, variables: dict[str, Any]) -> Outcome:
        try:
            action, args, ctx = self._prepare(task, variables)
            planned, applied = self._plan_and_apply(task, key, action, args, ctx)
            settled = self._settle(action, args, ctx, applied)
        except RunbookError as exc:
            return Outcome(TaskStatus.FAILED, {"changed": False, "failed": True, "msg": str(exc)})
        changed = bool(applied) or settled.changed
        failed = planned.failed or not settled.ok
        msg = settled.msg or planned.msg
        result = {**planned.result, **settled.result, "changed": changed, "failed": failed, "msg": msg,
                  "changes": [str(c.ref) for c in applied]}
        return Outcome(TaskStatus.OK, result, dict(planned.facts), applied, planned.gate)

    def _prepare(self, task: TaskSpec, variables: dict[str, Any]) -> tuple[Action[Any], Any, ActionContext]:
        module = task.module or ""
        action_cls = ACTIONS.get(module)
        if action_cls is None:
            raise UserInputError(f"unknown task module {module!r}", task.location,
                                 hint="run `runbook check` to validate the playbook")
        templar = Templar(variables)
        raw = dict(task.args)
        conditions = {name: raw.pop(name) for name in action_cls.condition_args if name in raw}
        locations = args_locations(task.locations)
        rendered = dict(templar.render(raw, location=task.location, locations=locations))
        for name, value in conditions.items():
            items = value if isinstance(value, list) else [value]
            rendered[name] = [templar.evaluate(c, location=locations.get(name, task.location)) for c in items]
        args = validate_args(action_cls.Args, rendered, task.location, module=module, locations=locations)
        base_dir = task.base_dir or self.base_dir
        ctx = ActionContext(cluster=self.cluster, vars=variables,
                            check_mode=self.options.check or self.options.simulate,
                            base_dir=base_dir, template_dirs=(base_dir / "templates",),
                            progress=self._progress, log=self._log)
        return action_cls(), args, ctx

    def _plan_and_apply(self, task: TaskSpec, key: str, action: Action[Any], args: Any,
                        ctx: ActionContext) -> tuple[Planned, list[Change]]:
        origin = ChangeOrigin(self.origin.phase_index, self.origin.phase, self.origin.batch, key, task.name)
        resumed = not self.options.check and key not in self.planned_here
        note = self.store.plan_note(self.run_id, key) if resumed else None
        self.planned_here.add(key)
        if note is not None:  # planned by a process that stopped before recording the task: finish it
            pending = [r for r in self.store.changes(self.run_id, task_key=key) if r.state is not
                       ChangeState.REVERTED]
            applied = self.executor.reconcile(pending)
            return _planned_from(note), applied
        planned = action.plan(ctx, args)
        if self.options.check:
            for change in planned.changes:
                self.emit(EventKind.DIFF, f"{change.kind.value} {change.ref}", task.name,
                          _diff_data(change, with_objects=self.options.diff))
            return planned, list(planned.changes)  # would be applied: the task reports "changed"
        if planned.failed or not planned.changes:
            return planned, []
        return planned, self.executor.execute(origin, planned.changes, note=_note_of(planned))

    def _settle(self, action: Action[Any], args: Any, ctx: ActionContext, applied: list[Change]) -> Settled:
        if self.options.simulate or (self.options.check and not action.settle_in_check_mode):
            return Settled()
        # Settling is waiting for the cluster to move: it must see fresh state, not this phase's cached lists.
        fresh = replace(ctx, cluster=ctx.cluster.uncached) if isinstance(ctx.cluster, CachingCluster) else ctx
        return action.settle(fresh, args, applied)

    # helpers ---------------------------------------------------------------------------------
    def _variables(self, task: TaskSpec, inherited: Inherited, local: Mapping[str, Any]) -> dict[str, Any]:
        extra: dict[Scope, list[Mapping[str, Any]]] = {Scope.BLOCK: list(inherited.block_vars),
                                                        Scope.LOOP: [local]}
        if not task.is_block:
            extra[Scope.TASK] = [task.vars]
        if self.role_layers is not None:
            for scope, values in self.role_layers(task).items():
                extra.setdefault(scope, []).extend(values)
        return self.scope.compose(extra)

    def _loop_items(self, task: TaskSpec, variables: Mapping[str, Any]) -> list[Any]:
        items = Templar(variables).render(task.loop, location=_where(task, "loop"))
        if isinstance(items, Mapping) or not isinstance(items, list | tuple):
            raise UserInputError(f"`loop` of task {task.name!r} must be a list, got {type(items).__name__}",
                                 _where(task, "loop"), hint="use a list, or `dict2items` for a mapping")
        return list(items)

    def _count(self, status: TaskStatus) -> None:
        self.counts[status] = self.counts.get(status, 0) + 1

    def _progress(self, what: str, done: int, total: int) -> None:
        self.emit(EventKind.PROGRESS, what, "", {"done": done, "total": total})

    def _log(self, line: str) -> None:
        self.emit(EventKind.LOG, line, "", {})


def _where(task: TaskSpec, keyword: str) -> Any:
    return task.locations.get(keyword, task.location)


def _note_of(planned: Planned) -> dict[str, Any]:
    return {"facts": planned.facts, "result": planned.result, "msg": planned.msg, "failed": planned.failed}


def _planned_from(note: Mapping[str, Any]) -> Planned:
    return Planned(facts=dict(note.get("facts") or {}), result=dict(note.get("result") or {}),
                   msg=str(note.get("msg") or ""), failed=bool(note.get("failed")))


def _diff_data(change: Change, *, with_objects: bool) -> dict[str, Any]:
    data: dict[str, Any] = {"ref": str(change.ref), "change": change.kind.value}
    if with_objects:
        data.update(before=change.before, after=change.after)
    return data


def _overall(outcomes: Sequence[Outcome]) -> TaskStatus:
    statuses = [o.status for o in outcomes]
    for status in (TaskStatus.FAILED, TaskStatus.IGNORED, TaskStatus.CHANGED, TaskStatus.OK):
        if status in statuses:
            return status
    return TaskStatus.SKIPPED


def _loop_result(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    results = [o.result for o in outcomes]
    return {"results": results, "changed": any(r.get("changed") for r in results),
            "failed": any(o.status is TaskStatus.FAILED for o in outcomes),
            "skipped": all(o.status is TaskStatus.SKIPPED for o in outcomes)}
