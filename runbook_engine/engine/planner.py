"""The dry-run planner: what every phase of a playbook would change and break, before anything changes.

``plan_cluster`` snapshots the live cluster once (``engine.simulation``: one list per kind) and
runs the playbook through the *same* runner as ``runbook run``, in ``simulate`` mode, against that
snapshot: actions plan from it and the executor writes to it, so each phase is planned against the
state the earlier phases leave. Around every phase the simulation's state is indexed as a
``MeshView`` (workloads rolled in this or an earlier phase are predicted from their new pod
template), and for each phase the plan holds:

- the objects created, updated, deleted and restarted, with unified diffs (Secret data masked) —
  from the API server's ``dryRun=All`` answer where it can judge the object (``plan_objects``);
- the workloads that restart and their pod counts;
- every flow's predicted outcome before and after the phase with the reason chain
  (``mesh.evaluate_flow``): the inventory's flows, flows seen in Istio/Linkerd telemetry when the
  cluster has a Prometheus URL (``telemetry_flows``), and the non-mesh callers the platform implies
  (the API server for admission webhooks, kubelet probes, the metrics scraper), de-duplicated;
- the checkpoint's checks as they would conclude on the simulated state; flows a check would observe
  with probe pods are judged by the same predictions, and marked so.

``PlanGate`` plugs the planner into ``runbook run``: before a phase writes anything it re-plans that
phase against the live cluster and pauses the run when a flow is predicted to break that neither the
phase's ``accept:`` nor ``--accept-risk`` names.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from runbook_engine.bulk import gc_paused
from runbook_engine.checks.baseline import baseline_of
from runbook_engine.checks.live import VIEW_KINDS, control_plane_namespaces
from runbook_engine.checks.reachability import expected
from runbook_engine.engine.checkpoint import decide
from runbook_engine.engine.connect import ClusterConnector, fixed_connector
from runbook_engine.engine.events import Event, EventKind
from runbook_engine.engine.journal import RunRecord, RunStore
from runbook_engine.engine.phases import PhaseRef, phases_for, target_clusters
from runbook_engine.engine.plan_model import (
    CheckBasis,
    CheckPlan,
    FlowOrigin,
    FlowPlan,
    PhasePlan,
    PhaseStatus,
    Plan,
)
from runbook_engine.engine.plan_objects import DryRuns, Folded, fold, object_plans, restarted_workloads
from runbook_engine.engine.run_model import PhaseGateRequest, RunOptions, RunResult
from runbook_engine.engine.runner import Engine
from runbook_engine.engine.simulation import PlanCluster, Write, snapshot
from runbook_engine.engine.telemetry_flows import telemetry_flows
from runbook_engine.errors import RunbookError, UserInputError
from runbook_engine.kube.cluster import Cluster, Obj
from runbook_engine.kube.flow import Flow, Outcome
from runbook_engine.kube.refs import ObjectRef
from runbook_engine.mesh import FlowResult, MeshView, Predictions, implied_flows, implied_inputs
from runbook_engine.report.verdict import Status, Verdict
from runbook_engine.spec.inventory import load_inventory
from runbook_engine.spec.model import InventorySpec, PhaseSpec, PlaybookSpec

DEFAULT_TELEMETRY_HOURS = 24
_FlowKey = tuple[str, str, str]
Progress = Callable[[str], None]  # "cluster lab: simulating phase 2/5 (inject)", for a status line


@dataclass(frozen=True)
class PlanOptions:
    """What to plan: ``runbook plan``'s options."""

    phase: str | None = None  # report only this phase (earlier phases are still simulated)
    tags: frozenset[str] = frozenset()
    skip_tags: frozenset[str] = frozenset()
    extra_vars: Mapping[str, Any] = field(default_factory=dict)
    limit: str | None = None
    accept_risk: frozenset[str] = frozenset()  # flow ids whose predicted break is accepted
    telemetry_hours: int = DEFAULT_TELEMETRY_HOURS
    dry_run: bool = True  # ask the API server (dryRun=All) for the diffs it can judge
    workers: int = 4  # parallel dry-run requests
    progress: Progress = field(default=lambda step: None, compare=False)  # told each step as it starts


