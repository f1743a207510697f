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

The ``Engine`` here orchestrates; its collaborators live beside it: ``run_model`` (options, results,
the phase gate's request), ``phases`` (which clusters, phases and batches), ``run_state`` (one run in
memory), ``variables`` (variable layers), ``emitter`` (events) and ``resume`` (drift checks and the
point a resumed run continues from).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from runbook_engine.checks.base import Baseline
from runbook_engine.checks.baseline import take_baseline
from runbook_engine.engine.checkpoint import CheckEnv, Decision, decide, run_check
from runbook_engine.engine.connect import ClusterConnector
from runbook_engine.engine.emitter import RunEmitter
from runbook_engine.engine.events import EventKind, EventSink, discard
from runbook_engine.engine.executor import ChangeExecutor
from runbook_engine.engine.journal import ChangeOrigin, RunRecord, RunStatus, RunStore, Stage, owner_alive
from runbook_engine.engine.lease import ClusterLock
from runbook_engine.engine.modules import catalog
from runbook_engine.engine.phases import (
    PhaseRef,
    phase_batches,
    phase_tags_selected,
    phases_for,
    playbook_hash,
    start_index,
    target_clusters,
)
from runbook_engine.engine.resume import (
    DriftCheck,
    ResumePoint,
    check_resumable,
    pause_fingerprint,
    restart_facts,
    resume_facts,
)
from runbook_engine.engine.rollback import PhaseRollback, phases_to_undo
from runbook_engine.engine.run_model import PhaseGate, PhaseGateRequest, RunOptions, RunResult
from runbook_engine.engine.run_state import RunState, RunStopped, record_position
from runbook_engine.engine.tasks import GateReached, Inherited, TaskFailure, TaskOptions, TaskRunner, VarLayers
from runbook_engine.engine.variables import phase_layers, phase_variables, role_layers
from runbook_engine.errors import RunbookError, RunStateError, UserInputError
from runbook_engine.kube.caching import CachingCluster
from runbook_engine.kube.change import Change
from runbook_engine.kube.cluster import Cluster
from runbook_engine.report.verdict import Verdict
from runbook_engine.spec.inventory import load_inventory
from runbook_engine.spec.loader import load_playbook
from runbook_engine.spec.model import CheckSpec, InventorySpec, OnFailure, PlaybookSpec
from runbook_engine.spec.templating import Templar
from runbook_engine.spec.vars import BATCH_VAR, Scope

BaselineTaker = Callable[[Cluster], Baseline]


