"""The runner: executes a playbook on each of its clusters, phase by phase, and resumes or rolls back runs.

One *run* is one playbook on one cluster. For each phase the runner evaluates ``when``/``tags``,
stops at a ``pause_before`` gate, runs the preflight checks, runs the tasks in ``serial`` batches
over ``batch_over`` (``max_fail_percentage`` decides how many failed batches a phase survives),
then the checkpoint, whose policy continues, pauses or rolls the phase back, and finally stops at a
``pause_after`` gate. Every step moves the run's pointer in the journal before it happens, so a run
stopped at any point — paused, failed, or killed — is resumed exactly where it stood.

``resume`` re-runs the last checkpoint first and refuses to continue when the objects the run
touched changed since the pause, or a check that passed then fails now (unless drift is accepted).
``rollback`` undoes phases from the journal alone. A ``coordination.k8s.io/v1`` Lease keeps two
runs off one cluster. The runner never prints: it reports through an ``EventSink``.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runbook_engine.checks.base import Baseline
from runbook_engine.checks.baseline import take_baseline
from runbook_engine.engine.checkpoint import CheckEnv, Decision, decide, run_check
from runbook_engine.engine.connect import ClusterConnector
from runbook_engine.engine.events import Event, EventKind, EventSink, TaskStatus, discard
from runbook_engine.engine.executor import ChangeExecutor
from runbook_engine.engine.journal import ChangeOrigin, RunRecord, RunStatus, RunStore, Stage, owner_alive
from runbook_engine.engine.lease import ClusterLock
from runbook_engine.engine.modules import catalog
from runbook_engine.engine.objects import fingerprint, strip_server_fields
from runbook_engine.engine.rollback import PhaseRollback
from runbook_engine.engine.secrets import mask_secrets
from runbook_engine.engine.tasks import (
    GateReached,
    Inherited,
    TaskFailure,
    TaskOptions,
    TaskRunner,
    VarLayers,
    tags_selected,
)
from runbook_engine.engine.team_store import StoreMode
from runbook_engine.errors import RunbookError, RunStateError, UserInputError
from runbook_engine.kube.caching import CachingCluster
from runbook_engine.kube.change import Change
from runbook_engine.kube.cluster import Cluster
from runbook_engine.kube.refs import ObjectRef
from runbook_engine.report.verdict import Status, Verdict
from runbook_engine.spec.hosts import match_hosts, select_clusters
from runbook_engine.spec.inventory import load_inventory
from runbook_engine.spec.loader import load_playbook
from runbook_engine.spec.model import (
    CheckSpec,
    ClusterSpec,
    InventorySpec,
    OnFailure,
    PhaseSpec,
    PlaybookSpec,
    PlaySpec,
    TaskSpec,
)
from runbook_engine.spec.templating import Templar
from runbook_engine.spec.vars import BATCH_VAR, Scope

BaselineTaker = Callable[[Cluster], Baseline]


@dataclass(frozen=True)
class PhaseGateRequest:
    """What a phase gate (the planner's impact check) sees just before a phase's tasks run."""

    run_id: str
    cluster: Cluster
    playbook: PlaybookSpec
    phase: PhaseSpec
    index: int
    variables: Mapping[str, Any]
    resumed: bool  # the operator resumed the run at this phase's start
    facts: Mapping[str, Any] = field(default_factory=dict)  # registered/set facts so far (the planner replays them)


#: Called before a phase writes anything; a returned reason pauses the run there (nothing written).
PhaseGate = Callable[[PhaseGateRequest], str | None]
_OK_STATUSES = frozenset({Status.PASS, Status.FLAG, Status.SKIP, Status.PREEXISTING})


@dataclass(frozen=True)
class RunOptions:
    """How to run: ``runbook run``'s options."""

    check: bool = False
    diff: bool = False
    tags: frozenset[str] = frozenset()
    skip_tags: frozenset[str] = frozenset()
    start_at_phase: str | None = None
    extra_vars: Mapping[str, Any] = field(default_factory=dict)
    limit: str | None = None
    lock_namespace: str = "default"
    #: Execute the changes on a disposable cluster (the planner's snapshot): no lock, no gates or
    #: pauses, no waiting after writes; checkpoints run and are recorded but never stop the run.
    simulate: bool = False
    #: End the run after this phase (the planner re-plans one phase before a real run executes it).
    stop_after_phase: str | None = None
    #: Flow ids whose predicted break the operator accepts for every phase (``--accept-risk``).
    accept_risk: frozenset[str] = frozenset()
    #: ``cluster``: also replicate the run into its cluster (``team_store``); None: the inventory decides.
    store: StoreMode | None = None

    @property
    def attended(self) -> bool:
        """Whether gates, pauses and the cluster lock apply (a real run, not a dry or simulated one)."""
        return not (self.check or self.simulate)

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "diff": self.diff, "tags": sorted(self.tags), "skip_tags": sorted(self.skip_tags),
                "start_at_phase": self.start_at_phase, "extra_vars": dict(self.extra_vars), "limit": self.limit,
                "lock_namespace": self.lock_namespace, "simulate": self.simulate,
                "stop_after_phase": self.stop_after_phase, "accept_risk": sorted(self.accept_risk),
                "store": self.store.value if self.store else None}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunOptions:
        return cls(check=bool(d.get("check")), diff=bool(d.get("diff")), tags=frozenset(d.get("tags") or ()),
                   skip_tags=frozenset(d.get("skip_tags") or ()), start_at_phase=d.get("start_at_phase"),
                   extra_vars=dict(d.get("extra_vars") or {}), limit=d.get("limit"),
                   lock_namespace=str(d.get("lock_namespace") or "default"), simulate=bool(d.get("simulate")),
                   stop_after_phase=d.get("stop_after_phase"), accept_risk=frozenset(d.get("accept_risk") or ()),
                   store=StoreMode(d["store"]) if d.get("store") else None)