# -- states of the simulation ----------------------------------------------------------------------------
class State:
    """The simulated platform at one phase boundary, with its flow predictions cached.

    ``previous`` is the state the simulation passed through just before: a flow whose every input is
    equal in both states keeps its prediction (``mesh.Predictions`` says which inputs, and why that is
    all of them), and the implied flows are kept when ``mesh.implied_inputs`` are equal."""

    def __init__(self, view: MeshView, previous: State | None = None) -> None:
        self.view = view
        self.predictions: Predictions = Predictions(view, previous.predictions if previous is not None else None)
        self._previous = previous
        self._implied: list[Flow] | None = None
        self._implied_inputs: tuple[Any, ...] = ()

    def result(self, flow: Flow) -> FlowResult:
        return self.predictions.result(flow)

    def implied(self) -> list[Flow]:
        """Non-mesh callers the platform implies; a caller that is a workload must exist (a scrape job
        without a Prometheus to run it calls nothing)."""
        if self._implied is None:
            self._implied_inputs = implied_inputs(self.view)
            previous = self._previous
            if previous is not None and previous._implied is not None \
                    and previous._implied_inputs == self._implied_inputs:
                self._implied = previous._implied
            else:
                self._implied = [f for f in implied_flows(self.view)
                                 if f.source_namespace is None
                                 or self.view.workload(f.source_namespace, str(f.source_workload)) is not None]
        return self._implied


def mesh_objects(cluster: PlanCluster) -> list[Obj]:
    """What the mesh view indexes (as ``checks.live.live_objects`` reads it), without copying the objects."""
    objects = [o for api_version, kind in VIEW_KINDS for o in cluster.shared(api_version, kind)]
    namespaces = control_plane_namespaces([o for o in objects if o.get("kind") == "Deployment"])
    return objects + [o for ns in sorted(namespaces) for o in cluster.shared("v1", "ConfigMap", ns)]


@dataclass
class Boundaries:
    """The simulation's event sink: records the state before and after each phase, and skipped phases."""

    cluster: PlanCluster
    phases: Sequence[PhaseRef]
    dry: DryRuns  # where each finished phase's dry runs go, answered while the simulation goes on
    progress: Progress
    before: dict[int, State] = field(default_factory=dict)
    after: dict[int, State] = field(default_factory=dict)
    skipped: dict[int, str] = field(default_factory=dict)
    restarted: set[str] = field(default_factory=set)
    current: int = -1
    _folded: dict[int, list[Folded]] = field(default_factory=dict)
    _touched: set[ObjectRef] = field(default_factory=set)
    _state: State | None = None
    _state_key: tuple[int, int] = (-1, -1)

    def __call__(self, event: Event) -> None:
        if event.kind is EventKind.PHASE_START:
            self.current = int(event.data.get("index", 0)) - 1
            self.progress(f"simulating phase {self.current + 1}/{len(self.phases)} ({event.phase})")
            self.cluster.phase = self.current
            self.cluster.rolling_back = False
            self.before[self.current] = self.state()
        elif event.kind is EventKind.PHASE_END:
            self.restarted.update(r.workload for r in restarted_workloads(
                self.folded(self.current), self.before[self.current].view))
            self.after[self.current] = self.state()
        elif event.kind is EventKind.PHASE_SKIPPED:
            self.skipped[self._index_of(event.phase)] = event.message
        elif event.kind is EventKind.ROLLBACK_START:
            self.cluster.rolling_back = True

    def state(self) -> State:
        """The current state (re-indexed only when the simulation wrote or rolled something since)."""
        key = (self.cluster.writes, len(self.restarted))
        if self._state is None or key != self._state_key:
            self._state = State(MeshView.build(mesh_objects(self.cluster), restarted=self.restarted), self._state)
            self._state_key = key
        return self._state

    def writes(self, index: int) -> list[Write]:
        return [w for w in self.cluster.log if w.phase == index]

    def folded(self, index: int) -> list[Folded]:
        """A phase's writes folded per object, once the phase is over (it writes nothing after its end);
        the first call sends the phase's dry runs, given what earlier phases touched, in phase order."""
        found = self._folded.get(index)
        if found is None:
            found = self._folded[index] = fold(self.writes(index))
            self.dry.submit(index, found, set(self._touched))
            self._touched.update(e.ref for e in found)
        return found

    def _index_of(self, name: str) -> int:
        return next((r.index for r in self.phases if r.phase.name == name and r.index not in self.skipped), -1)


# -- flows ------------------------------------------------------------------------------------------------
def _key(flow: Flow) -> _FlowKey:
    return (flow.source, flow.to, flow.protocol.value)