class Engine:
    """Runs, resumes and rolls back playbooks; reports through ``sink``; journals in ``store``."""

    def __init__(self, store: RunStore, *, connect: ClusterConnector, sink: EventSink = discard,
                 baseline: BaselineTaker | None = take_baseline, phase_gate: PhaseGate | None = None) -> None:
        self.store = store
        self.connect = connect
        self.sink = sink
        self.take_baseline = baseline
        self.phase_gate = phase_gate

    @property
    def _events(self) -> RunEmitter:
        """Events go to the engine's current ``store`` and ``sink`` (callers may swap either between runs)."""
        return RunEmitter(self.store, self.sink)

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
        check_resumable(record, at_phase)
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
        indices = phases_to_undo(self.store, record, phase)
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
        self._events.emit(record.id, record.cluster, EventKind.RUN_END, reason,
                          data={"status": RunStatus.ROLLED_BACK.value})
        return RunResult(record.id, record.cluster, RunStatus.ROLLED_BACK, first[1], reason, {})

    # runs ---------------------------------------------------------------------------------------------
    def _run_cluster(self, playbook: PlaybookSpec, inventory: InventorySpec, name: str,
                     options: RunOptions) -> RunResult:
        phases = phases_for(playbook, inventory, name)
        start = start_index(phases, options.start_at_phase)
        record = self.store.create_run(playbook=str(playbook.path.resolve()), playbook_hash=playbook_hash(playbook),
                                       inventory=str(inventory.path.resolve()), cluster=name,
                                       options=options.to_dict())
        with self.connect(inventory.clusters[name]) as cluster:
            run = self._state(record, playbook, inventory, cluster, options)
            return self._guarded(run, lambda: self._fresh(run, start), fresh=True)

    def _fresh(self, run: RunState, start: int) -> RunResult:
        self._events.run_event(run, EventKind.RUN_START, f"run {run.id} on {run.spec.name}",
                               {"playbook": str(run.playbook.path), "check": run.options.check})
        if self.take_baseline is not None:
            run.baseline = self.take_baseline(run.cluster)
            if not run.options.check:
                self.store.save_baseline(run.id, run.baseline.to_dict())
        for ref in run.phases[:start]:
            self._events.run_event(run, EventKind.PHASE_SKIPPED, f"{ref.phase.name}: before --start-at-phase",
                                   phase=ref.phase.name)
        return self._drive(run, start, Stage.BEFORE)

    def _guarded(self, run: RunState, body: Callable[[], RunResult], *, fresh: bool) -> RunResult:
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
            self._events.run_event(run, EventKind.RUN_END, reason, {"status": RunStatus.FAILED.value})
            raise
        finally:
            if run.lock is not None:
                run.lock.release()

    def _drive(self, run: RunState, start: int, stage: Stage) -> RunResult:
        self.store.set_status(run.id, RunStatus.RUNNING, fingerprint={})  # a pause's fingerprint is spent
        try:
            for ref in run.phases[start:]:
                self._phase(run, ref, stage if ref.index == start else Stage.BEFORE)
                if ref.phase.name == run.options.stop_after_phase:
                    break
        except RunStopped as stop:
            return self._result(run, stop.status, stop.reason)
        self.store.set_status(run.id, RunStatus.COMPLETED)
        return self._result(run, RunStatus.COMPLETED, "")

    def _result(self, run: RunState, status: RunStatus, reason: str) -> RunResult:
        record = self.store.get_run(run.id)
        self._events.run_event(run, EventKind.RUN_END, reason or status.value,
                               {"status": status.value, "counts": {k.value: v for k, v in run.counts.items()}})
        return RunResult(run.id, run.spec.name, status, record.current_phase, reason, dict(run.counts))

    # phases -------------------------------------------------------------------------------------------
    def _phase(self, run: RunState, ref: PhaseRef, stage: Stage) -> None:
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
        record_position(self.store, run, ref, Stage.AFTER)
        if phase.pause_after and run.acknowledged != (ref.index, Stage.AFTER) and run.options.attended:
            self._pause(run, ref, Stage.AFTER, _gate_text(phase.pause_after, f"pause after phase {phase.name}"))
        record_position(self.store, run, ref, Stage.DONE)
        self._events.run_event(run, EventKind.PHASE_END, phase.name, phase=phase.name)

    def _phase_selected(self, run: RunState, ref: PhaseRef) -> bool:
        phase, variables = ref.phase, phase_variables(run, ref)
        if not Templar(variables).evaluate(phase.when, location=phase.locations.get("when", phase.location)):
            reason = "its `when` condition is false"
        elif not phase_tags_selected(phase, run.options.tags, run.options.skip_tags):
            reason = "no task matches --tags/--skip-tags"
        else:
            return True
        self._events.run_event(run, EventKind.PHASE_SKIPPED, f"{phase.name}: {reason}", phase=phase.name)
        return False

    def _before(self, run: RunState, ref: PhaseRef) -> None:
        phase = ref.phase
        if ref.index == 0 or ref.play is not run.phases[ref.index - 1].play:
            self._events.run_event(run, EventKind.PLAY_START, ref.play.name, {"hosts": ref.play.hosts})
        record_position(self.store, run, ref, Stage.BEFORE)
        if not run.options.check:
            self.store.save_vars(run.id, f"{ref.index}:start", run.facts)
        self._events.run_event(run, EventKind.PHASE_START, phase.name,
                               {"index": ref.index + 1, "total": len(run.phases)}, phase=phase.name)
        if phase.pause_before and run.acknowledged != (ref.index, Stage.BEFORE) and run.options.attended:
            self._pause(run, ref, Stage.BEFORE, _gate_text(phase.pause_before, f"pause before phase {phase.name}"))
        if phase.checkpoint.preflight:
            verdicts = self._run_checks(run, ref, phase.checkpoint.preflight, preflight=True)
            decision, reason = decide(verdicts, phase.checkpoint)
            if decision is not Decision.CONTINUE and run.options.attended:
                self._pause(run, ref, Stage.BEFORE, "preflight " + reason)
        self._gate(run, ref)

    def _gate(self, run: RunState, ref: PhaseRef) -> None:
        if self.phase_gate is None:
            return
        request = PhaseGateRequest(run.id, run.reader, run.playbook, ref.phase, ref.index,
                                   phase_variables(run, ref), run.acknowledged == (ref.index, Stage.BEFORE),
                                   dict(run.facts))
        reason = self.phase_gate(request)
        if reason and run.options.attended:
            self._pause(run, ref, Stage.BEFORE, reason)

    def _tasks(self, run: RunState, ref: PhaseRef) -> None:
        phase = ref.phase
        record_position(self.store, run, ref, Stage.TASKS)
        batches = phase_batches(phase, Templar(phase_variables(run, ref)))
        failures: list[TaskFailure] = []
        for number, items in enumerate(batches):
            if run.lock is not None:
                run.lock.renew_if_due()
            if items is not None:
                self._events.run_event(run, EventKind.BATCH_START, f"batch {number + 1}/{len(batches)}",
                                       {"done": number, "total": len(batches), "items": [str(i) for i in items]},
                                       phase=phase.name)
            failure = self._batch(run, ref, number, items)
            if failure is not None:
                failures.append(failure)
                if len(failures) * 100 / len(batches) > (phase.max_fail_percentage or 0):
                    self._task_failure(run, ref, failures)
        if not run.options.check:
            self.store.save_vars(run.id, f"{ref.index}:end", run.facts)

    def _batch(self, run: RunState, ref: PhaseRef, number: int, items: list[Any] | None) -> TaskFailure | None:
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

    def _task_runner(self, run: RunState, ref: PhaseRef, number: int, items: list[Any] | None) -> TaskRunner:
        layers = phase_layers(run, ref)
        if items is not None:
            layers[Scope.LOOP] = [{BATCH_VAR: items}]
        origin = ChangeOrigin(ref.index, ref.phase.name, number, "", "")
        executor = ChangeExecutor(run.reader, self.store, run.id,
                                  on_applied=lambda ch, written: self._events.change(run, ref, ch, written))
        return TaskRunner(
            cluster=run.reader, store=self.store, run_id=run.id, origin=origin,
            scope=VarLayers(layers, run.facts), emit=self._events.task_emitter(run, ref),
            options=TaskOptions(run.options.check, run.options.diff, run.options.tags, run.options.skip_tags,
                                simulate=run.options.simulate),
            executor=executor, base_dir=run.playbook.path.parent,
            records={} if run.options.check else self.store.task_records(run.id),
            role_layers=lambda task: role_layers(run, task),
        )

    def _task_failure(self, run: RunState, ref: PhaseRef, failures: Sequence[TaskFailure]) -> None:
        phase = ref.phase
        reason = "; ".join(str(f) for f in failures)
        if run.options.check:
            raise RunStopped(RunStatus.FAILED, reason)
        policy = phase.on_failure or phase.checkpoint.on_failure
        if policy is OnFailure.ROLLBACK:
            self._rollback(run, ref, reason)
        for failure in failures:
            for key in failure.keys:
                self.store.forget_tasks(run.id, key)
        self._pause(run, ref, Stage.TASKS, reason)

    def _checkpoint(self, run: RunState, ref: PhaseRef) -> None:
        phase = ref.phase
        record_position(self.store, run, ref, Stage.CHECKPOINT)
        # The checkpoint judges the cluster as the phase left it. Controllers create and change objects
        # of kinds the phase never wrote (a DaemonSet's pods), so lists cached earlier in the phase are stale.
        run.reader.new_phase()
        if not phase.checkpoint.checks:
            return
        if run.options.check:
            self._events.run_event(run, EventKind.CHECKPOINT_DECISION, "checks are not run in check mode",
                                   {"decision": "skipped"}, phase=phase.name)
            return
        verdicts = self._run_checks(run, ref, phase.checkpoint.checks, preflight=False)
        self.store.save_verdicts(run.id, ref.index, verdicts)
        run.last_checkpoint = ref.index
        decision, reason = decide(verdicts, phase.checkpoint)
        self._events.run_event(run, EventKind.CHECKPOINT_DECISION, reason or "checkpoint passed",
                               {"decision": decision.value}, phase=phase.name)
        if run.options.simulate:
            return  # predicted outcome only: a simulation never stops at a checkpoint
        if decision is Decision.ROLLBACK:
            self._rollback(run, ref, reason)
        if decision is Decision.PAUSE:
            self._pause(run, ref, Stage.CHECKPOINT, reason)

    def _run_checks(self, run: RunState, ref: PhaseRef, checks: Sequence[CheckSpec], *,
                    preflight: bool) -> list[Verdict]:
        phase = ref.phase
        self._events.run_event(run, EventKind.CHECKPOINT_START, "preflight" if preflight else "checkpoint",
                               {"checks": len(checks)}, phase=phase.name)
        env = CheckEnv(run.reader, phase_variables(run, ref), run.baseline, run.spec.prometheus_url,
                       dt.datetime.now(dt.UTC))
        verdicts: list[Verdict] = []
        for number, spec in enumerate(checks):
            verdict = run_check(spec, env)
            verdicts.append(verdict)
            self._events.run_event(run, EventKind.CHECK_RESULT, verdict.summary,
                                   {"status": verdict.status.value, "title": verdict.title, "hint": verdict.hint,
                                    "done": number + 1, "total": len(checks)}, phase=phase.name, task=verdict.title)
        return verdicts

    # pause, rollback ----------------------------------------------------------------------------------
    def _pause(self, run: RunState, ref: PhaseRef, stage: Stage, reason: str) -> None:
        record_position(self.store, run, ref, stage)
        prints = pause_fingerprint(self.store, run)
        self.store.set_status(run.id, RunStatus.PAUSED, reason=reason, fingerprint=prints)
        self._events.run_event(run, EventKind.PAUSED, reason, {"stage": stage.value}, phase=ref.phase.name)
        raise RunStopped(RunStatus.PAUSED, reason)

    def _rollback(self, run: RunState, ref: PhaseRef, reason: str) -> None:
        self._undo_phase(run.id, run.cluster, ref.index, ref.phase.name)
        record_position(self.store, run, ref, Stage.BEFORE)
        self.store.set_status(run.id, RunStatus.ROLLED_BACK, reason=reason)
        raise RunStopped(RunStatus.ROLLED_BACK, reason)

    def _undo_phase(self, run_id: str, cluster: Cluster, index: int, name: str) -> list[Change]:
        record = self.store.get_run(run_id)
        events = self._events
        events.emit(run_id, record.cluster, EventKind.ROLLBACK_START, f"rolling back phase {name}", phase=name)

        def undone(change: Change) -> None:
            events.emit(run_id, record.cluster, EventKind.ROLLBACK_CHANGE, f"{change.kind.value} {change.ref}",
                        phase=name, data={"ref": str(change.ref), "change": change.kind.value})

        return PhaseRollback(cluster, self.store, run_id, on_undo=undone).run(index)

    # resume -------------------------------------------------------------------------------------------
    def _resume(self, run: RunState, at_phase: str | None, accept_drift: bool) -> RunResult:
        record = run.record
        self.store.set_status(run.id, RunStatus.RUNNING)
        if at_phase is not None:
            return self._restart_at(run, start_index(run.phases, at_phase))
        run.facts = resume_facts(self.store, record)
        if record.status is RunStatus.PAUSED:
            run.last_checkpoint = int(record.fingerprint.get("checkpoint", -1))
            try:
                DriftCheck(self.store, self._events, self._recheck).verify(run, record, accept_drift)
            except RunStopped as stop:
                return self._result(run, stop.status, stop.reason)
        point = ResumePoint.of(record)
        run.acknowledged = point.acknowledged
        return self._drive(run, point.index, point.stage)

    def _recheck(self, run: RunState, ref: PhaseRef) -> list[Verdict]:
        """Run the checkpoint checks of phase ``ref`` again (to compare them with the pause)."""
        return self._run_checks(run, ref, ref.phase.checkpoint.checks, preflight=False)

    def _restart_at(self, run: RunState, index: int) -> RunResult:
        """Run phase ``index`` again from its start (its tasks forgotten, its pause_before passed)."""
        for ref in run.phases[index:]:
            self.store.forget_tasks(run.id, f"{ref.index}/")
        run.facts = restart_facts(self.store, run.id, index)
        run.acknowledged = (index, Stage.BEFORE)
        return self._drive(run, index, Stage.BEFORE)

    # helpers ------------------------------------------------------------------------------------------
    def _specs(self, record: RunRecord, options: RunOptions, playbook: PlaybookSpec | None,
               inventory: InventorySpec | None) -> tuple[PlaybookSpec, InventorySpec]:
        if playbook is None or inventory is None:
            playbook = playbook or load_playbook(Path(record.playbook), catalog=catalog())
            inventory = inventory or load_inventory(Path(record.inventory), extra_vars=dict(options.extra_vars))
        return playbook, inventory

    def _state(self, record: RunRecord, playbook: PlaybookSpec, inventory: InventorySpec, cluster: Cluster,
               options: RunOptions) -> RunState:
        spec = inventory.clusters[record.cluster]
        stored = self.store.baseline(record.id)
        reader = CachingCluster(cluster, enabled=not options.simulate)  # a simulation is memory already
        return RunState(record, playbook, inventory, spec, cluster, reader, options,
                        phases_for(playbook, inventory, spec.name),
                        baseline=Baseline.from_dict(stored) if stored else None)


def _gate_text(value: bool | str, default: str) -> str:
    return value if isinstance(value, str) else default