@dataclass(frozen=True)
class RunResult:
    """How a run ended (for now): its status, the phase it stands at and why it stopped."""

    run_id: str
    cluster: str
    status: RunStatus
    phase: str
    reason: str
    counts: Mapping[TaskStatus, int]


@dataclass(frozen=True)
class PhaseRef:
    index: int
    play: PlaySpec
    phase: PhaseSpec


class _Stop(Exception):
    """The run stops here (paused, rolled back or failed); the journal already says so."""

    def __init__(self, status: RunStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


# -- resolving hosts and phases --------------------------------------------------------------------------
def target_clusters(playbook: PlaybookSpec, inventory: InventorySpec, limit: str | None) -> list[str]:
    """The clusters the playbook's plays address, in inventory order, narrowed by ``--limit``."""
    wanted: set[str] = set()
    for play in playbook.plays:
        wanted.update(select_clusters(play.hosts, inventory, location=play.locations.get("hosts", play.location),
                                      limit=limit))
    return [name for name in inventory.clusters if name in wanted]


def phases_for(playbook: PlaybookSpec, inventory: InventorySpec, cluster: str) -> list[PhaseRef]:
    """Every phase of every play that addresses ``cluster``, numbered in playbook order."""
    selected = [(play, ph) for play in playbook.plays
                if cluster in match_hosts(play.hosts, inventory) for ph in play.phases]
    return [PhaseRef(i, play, ph) for i, (play, ph) in enumerate(selected)]


def playbook_hash(playbook: PlaybookSpec) -> str:
    """A hash of everything the loader read (plays, phases, tasks, roles), to detect edits before resume.

    Files count by their path relative to the playbook's directory, so the same checkout named by a
    relative path, or at another path on another machine (a resume from the team store), hashes the same.
    """
    dumped = playbook.model_dump(mode="json", exclude={"path"})
    return fingerprint(_relative_paths(dumped, playbook.path.resolve().parent))


def _relative_paths(value: Any, base: Path) -> Any:
    """``value`` with every location's file, role path and ``base_dir`` made relative to ``base``."""
    if isinstance(value, list):
        return [_relative_paths(v, base) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: _relative_paths(v, base) for k, v in value.items()}
    keys = ["base_dir"]
    if {"file", "line", "column"} <= value.keys():
        keys.append("file")
    if {"path", "defaults", "dependencies"} <= value.keys():
        keys.append("path")
    for key in keys:
        if isinstance(value.get(key), str):
            out[key] = os.path.relpath(Path(value[key]).resolve(), base)
    return out


def _has_selected_task(tasks: Sequence[TaskSpec], tags: frozenset[str], options: RunOptions) -> bool:
    for task in tasks:
        own = tags | frozenset(task.tags)
        if task.is_block and _has_selected_task((*task.block, *task.rescue, *task.always), own, options):
            return True
        if not task.is_block and tags_selected(own, options.tags, options.skip_tags):
            return True
    return False


def _phase_tags_selected(phase: PhaseSpec, options: RunOptions) -> bool:
    """A phase runs if one of its tasks is selected by tags; a checks-only phase by its own tags."""
    if not phase.tasks:
        return tags_selected(frozenset(phase.tags), options.tags, options.skip_tags)
    return _has_selected_task(phase.tasks, frozenset(phase.tags), options)


def _batches(phase: PhaseSpec, templar: Templar) -> list[list[Any] | None]:
    if phase.batch_over is None:
        return [None]
    items = templar.render(phase.batch_over, location=phase.locations.get("batch_over", phase.location))
    if not isinstance(items, list | tuple):
        raise UserInputError(f"`batch_over` of phase {phase.name!r} must be a list",
                             phase.locations.get("batch_over", phase.location), hint="give a list or a template of one")
    items = list(items)
    size = _batch_size(phase, templar, len(items))
    return [items[i:i + size] for i in range(0, len(items), size)] or [[]]


def _batch_size(phase: PhaseSpec, templar: Templar, count: int) -> int:
    """``serial`` as a batch size: a number, a percentage of the items, or a template of either."""
    where = phase.locations.get("serial", phase.location)
    serial = templar.render(phase.serial, location=where)
    if serial is None:
        return count or 1
    text = str(serial).strip()
    try:
        if text.endswith("%"):
            return max(1, math.ceil(count * float(text[:-1]) / 100))
        return max(1, int(text))
    except ValueError:
        raise UserInputError(f"`serial` of phase {phase.name!r} is {serial!r}", where,
                             hint="give a number of items per batch or a percentage such as '25%'") from None


# -- one run's state -------------------------------------------------------------------------------------
@dataclass
class _Run:
    record: RunRecord
    playbook: PlaybookSpec
    inventory: InventorySpec
    spec: ClusterSpec
    cluster: Cluster  # direct: pre-images, rollback, drift and the lock read the server itself
    reader: CachingCluster  # actions and checks: lists cached per phase
    options: RunOptions
    phases: list[PhaseRef]
    facts: dict[str, Any] = field(default_factory=dict)
    baseline: Baseline | None = None
    lock: ClusterLock | None = None
    counts: dict[TaskStatus, int] = field(default_factory=dict)
    acknowledged: tuple[int, Stage] | None = None  # the gate a resume acknowledged
    last_checkpoint: int = -1

    @property
    def id(self) -> str:
        return self.record.id


class Engine:
    """Runs, resumes and rolls back playbooks; reports through ``sink``; journals in ``store``."""

    def __init__(self, store: RunStore, *, connect: ClusterConnector, sink: EventSink = discard,
                 baseline: BaselineTaker | None = take_baseline, phase_gate: PhaseGate | None = None) -> None:
        self.store = store
        self.connect = connect
        self.sink = sink
        self.take_baseline = baseline
        self.phase_gate = phase_gate

    # public API ---------------------------------------------------------------------------------------
    def run(self, playbook: PlaybookSpec, inventory: InventorySpec, options: RunOptions) -> list[RunResult]:
        """Run the playbook on every cluster it addresses (one run each); returns how each run ended."""
        clusters = target_clusters(playbook, inventory, options.limit)
        if not clusters:
            raise UserInputError("no cluster of the inventory matches the plays' hosts and --limit",
                                 hint="check `hosts:` in the playbook and the --limit value")
        return [self._run_cluster(playbook, inventory, name, options) for name in clusters]

    def resume(self, run_id: str, *, at_phase: str | None = None, accept_drift: bool = False,
               playbook: PlaybookSpec | None = None, inventory: InventorySpec | None = None) -> RunResult:
        """Continue a paused, failed or interrupted run where it stopped (or at ``at_phase``)."""
        record = self.store.get_run(run_id)
        self._check_resumable(record, at_phase)
        options = RunOptions.from_dict(record.options)
        playbook, inventory = self._specs(record, options, playbook, inventory)
        if playbook_hash(playbook) != record.playbook_hash and not accept_drift:
            raise RunStateError(f"the playbook changed since run {record.id} started",
                                hint="resume with --accept-drift to run the edited playbook")
        with self.connect(inventory.clusters[record.cluster]) as cluster:
            run = self._state(record, playbook, inventory, cluster, options)
            return self._guarded(run, lambda: self._resume(run, at_phase, accept_drift), fresh=False)

    def rollback(self, run_id: str, *, phase: str | None = None, inventory: InventorySpec | None = None) -> RunResult:
        """Undo the run's phases from the last back to ``phase`` (all of them when None)."""
        record = self.store.get_run(run_id)
        if record.status is RunStatus.RUNNING and owner_alive(record.owner):
            raise RunStateError(f"run {record.id} is running in process {record.owner}",
                                hint="stop it (it pauses at the next step) before rolling back")
        options = RunOptions.from_dict(record.options)
        if inventory is None:
            inventory = load_inventory(Path(record.inventory), extra_vars=dict(options.extra_vars))
        indices = self._phases_to_undo(record, phase)
        with self.connect(inventory.clusters[record.cluster]) as cluster:
            lock = ClusterLock(cluster, record.id, options.lock_namespace)
            lock.acquire()
            try:
                for index, name in indices:
                    self._undo_phase(record.id, cluster, index, name)
            finally:
                lock.release()
        first = indices[-1] if indices else (record.phase_index, record.current_phase)
        self.store.set_position(record.id, first[0], first[1], Stage.BEFORE)
        reason = f"rolled back {', '.join(n for _, n in indices) or 'nothing'} on request"
        self.store.set_status(record.id, RunStatus.ROLLED_BACK, reason=reason)
        self._emit(record.id, record.cluster, EventKind.RUN_END, reason, data={"status": RunStatus.ROLLED_BACK.value})
        return RunResult(record.id, record.cluster, RunStatus.ROLLED_BACK, first[1], reason, {})

    # runs ---------------------------------------------------------------------------------------------
    def _run_cluster(self, playbook: PlaybookSpec, inventory: InventorySpec, name: str,
                     options: RunOptions) -> RunResult:
        phases = phases_for(playbook, inventory, name)
        start = self._start_index(phases, options.start_at_phase)
        record = self.store.create_run(playbook=str(playbook.path.resolve()), playbook_hash=playbook_hash(playbook),
                                       inventory=str(inventory.path.resolve()), cluster=name,
                                       options=options.to_dict())
        with self.connect(inventory.clusters[name]) as cluster:
            run = self._state(record, playbook, inventory, cluster, options)
            return self._guarded(run, lambda: self._fresh(run, start), fresh=True)

    def _fresh(self, run: _Run, start: int) -> RunResult:
        self._emit_run(run, EventKind.RUN_START, f"run {run.id} on {run.spec.name}",
                       {"playbook": str(run.playbook.path), "check": run.options.check})
        if self.take_baseline is not None:
            run.baseline = self.take_baseline(run.cluster)
            if not run.options.check:
                self.store.save_baseline(run.id, run.baseline.to_dict())
        for ref in run.phases[:start]:
            self._emit_run(run, EventKind.PHASE_SKIPPED, f"{ref.phase.name}: before --start-at-phase",
                           phase=ref.phase.name)
        return self._drive(run, start, Stage.BEFORE)

    def _guarded(self, run: _Run, body: Callable[[], RunResult], *, fresh: bool) -> RunResult:
        """Hold the cluster lock while ``body`` runs; a crash of the engine marks the run failed.

        A refused lock fails a ``fresh`` run (it never started) and leaves a resumed one as it was.
        """
        if run.options.attended:
            lock = ClusterLock(run.cluster, run.id, run.options.lock_namespace)
            try:
                lock.acquire()
            except RunStateError as exc:
                if fresh:
                    self.store.set_status(run.id, RunStatus.FAILED, reason=str(exc))
                raise
            run.lock = lock
        try:
            return body()
        except BaseException as exc:
            reason = str(exc) if isinstance(exc, RunbookError) else f"{type(exc).__name__}: {exc}"
            self.store.set_status(run.id, RunStatus.FAILED, reason=reason)
            self._emit_run(run, EventKind.RUN_END, reason, {"status": RunStatus.FAILED.value})
            raise
        finally:
            if run.lock is not None:
                run.lock.release()

    def _drive(self, run: _Run, start: int, stage: Stage) -> RunResult:
        self.store.set_status(run.id, RunStatus.RUNNING, fingerprint={})  # a pause's fingerprint is spent
        try:
            for ref in run.phases[start:]:
                self._phase(run, ref, stage if ref.index == start else Stage.BEFORE)
                if ref.phase.name == run.options.stop_after_phase:
                    break
        except _Stop as stop:
            return self._result(run, stop.status, stop.reason)
        self.store.set_status(run.id, RunStatus.COMPLETED)
        return self._result(run, RunStatus.COMPLETED, "")

    def _result(self, run: _Run, status: RunStatus, reason: str) -> RunResult:
        record = self.store.get_run(run.id)
        self._emit_run(run, EventKind.RUN_END, reason or status.value,
                       {"status": status.value, "counts": {k.value: v for k, v in run.counts.items()}})
        return RunResult(run.id, run.spec.name, status, record.current_phase, reason, dict(run.counts))

    # phases -------------------------------------------------------------------------------------------
    def _phase(self, run: _Run, ref: PhaseRef, stage: Stage) -> None:
        phase = ref.phase
        run.reader.new_phase()
        if stage is Stage.BEFORE:
            if not self._phase_selected(run, ref):
                return
            self._before(run, ref)
        if stage in (Stage.BEFORE, Stage.TASKS):
            self._tasks(run, ref)
        if stage in (Stage.BEFORE, Stage.TASKS, Stage.CHECKPOINT):
            self._checkpoint(run, ref)
        self._position(run, ref, Stage.AFTER)
        if phase.pause_after and run.acknowledged != (ref.index, Stage.AFTER) and run.options.attended:
            self._pause(run, ref, Stage.AFTER, _gate_text(phase.pause_after, f"pause after phase {phase.name}"))
        self._position(run, ref, Stage.DONE)
        self._emit_run(run, EventKind.PHASE_END, phase.name, phase=phase.name)

    def _phase_selected(self, run: _Run, ref: PhaseRef) -> bool:
        phase, variables = ref.phase, self._variables(run, ref)
        if not Templar(variables).evaluate(phase.when, location=phase.locations.get("when", phase.location)):
            reason = "its `when` condition is false"
        elif not _phase_tags_selected(phase, run.options):
            reason = "no task matches --tags/--skip-tags"
        else:
            return True
        self._emit_run(run, EventKind.PHASE_SKIPPED, f"{phase.name}: {reason}", phase=phase.name)
        return False

    def _before(self, run: _Run, ref: PhaseRef) -> None:
        phase = ref.phase
        if ref.index == 0 or ref.play is not run.phases[ref.index - 1].play:
            self._emit_run(run, EventKind.PLAY_START, ref.play.name, {"hosts": ref.play.hosts})
        self._position(run, ref, Stage.BEFORE)
        if not run.options.check:
            self.store.save_vars(run.id, f"{ref.index}:start", run.facts)
        self._emit_run(run, EventKind.PHASE_START, phase.name, {"index": ref.index + 1, "total": len(run.phases)},
                       phase=phase.name)
        if phase.pause_before and run.acknowledged != (ref.index, Stage.BEFORE) and run.options.attended:
            self._pause(run, ref, Stage.BEFORE, _gate_text(phase.pause_before, f"pause before phase {phase.name}"))
        if phase.checkpoint.preflight:
            verdicts = self._run_checks(run, ref, phase.checkpoint.preflight, preflight=True)
            decision, reason = decide(verdicts, phase.checkpoint)
            if decision is not Decision.CONTINUE and run.options.attended:
                self._pause(run, ref, Stage.BEFORE, "preflight " + reason)
        self._gate(run, ref)

    def _gate(self, run: _Run, ref: PhaseRef) -> None:
        if self.phase_gate is None:
            return
        request = PhaseGateRequest(run.id, run.reader, run.playbook, ref.phase, ref.index,
                                   self._variables(run, ref), run.acknowledged == (ref.index, Stage.BEFORE),
                                   dict(run.facts))
        reason = self.phase_gate(request)
        if reason and run.options.attended:
            self._pause(run, ref, Stage.BEFORE, reason)

    def _tasks(self, run: _Run, ref: PhaseRef) -> None:
        phase = ref.phase
        self._position(run, ref, Stage.TASKS)
        batches = _batches(phase, Templar(self._variables(run, ref)))
        failures: list[TaskFailure] = []
        for number, items in enumerate(batches):
            if run.lock is not None:
                run.lock.renew_if_due()
            if items is not None:
                self._emit_run(run, EventKind.BATCH_START, f"batch {number + 1}/{len(batches)}",
                               {"done": number, "total": len(batches), "items": [str(i) for i in items]},
                               phase=phase.name)
            failure = self._batch(run, ref, number, items)
            if failure is not None:
                failures.append(failure)
                if len(failures) * 100 / len(batches) > (phase.max_fail_percentage or 0):
                    self._task_failure(run, ref, failures)
        if not run.options.check:
            self.store.save_vars(run.id, f"{ref.index}:end", run.facts)

    def _batch(self, run: _Run, ref: PhaseRef, number: int, items: list[Any] | None) -> TaskFailure | None:
        runner = self._task_runner(run, ref, number, items)
        try:
            runner.run_tasks(ref.phase.tasks, f"{ref.index}/{number}/", Inherited(frozenset(ref.phase.tags)))
        except TaskFailure as failure:
            return failure
        except GateReached as gate:
            self._pause(run, ref, Stage.TASKS, gate.message)
        finally:
            for status, n in runner.counts.items():
                run.counts[status] = run.counts.get(status, 0) + n
            run.facts = runner.scope.facts
        return None

    def _task_runner(self, run: _Run, ref: PhaseRef, number: int, items: list[Any] | None) -> TaskRunner:
        layers = self._layers(run, ref)
        if items is not None:
            layers[Scope.LOOP] = [{BATCH_VAR: items}]
        origin = ChangeOrigin(ref.index, ref.phase.name, number, "", "")
        executor = ChangeExecutor(run.reader, self.store, run.id,
                                  on_applied=lambda ch, written: self._on_change(run, ref, ch, written))
        return TaskRunner(
            cluster=run.reader, store=self.store, run_id=run.id, origin=origin,
            scope=VarLayers(layers, run.facts), emit=self._task_emitter(run, ref),
            options=TaskOptions(run.options.check, run.options.diff, run.options.tags, run.options.skip_tags,
                                simulate=run.options.simulate),
            executor=executor, base_dir=run.playbook.path.parent,
            records={} if run.options.check else self.store.task_records(run.id),
            role_layers=lambda task: self._role_layers(run, task),
        )

    def _task_failure(self, run: _Run, ref: PhaseRef, failures: Sequence[TaskFailure]) -> None:
        phase = ref.phase
        reason = "; ".join(str(f) for f in failures)
        if run.options.check:
            raise _Stop(RunStatus.FAILED, reason)
        policy = phase.on_failure or phase.checkpoint.on_failure
        if policy is OnFailure.ROLLBACK:
            self._rollback(run, ref, reason)
        for failure in failures:
            for key in failure.keys:
                self.store.forget_tasks(run.id, key)
        self._pause(run, ref, Stage.TASKS, reason)

    def _checkpoint(self, run: _Run, ref: PhaseRef) -> None:
        phase = ref.phase
        self._position(run, ref, Stage.CHECKPOINT)
        # The checkpoint judges the cluster as the phase left it. Controllers create and change objects
        # of kinds the phase never wrote (a DaemonSet's pods), so lists cached earlier in the phase are stale.
        run.reader.new_phase()
        if not phase.checkpoint.checks:
            return
        if run.options.check:
            self._emit_run(run, EventKind.CHECKPOINT_DECISION, "checks are not run in check mode",
                           {"decision": "skipped"}, phase=phase.name)
            return
        verdicts = self._run_checks(run, ref, phase.checkpoint.checks, preflight=False)
        self.store.save_verdicts(run.id, ref.index, verdicts)
        run.last_checkpoint = ref.index
        decision, reason = decide(verdicts, phase.checkpoint)
        self._emit_run(run, EventKind.CHECKPOINT_DECISION, reason or "checkpoint passed",
                       {"decision": decision.value}, phase=phase.name)
        if run.options.simulate:
            return  # predicted outcome only: a simulation never stops at a checkpoint
        if decision is Decision.ROLLBACK:
            self._rollback(run, ref, reason)
        if decision is Decision.PAUSE:
            self._pause(run, ref, Stage.CHECKPOINT, reason)

    def _run_checks(self, run: _Run, ref: PhaseRef, checks: Sequence[CheckSpec], *, preflight: bool) -> list[Verdict]:
        phase = ref.phase
        self._emit_run(run, EventKind.CHECKPOINT_START, "preflight" if preflight else "checkpoint",
                       {"checks": len(checks)}, phase=phase.name)
        env = CheckEnv(run.reader, self._variables(run, ref), run.baseline, run.spec.prometheus_url,
                       dt.datetime.now(dt.UTC))
        verdicts: list[Verdict] = []
        for number, spec in enumerate(checks):
            verdict = run_check(spec, env)
            verdicts.append(verdict)
            self._emit_run(run, EventKind.CHECK_RESULT, verdict.summary,
                           {"status": verdict.status.value, "title": verdict.title, "hint": verdict.hint,
                            "done": number + 1, "total": len(checks)}, phase=phase.name, task=verdict.title)
        return verdicts

    # pause, rollback, drift ---------------------------------------------------------------------------
    def _pause(self, run: _Run, ref: PhaseRef, stage: Stage, reason: str) -> None:
        self._position(run, ref, stage)
        prints = self._fingerprint(run)
        self.store.set_status(run.id, RunStatus.PAUSED, reason=reason, fingerprint=prints)
        self._emit_run(run, EventKind.PAUSED, reason, {"stage": stage.value}, phase=ref.phase.name)
        raise _Stop(RunStatus.PAUSED, reason)

    def _rollback(self, run: _Run, ref: PhaseRef, reason: str) -> None:
        self._undo_phase(run.id, run.cluster, ref.index, ref.phase.name)
        self._position(run, ref, Stage.BEFORE)
        self.store.set_status(run.id, RunStatus.ROLLED_BACK, reason=reason)
        raise _Stop(RunStatus.ROLLED_BACK, reason)

    def _undo_phase(self, run_id: str, cluster: Cluster, index: int, name: str) -> list[Change]:
        record = self.store.get_run(run_id)
        self._emit(run_id, record.cluster, EventKind.ROLLBACK_START, f"rolling back phase {name}", phase=name)

        def undone(change: Change) -> None:
            self._emit(run_id, record.cluster, EventKind.ROLLBACK_CHANGE, f"{change.kind.value} {change.ref}",
                       phase=name, data={"ref": str(change.ref), "change": change.kind.value})

        return PhaseRollback(cluster, self.store, run_id, on_undo=undone).run(index)

    def _phases_to_undo(self, record: RunRecord, phase: str | None) -> list[tuple[int, str]]:
        applied = {(c.phase_index, c.phase) for c in self.store.changes(record.id, undo=False)}
        ordered = sorted(applied, reverse=True)
        if phase is None:
            return ordered
        matches = [i for i, n in ordered if n == phase]
        if not matches:
            raise RunStateError(f"run {record.id} changed nothing in a phase named {phase!r}",
                                hint="phases with changes: " + ", ".join(n for _, n in ordered))
        return [(i, n) for i, n in ordered if i >= matches[0]]

    def _fingerprint(self, run: _Run) -> dict[str, Any]:
        verdicts = self.store.verdicts(run.id, run.last_checkpoint) if run.last_checkpoint >= 0 else []
        return {"objects": self._object_prints(run), "checkpoint": run.last_checkpoint,
                "verdicts": {v.title: v.status.value for v in verdicts}}

    def _object_prints(self, run: _Run) -> dict[str, str | None]:
        refs = sorted({c.change.ref for c in self.store.changes(run.id)})
        return {_ref_key(ref): _print(run.cluster.get(ref)) for ref in refs}

    # resume -------------------------------------------------------------------------------------------
    def _check_resumable(self, record: RunRecord, at_phase: str | None) -> None:
        if record.status is RunStatus.COMPLETED:
            raise RunStateError(f"run {record.id} is already completed", hint="start a new run with `runbook run`")
        if record.status is RunStatus.RUNNING and owner_alive(record.owner):
            raise RunStateError(f"run {record.id} is still running in process {record.owner}",
                                hint="wait for it to pause or finish")
        if record.status is RunStatus.ROLLED_BACK and at_phase is None:
            raise RunStateError(f"run {record.id} was rolled back",
                                hint="resume with --at-phase PHASE to run that phase again")

    def _resume(self, run: _Run, at_phase: str | None, accept_drift: bool) -> RunResult:
        record = run.record
        self.store.set_status(run.id, RunStatus.RUNNING)
        if at_phase is not None:
            return self._restart_at(run, self._start_index(run.phases, at_phase))
        run.facts = self._resume_facts(run, record)
        stage = record.stage
        if record.status is RunStatus.PAUSED:
            run.last_checkpoint = int(record.fingerprint.get("checkpoint", -1))
            try:
                self._verify_before_resume(run, record, accept_drift)
            except _Stop as stop:
                return self._result(run, stop.status, stop.reason)
            if stage is Stage.CHECKPOINT:
                stage = Stage.AFTER  # the checkpoint just passed again
            if stage in (Stage.BEFORE, Stage.AFTER):
                run.acknowledged = (record.phase_index, stage)  # resuming is the operator's go-ahead
        # an interrupted (not paused) run picks up exactly where it stood: no gate counts as passed
        if stage is Stage.DONE:
            return self._drive(run, record.phase_index + 1, Stage.BEFORE)
        return self._drive(run, record.phase_index, stage)

    def _restart_at(self, run: _Run, index: int) -> RunResult:
        """Run phase ``index`` again from its start (its tasks forgotten, its pause_before passed)."""
        for ref in run.phases[index:]:
            self.store.forget_tasks(run.id, f"{ref.index}/")
        run.facts = self.store.load_vars(run.id, f"{index}:start") or self._latest_facts(run, index)
        run.acknowledged = (index, Stage.BEFORE)
        return self._drive(run, index, Stage.BEFORE)

    def _resume_facts(self, run: _Run, record: RunRecord) -> dict[str, Any]:
        slot = "start" if record.stage in (Stage.BEFORE, Stage.TASKS) else "end"
        return self.store.load_vars(run.id, f"{record.phase_index}:{slot}") or self._latest_facts(
            run, record.phase_index)

    def _latest_facts(self, run: _Run, index: int) -> dict[str, Any]:
        for i in range(index, -1, -1):
            for slot in ("end", "start"):
                found = self.store.load_vars(run.id, f"{i}:{slot}")
                if found is not None:
                    return found
        return {}

    def _verify_before_resume(self, run: _Run, record: RunRecord, accept_drift: bool) -> None:
        """Re-run the last checkpoint and compare the cluster with the pause; pause again if it drifted."""
        saved = record.fingerprint
        ref = run.phases[record.phase_index]
        drift = [f"{key} changed since the pause" for key, value in self._object_prints(run).items()
                 if saved.get("objects", {}).get(key, value) != value]
        if run.last_checkpoint >= 0:
            drift += self._recheck(run, run.phases[run.last_checkpoint], saved)
        if drift:
            self._emit_run(run, EventKind.DRIFT, "; ".join(drift), {"drift": drift, "accepted": accept_drift},
                           phase=ref.phase.name)
        if drift and not accept_drift:
            reason = "cluster drifted since the pause: " + "; ".join(drift)
            self.store.set_status(run.id, RunStatus.PAUSED, reason=reason)
            raise _Stop(RunStatus.PAUSED, reason)

    def _recheck(self, run: _Run, ref: PhaseRef, saved: Mapping[str, Any]) -> list[str]:
        verdicts = self._run_checks(run, ref, ref.phase.checkpoint.checks, preflight=False)
        self.store.save_verdicts(run.id, ref.index, verdicts)
        decision, reason = decide(verdicts, ref.phase.checkpoint)
        before = saved.get("verdicts", {})
        regressed = [f"check {v.title!r} was {before[v.title]} at the pause and is {v.status.value} now"
                     for v in verdicts if v.title in before and Status(before[v.title]) in _OK_STATUSES
                     and v.status not in _OK_STATUSES]
        if decision is not Decision.CONTINUE and not regressed:
            self._position(run, ref, Stage.CHECKPOINT)
            self.store.set_status(run.id, RunStatus.PAUSED, reason=reason)
            self._emit_run(run, EventKind.PAUSED, reason, {"stage": Stage.CHECKPOINT.value}, phase=ref.phase.name)
            raise _Stop(RunStatus.PAUSED, reason)
        return regressed

    # helpers ------------------------------------------------------------------------------------------
    def _specs(self, record: RunRecord, options: RunOptions, playbook: PlaybookSpec | None,
               inventory: InventorySpec | None) -> tuple[PlaybookSpec, InventorySpec]:
        if playbook is None or inventory is None:
            playbook = playbook or load_playbook(Path(record.playbook), catalog=catalog())
            inventory = inventory or load_inventory(Path(record.inventory), extra_vars=dict(options.extra_vars))
        return playbook, inventory

    def _state(self, record: RunRecord, playbook: PlaybookSpec, inventory: InventorySpec, cluster: Cluster,
               options: RunOptions) -> _Run:
        spec = inventory.clusters[record.cluster]
        stored = self.store.baseline(record.id)
        reader = CachingCluster(cluster, enabled=not options.simulate)  # a simulation is memory already
        return _Run(record, playbook, inventory, spec, cluster, reader, options,
                    phases_for(playbook, inventory, spec.name),
                    baseline=Baseline.from_dict(stored) if stored else None)

    def _start_index(self, phases: Sequence[PhaseRef], name: str | None) -> int:
        if name is None:
            return 0
        for ref in phases:
            if ref.phase.name == name:
                return ref.index
        raise UserInputError(f"no phase named {name!r}",
                             hint="phases: " + ", ".join(repr(r.phase.name) for r in phases))

    def _position(self, run: _Run, ref: PhaseRef, stage: Stage) -> None:
        if not run.options.check:
            self.store.set_position(run.id, ref.index, ref.phase.name, stage)

    def _layers(self, run: _Run, ref: PhaseRef) -> dict[Scope, list[Mapping[str, Any]]]:
        magic = {
            "inventory_hostname": run.spec.name, "cluster": run.spec.name,
            "inventory_dir": str((run.inventory.path.parent if run.inventory.path.is_file()
                                  else run.inventory.path).resolve()),
            "group_names": list(run.spec.groups), "groups": {k: list(v) for k, v in run.inventory.groups.items()},
            "hostvars": {k: dict(v.vars) for k, v in run.inventory.clusters.items()},
            "playbook_dir": str(run.playbook.path.resolve().parent), "run_id": run.id, "phase_name": ref.phase.name,
            "check_mode": not run.options.attended,
        }
        return {Scope.INVENTORY: [run.spec.vars], Scope.PLAY: [ref.play.vars], Scope.PHASE: [ref.phase.vars],
                Scope.EXTRA: [run.options.extra_vars], Scope.MAGIC: [magic]}

    def _role_layers(self, run: _Run, task: TaskSpec) -> dict[Scope, list[Mapping[str, Any]]]:
        role = run.playbook.roles.get(task.role or "")
        if role is None:
            return {}
        return {Scope.ROLE_DEFAULTS: [role.defaults], Scope.ROLE_VARS: [role.vars],
                Scope.ROLE_PARAMS: [task.role_params],
                Scope.MAGIC: [{"role_name": role.name, "role_path": str(role.path)}]}

    def _variables(self, run: _Run, ref: PhaseRef) -> dict[str, Any]:
        return VarLayers(self._layers(run, ref), run.facts).compose({})

    def _on_change(self, run: _Run, ref: PhaseRef, change: Change, written: bool) -> None:
        verb = {"create": "created", "update": "updated", "delete": "deleted", "restart": "restarted"}
        data: dict[str, Any] = {"ref": str(change.ref), "change": change.kind.value, "written": written}
        if run.options.diff:
            data.update(before=change.before, after=change.after)
        self._emit_run(run, EventKind.CHANGE, f"{verb[change.kind.value]} {change.ref}", data, phase=ref.phase.name)

    def _task_emitter(self, run: _Run, ref: PhaseRef) -> Callable[[EventKind, str, str, dict[str, Any]], None]:
        def emit(kind: EventKind, message: str, task: str, data: dict[str, Any]) -> None:
            if kind is EventKind.PROGRESS and run.lock is not None:
                run.lock.renew_if_due()  # long waits (rollouts) must not let the lock expire
            self._emit_run(run, kind, message, data, phase=ref.phase.name, task=task)

        return emit

    def _emit_run(self, run: _Run, kind: EventKind, message: str, data: Mapping[str, Any] | None = None, *,
                  phase: str = "", task: str = "") -> None:
        self._emit(run.id, run.spec.name, kind, message, phase=phase, task=task, data=data,
                   journal=not run.options.check)

    def _emit(self, run_id: str, cluster: str, kind: EventKind, message: str, *, phase: str = "", task: str = "",
              data: Mapping[str, Any] | None = None, journal: bool = True) -> None:
        event = Event(kind, mask_secrets(message), run_id, cluster, phase, task, mask_secrets(dict(data or {})))
        if journal and kind is not EventKind.PROGRESS:  # progress ticks are for the screen only
            self.store.add_event(event)
        self.sink(event)


def _gate_text(value: bool | str, default: str) -> str:
    return value if isinstance(value, str) else default


def _ref_key(ref: ObjectRef) -> str:
    return f"{ref.api_version}/{ref}"


def _print(obj: Mapping[str, Any] | None) -> str | None:
    return None if obj is None else fingerprint(strip_server_fields(obj))


@contextmanager
def existing_cluster(cluster: Cluster) -> Iterator[Cluster]:
    """A connector result for a cluster object the caller already holds (tests, the planner)."""
    yield cluster


def fixed_connector(clusters: Mapping[str, Cluster]) -> ClusterConnector:
    """A connector that hands out already-built clusters by inventory name."""
    return lambda spec: existing_cluster(clusters[spec.name])