def declared_flows(inventory: InventorySpec, cluster: str, prometheus_url: str | None, view: MeshView,
                   hours: int) -> list[tuple[Flow, FlowOrigin]]:
    """The inventory's flows, then those telemetry saw that the inventory does not declare."""
    flows = [(f, FlowOrigin.INVENTORY) for f in inventory.flows_for(cluster)]
    if prometheus_url:
        flows += [(f, FlowOrigin.TELEMETRY) for f in telemetry_flows(prometheus_url, view, hours=hours)]
    return _unique(flows)


def _unique(flows: Iterable[tuple[Flow, FlowOrigin]]) -> list[tuple[Flow, FlowOrigin]]:
    seen: dict[_FlowKey, tuple[Flow, FlowOrigin]] = {}
    for flow, origin in flows:
        seen.setdefault(_key(flow), (flow, origin))
    return list(seen.values())


def accepted(flow: Flow, accepts: Iterable[str]) -> bool:
    """Whether ``accepts`` (phase ``accept:`` and ``--accept-risk``) names the flow, by id or ``from -> to``."""
    names = set(accepts)
    return flow.id in names or f"{flow.source} -> {flow.to}" in names


def flow_plans(declared: Sequence[tuple[Flow, FlowOrigin]], before: State, after: State,
               accepts: Iterable[str]) -> list[FlowPlan]:
    """Every flow's outcome before and after a phase (implied non-mesh callers of both states included)."""
    implied = [(f, FlowOrigin.IMPLIED) for f in (*before.implied(), *after.implied())]
    accepts = frozenset(accepts)
    plans: list[FlowPlan] = []
    for flow, origin in _unique([*declared, *implied]):
        old, new = before.result(flow), after.result(flow)
        changed = old.outcome is not new.outcome  # an unchanged outcome breaks nothing
        breaks = changed and expected(flow, old.outcome) and not expected(flow, new.outcome)
        reasons = tuple(new.reasons) if changed else ()
        plans.append(FlowPlan(flow, origin, old.outcome, new.outcome, breaks,
                              breaks and accepted(flow, accepts), reasons))
    return plans


# -- checks -----------------------------------------------------------------------------------------------
def _rejudged(verdict: Verdict, predicted: Mapping[str, FlowPlan]) -> CheckPlan | None:
    """A flow check's verdict with every flow it names judged by the planner's prediction."""
    entries = verdict.data.get("flows") if isinstance(verdict.data, Mapping) else None
    if not isinstance(entries, list) or not entries:
        return None
    wrong: list[str] = []
    unknown: list[str] = []
    for entry in entries:
        flow_id, want = str(entry.get("flow", "")), str(entry.get("expected") or Outcome.OK.value)
        plan = predicted.get(flow_id)
        if plan is None and entry.get("outcome") is None:
            unknown.append(flow_id)
        elif plan is not None and not expected(plan.flow.model_copy(update={"expect": want}), plan.after):
            wrong.append(f"{flow_id} ({plan.after.value}, expected {want})")
        elif plan is None and not entry.get("as_expected"):
            wrong.append(f"{flow_id} ({entry.get('outcome')}, expected {want})")
    if wrong:
        return CheckPlan(verdict.title, verdict.check, Status.FAIL, "predicted: " + "; ".join(wrong),
                         CheckBasis.PREDICTED)
    if unknown:
        return CheckPlan(verdict.title, verdict.check, Status.NO_DATA, "cannot predict: " + ", ".join(unknown),
                         CheckBasis.PREDICTED)
    return CheckPlan(verdict.title, verdict.check, Status.PASS, f"predicted: {len(entries)} flows as expected",
                     CheckBasis.PREDICTED)


def check_plans(verdicts: Sequence[Verdict], flows: Sequence[FlowPlan]) -> list[CheckPlan]:
    predicted = {f.flow.id: f for f in flows}
    plans: list[CheckPlan] = []
    for verdict in verdicts:
        rejudged = _rejudged(verdict, predicted)
        plans.append(rejudged or CheckPlan(verdict.title, verdict.check, verdict.status, verdict.summary,
                                           CheckBasis.OBJECTS))
    return plans


def predicted_decision(phase: PhaseSpec, verdicts: Sequence[Verdict], checks: Sequence[CheckPlan]) -> str:
    """What the phase's checkpoint policy would decide on the predicted verdicts ("" without checks)."""
    if not verdicts:
        return ""
    predicted = [replace(v, status=c.status, summary=c.summary) for v, c in zip(verdicts, checks, strict=True)]
    return decide(predicted, phase.checkpoint)[0].value


# -- one cluster ----------------------------------------------------------------------------------------
@dataclass
class _Context:
    """What building each phase's plan needs from the simulation."""

    sim: Boundaries
    store: RunStore
    run: RunResult
    declared: list[tuple[Flow, FlowOrigin]]
    options: PlanOptions


def _phase_plan(ctx: _Context, ref: PhaseRef) -> PhasePlan:
    index, phase = ref.index, ref.phase
    entries = ctx.sim.folded(index)
    if index in ctx.sim.skipped:
        return PhasePlan(phase.name, index, PhaseStatus.SKIPPED, ctx.sim.skipped[index])
    before, after = ctx.sim.before.get(index), ctx.sim.after.get(index)
    if before is None:
        return PhasePlan(phase.name, index, PhaseStatus.NOT_REACHED, "an earlier phase stopped the simulation")
    stopped = after is None
    after = after or ctx.sim.state()
    flows = flow_plans(ctx.declared, before, after, (*phase.accept, *ctx.options.accept_risk))
    answers = ctx.sim.dry.results(index)
    verdicts = ctx.store.verdicts(ctx.run.run_id, index)
    checks = check_plans(verdicts, flows)
    return PhasePlan(phase.name, index, PhaseStatus.STOPPED if stopped else PhaseStatus.PLANNED,
                     ctx.run.reason if stopped else "", tuple(object_plans(entries, answers)),
                     tuple(restarted_workloads(entries, before.view)), tuple(flows), tuple(checks),
                     predicted_decision(phase, verdicts, checks))


def _phase_plans(ctx: _Context, phases: Sequence[PhaseRef]) -> list[PhasePlan]:
    """Every phase's plan; the dry runs of phases the simulation did not finish are sent first."""
    for ref in phases:
        ctx.sim.folded(ref.index)
    plans: list[PhasePlan] = []
    for ref in phases:
        ctx.options.progress(f"predicting flows and diffs of phase {ref.index + 1}/{len(ctx.sim.phases)} "
                             f"({ref.phase.name})")
        plans.append(_phase_plan(ctx, ref))
    return plans


def _requests(cluster: Cluster) -> Counter[str]:
    inner = getattr(cluster, "uncached", cluster)
    counted = getattr(inner, "requests", None)
    return Counter(counted) if isinstance(counted, Counter) else Counter()


def _simulate(sim_cluster: PlanCluster, playbook: PlaybookSpec, inventory: InventorySpec, cluster: str,
              options: RunOptions, sink: Boundaries) -> tuple[RunStore, RunResult]:
    store = RunStore.in_memory()
    engine = Engine(store, connect=fixed_connector({cluster: sim_cluster}), sink=sink,
                    baseline=lambda _: baseline_of(sim_cluster.shared))  # read only: no copies
    [result] = engine.run(playbook, inventory, options)
    return store, result


def plan_cluster(live: Cluster, playbook: PlaybookSpec, inventory: InventorySpec, cluster: str,
                 options: PlanOptions, *, start_at: str | None = None,
                 facts: Mapping[str, Any] | None = None) -> Plan:
    """Plan ``playbook`` on the inventory cluster ``cluster``, reached as ``live`` (read only, dry runs)."""
    with gc_paused():  # a snapshot is a few million small dicts: see ``runbook_engine.bulk``
        return _plan_cluster(live, playbook, inventory, cluster, options, start_at, facts)


def _plan_cluster(live: Cluster, playbook: PlaybookSpec, inventory: InventorySpec, cluster: str,
                  options: PlanOptions, start_at: str | None, facts: Mapping[str, Any] | None) -> Plan:
    spec = inventory.clusters[cluster]
    counted, clock = _requests(live), _Clock()
    options.progress("reading the cluster (one list per kind)")
    sim_cluster = snapshot(live)
    phases = phases_for(playbook, inventory, cluster)
    _check_phase(phases, options.phase)
    with DryRuns(live if options.dry_run else None, options.workers) as dry:
        sink = Boundaries(sim_cluster, phases, dry, options.progress)  # a DryRuns without a cluster sends nothing
        declared = declared_flows(inventory, cluster, spec.prometheus_url, sink.state().view,
                                  options.telemetry_hours)
        clock.lap("snapshot")
        run_options = RunOptions(simulate=True, tags=options.tags, skip_tags=options.skip_tags,
                                 start_at_phase=start_at, stop_after_phase=options.phase, limit=cluster,
                                 extra_vars={**(facts or {}), **options.extra_vars})
        store, result = _simulate(sim_cluster, playbook, inventory, cluster, run_options, sink)
        clock.lap("simulation")
        try:
            first = next((r.index for r in phases if r.phase.name == start_at), 0)
            plans = _phase_plans(_Context(sink, store, result, declared, options), phases[first:])
        finally:
            store.close()
    clock.lap("phases")
    if options.phase is not None:
        plans = [p for p in plans if p.name == options.phase]
    flows = len({_key(f.flow) for p in plans for f in p.flows}) or len(declared)
    return Plan(cluster, str(playbook.path), tuple(plans), flows, dict(_requests(live) - counted), clock.laps)


class _Clock:
    """Wall-clock laps of the planning steps."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 3)
        self._last = now


def _check_phase(phases: Sequence[PhaseRef], name: str | None) -> None:
    if name is not None and all(r.phase.name != name for r in phases):
        raise UserInputError(f"no phase named {name!r}", hint="phases: " + ", ".join(repr(r.phase.name)
                                                                                     for r in phases))


class Planner:
    """Plans a playbook on every cluster it addresses, connecting through ``connect``."""

    def __init__(self, connect: ClusterConnector) -> None:
        self.connect = connect

    def plan(self, playbook: PlaybookSpec, inventory: InventorySpec, options: PlanOptions) -> list[Plan]:
        clusters = target_clusters(playbook, inventory, options.limit)
        if not clusters:
            raise UserInputError("no cluster of the inventory matches the plays' hosts and --limit",
                                 hint="check `hosts:` in the playbook and the --limit value")
        plans: list[Plan] = []
        for name in clusters:
            told = replace(options, progress=_naming(name, options.progress))
            told.progress("connecting")
            with self.connect(inventory.clusters[name]) as live:
                plans.append(plan_cluster(live, playbook, inventory, name, told))
        return plans


def _naming(cluster: str, progress: Progress) -> Progress:
    return lambda step: progress(f"cluster {cluster}: {step}")


# -- gating a real run -------------------------------------------------------------------------------------
def breaking_reason(phase: PhaseSpec, plan: PhasePlan) -> str | None:
    """The paused reason for a phase whose plan breaks flows nobody accepted (None when it breaks none)."""
    breaking = plan.breaking
    if not breaking:
        return None
    lines = [f"{f.flow.id}: {f.transition} ({'; '.join(f.reasons)})" for f in breaking]
    return (f"phase {phase.name!r} is predicted to break {len(breaking)} flow(s): " + " | ".join(lines)
            + " — fix the cause, or accept deliberately with the phase's `accept:` or --accept-risk FLOW")


@dataclass(frozen=True)
class PlanGate:
    """The runner's ``PhaseGate``: re-plans each phase just before it runs and pauses on unaccepted breaks.

    Breaks named by the phase's ``accept:`` or the run's ``--accept-risk`` (``RunOptions.accept_risk``)
    do not stop the run. A phase the operator resumed at is not re-planned: resuming there is the
    deliberate decision. When the planner itself fails, the run pauses too (fail closed) and says why."""

    inventory: InventorySpec
    options: RunOptions
    dry_run: bool = False  # the gate needs outcomes, not server diffs

    @classmethod
    def for_run(cls, record: RunRecord) -> PlanGate:
        """The gate of a journaled run (for ``resume``): its inventory and options as the run recorded them."""
        options = RunOptions.from_dict(record.options)
        return cls(load_inventory(Path(record.inventory), extra_vars=dict(options.extra_vars)), options)

    def __call__(self, request: PhaseGateRequest) -> str | None:
        if request.resumed:
            return None
        cluster = str(request.variables.get("inventory_hostname") or request.cluster.name)
        options = PlanOptions(phase=request.phase.name, tags=self.options.tags, skip_tags=self.options.skip_tags,
                              extra_vars=self.options.extra_vars, accept_risk=self.options.accept_risk,
                              dry_run=self.dry_run)
        try:
            plan = plan_cluster(request.cluster, request.playbook, self.inventory, cluster, options,
                                start_at=request.phase.name, facts=request.facts)
        except RunbookError as exc:
            return f"could not predict the impact of phase {request.phase.name!r}: {exc}"
        phases = [p for p in plan.phases if p.index == request.index]
        return breaking_reason(request.phase, phases[0]) if phases else None
