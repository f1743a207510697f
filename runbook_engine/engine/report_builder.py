"""Turning a run's journal into its verification report (``report.model.RunReport``).

The journal says where the run stands (status, phase pointer, pause reason), what each phase
changed and what each checkpoint concluded. The *platform picture* — which workloads of the rollout's
namespaces are meshed, excluded or not meshed yet, the mesh-wide mTLS mode, and what each declared
flow does — needs the cluster: it is observed while the run's cluster is connected (at every pause
and at the end of a run) and kept in the journal, so ``runbook report RUN_ID`` reproduces the same
picture later from the journal alone.

Flow outcomes prefer what a check observed (the ``flows_reachable`` and ``controls_unaffected``
checks put per-flow outcomes in ``Verdict.data``) over what the mesh rules predict from the live
objects; predicted outcomes say so in their reasons.

Variables read (the same names the inventories use): ``mesh_namespaces`` and the namespaces of
``mesh_workloads``/``worker_workloads``/``ingress_workloads``/``excluded_workloads`` are in scope;
``excluded_workloads`` (``{namespace, name}`` or ``ns/name``) and ``excluded_selector`` (a label
selector on pod templates) name deliberately excluded workloads; ``control_namespaces`` are shown as
outside the rollout; ``flows`` are the declared flows; ``maintenance_window`` and ``cluster_label``
go in the header.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runbook_engine.checks.live import live_view
from runbook_engine.checks.membership import opted_out, workloads_in
from runbook_engine.engine.events import EventKind
from runbook_engine.engine.journal import ChangeState, RunRecord, RunStatus, RunStore, Stage
from runbook_engine.engine.modules import catalog
from runbook_engine.engine.phases import phases_for
from runbook_engine.engine.run_model import RunOptions
from runbook_engine.errors import RunbookError
from runbook_engine.kube.cluster import Cluster
from runbook_engine.kube.flow import Flow, Outcome
from runbook_engine.kube.redact import is_secret, redact_text, secret_values
from runbook_engine.kube.selectors import parse_selector
from runbook_engine.mesh import Mesh, MeshView, ProxyForm, Workload, evaluate_flow, workload_enrolment
from runbook_engine.mesh.model import age_key
from runbook_engine.report.model import FlowRow, Membership, PhaseReport, PhaseStatus, RunReport, WorkloadRow
from runbook_engine.report.verdict import Verdict
from runbook_engine.spec.inventory import load_inventory
from runbook_engine.spec.loader import load_playbook
from runbook_engine.spec.model import InventorySpec, PlaybookSpec
from runbook_engine.spec.templating import Templar
from runbook_engine.spec.vars import Scope, merge_scopes

#: The journal slot (``RunStore.save_vars``) holding the platform picture observed at the last stop.
PLATFORM_SLOT = "report:platform"
#: Secret values shorter than this are not masked by value: ``true`` or a user name such as ``postgres``
#: would be masked wherever the word appears. Credentials, tokens and keys are masked by pattern anyway.
MIN_MASKED_LENGTH = 12
SCOPE_LISTS = ("mesh_workloads", "worker_workloads", "ingress_workloads", "excluded_workloads")
_FINISHED = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.ROLLED_BACK)
_FORM_TEXT = {ProxyForm.NATIVE_SIDECAR: "native sidecar", ProxyForm.CONTAINER: "sidecar container",
              ProxyForm.AMBIENT: "ambient (ztunnel)"}
_PREDICTED = "predicted"  # reachability's ``How.PREDICTED``: the check did not exercise the flow
_CHANGE_EVENTS = frozenset({EventKind.CHANGE.value, EventKind.ROLLBACK_CHANGE.value})


# -- what the run is about ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReportContext:
    """What the journal does not hold: the playbook's phases and the run's variables (inventory, play, -e)."""

    phases: tuple[str, ...] = ()
    play: str = ""
    variables: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, playbook: PlaybookSpec | None, inventory: InventorySpec | None, cluster: str,
           variables: Mapping[str, Any] | None = None) -> ReportContext:
        """The context of a run on ``cluster``; ``variables`` default to inventory + play vars."""
        if variables is None:
            variables = _static_vars(playbook, inventory, cluster)
        if playbook is None or not playbook.plays:
            return cls((), "", variables)
        if inventory is None:
            return cls(tuple(ph.name for play in playbook.plays for ph in play.phases), playbook.plays[0].name,
                       variables)
        refs = phases_for(playbook, inventory, cluster)
        play = refs[0].play.name if refs else playbook.plays[0].name
        return cls(tuple(ref.phase.name for ref in refs), play, variables)

    def rendered(self, name: str, default: Any = None) -> Any:
        """Variable ``name`` with its templates rendered (``default`` when unset)."""
        if name not in self.variables:
            return default
        return Templar(self.variables).render(self.variables[name])


def _static_vars(playbook: PlaybookSpec | None, inventory: InventorySpec | None, cluster: str) -> dict[str, Any]:
    layers: dict[Scope, list[Mapping[str, Any]]] = {}
    if inventory is not None and cluster in inventory.clusters:
        layers[Scope.INVENTORY] = [inventory.clusters[cluster].vars]
    if playbook is not None and playbook.plays:
        layers[Scope.PLAY] = [playbook.plays[0].vars]
    return merge_scopes(layers)


def load_context(record: RunRecord) -> ReportContext:
    """The context of a journaled run, read from its playbook and inventory files.

    A playbook or inventory that can no longer be read (moved, edited into an invalid state) leaves
    the phases to the journal's events and the variables to what could be read: the report still
    shows what ran.
    """
    extra = dict(RunOptions.from_dict(record.options).extra_vars)
    try:
        inventory: InventorySpec | None = load_inventory(Path(record.inventory), extra_vars=extra)
    except (RunbookError, OSError):
        inventory = None
    try:
        playbook: PlaybookSpec | None = load_playbook(Path(record.playbook), catalog=catalog())
    except (RunbookError, OSError):
        playbook = None
    variables = merge_scopes({Scope.INVENTORY: [_static_vars(playbook, inventory, record.cluster)],
                              Scope.EXTRA: [extra]})
    return ReportContext.of(playbook, inventory, record.cluster, variables)


# -- the platform picture ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlatformScope:
    """Which namespaces the rollout covers, which workloads stay out on purpose, which namespaces are controls."""

    namespaces: tuple[str, ...] = ()
    control_namespaces: tuple[str, ...] = ()
    excluded: frozenset[str] = frozenset()  # "ns/name" or "name"
    excluded_selector: str = ""

    @classmethod
    def from_context(cls, context: ReportContext) -> PlatformScope:
        namespaces = list(_strings(context.rendered("mesh_namespaces", [])))
        for var in SCOPE_LISTS:
            namespaces += [ns for ns in (_workload_namespace(e) for e in _items(context.rendered(var, []))) if ns]
        excluded = frozenset(_workload_key(e) for e in _items(context.rendered("excluded_workloads", [])))
        return cls(tuple(dict.fromkeys(namespaces)), tuple(_strings(context.rendered("control_namespaces", []))),
                   excluded - {""}, str(context.rendered("excluded_selector", "") or ""))

    def excludes(self, wl: Workload) -> bool:
        if wl.key in self.excluded or wl.name in self.excluded:
            return True
        return bool(self.excluded_selector) and parse_selector(self.excluded_selector).matches(wl.template_labels)


def _items(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _strings(value: Any) -> list[str]:
    return [str(v) for v in _items(value)]


def _workload_namespace(entry: Any) -> str:
    if isinstance(entry, Mapping):
        return str(entry.get("namespace") or "")
    return str(entry).split("/", 1)[0] if "/" in str(entry) else ""


def _workload_key(entry: Any) -> str:
    if isinstance(entry, Mapping):
        name = str(entry.get("name") or "")
        return f"{entry['namespace']}/{name}" if entry.get("namespace") and name else name
    return str(entry)


@dataclass(frozen=True)
class Platform:
    """The observed platform: mesh-wide mTLS mode, workloads by membership, flows by outcome."""

    mtls: str = ""
    workloads: tuple[WorkloadRow, ...] = ()
    flows: tuple[FlowRow, ...] = ()
    observed_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"mtls": self.mtls, "observed_at": self.observed_at,
                "workloads": [dataclasses.asdict(w) for w in self.workloads],
                "flows": [dataclasses.asdict(f) for f in self.flows]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Platform:
        workloads = tuple(WorkloadRow(w["namespace"], w["name"], w["kind"], Membership(w["membership"]), w["form"])
                          for w in d.get("workloads", ()))
        flows = tuple(FlowRow(f["flow_id"], f["source"], f["to"], f["protocol"], f["outcome"], f.get("expected"),
                              tuple(f.get("reasons", ()))) for f in d.get("flows", ()))
        return cls(str(d.get("mtls", "")), workloads, flows, str(d.get("observed_at", "")))


def mesh_wide_mtls(view: MeshView) -> str:
    """The mesh-wide mTLS mode: the root namespace's selector-less PeerAuthentication, else the mesh default.

    The oldest such policy wins and UNSET means Istio's default, PERMISSIVE
    (https://istio.io/latest/docs/reference/config/security/peer_authentication/).
    """
    root = view.mesh.root_namespace
    mesh_wide = [p for p in view.objects("PeerAuthentication", root) if not (p.get("spec") or {}).get("selector")]
    policies = sorted(mesh_wide, key=age_key)
    if policies:
        mode = str(((policies[0].get("spec") or {}).get("mtls") or {}).get("mode") or "UNSET").upper()
        return "PERMISSIVE" if mode == "UNSET" else mode
    if view.istio_revisions or view.ztunnel_installed:
        return "PERMISSIVE"  # Istio's default without a mesh-wide PeerAuthentication
    if view.linkerd.installed:
        return "Linkerd mTLS"
    return "none"


def workload_rows(view: MeshView, scope: PlatformScope) -> tuple[WorkloadRow, ...]:
    """Workloads of the in-scope namespaces by membership, then the control namespaces' as outside."""
    rows = [_classify(view, wl, scope) for wl in workloads_in(view, scope.namespaces)]
    controls = [ns for ns in scope.control_namespaces if ns not in scope.namespaces]
    rows += [WorkloadRow(wl.namespace, wl.name, wl.kind, Membership.OUTSIDE, _form(view, wl))
             for wl in workloads_in(view, controls)]
    return tuple(rows)


def _classify(view: MeshView, wl: Workload, scope: PlatformScope) -> WorkloadRow:
    enrolment = workload_enrolment(view, wl)
    if enrolment.meshed:
        membership = Membership.AMBIENT if enrolment.mesh is Mesh.ISTIO_AMBIENT else Membership.MESHED
    elif scope.excludes(wl) or opted_out(wl):
        membership = Membership.EXCLUDED
    else:
        membership = Membership.NOT_MESHED
    return WorkloadRow(wl.namespace, wl.name, wl.kind, membership, _form(view, wl))


def _form(view: MeshView, wl: Workload) -> str:
    enrolment = workload_enrolment(view, wl)
    if enrolment.meshed:
        return _FORM_TEXT.get(enrolment.form, enrolment.form.value)
    return "no proxy (restart pending)" if enrolment.needs_restart else "no proxy"


@dataclass(frozen=True)
class Observation:
    """What a check saw of one flow: its ``Verdict.data["flows"]`` entry, where, and whether it still holds."""

    entry: Mapping[str, Any]
    source: str  # "'<check title>' of phase <phase>"
    current: bool = True  # False when a change or an undo was journaled after the check ran

    @property
    def exercised(self) -> bool:
        return self.entry.get("how") != _PREDICTED

    @property
    def outcome(self) -> str:
        return str(self.entry["outcome"])

    def describe(self) -> str:
        code = str(self.entry.get("http_code") or "")
        status = f" (HTTP {code})" if code.isdigit() and code != "000" else ""
        return f"observed {self.outcome} by {self.entry.get('how') or 'a check'}{status} in check {self.source}"


def stale_checks(events: Sequence[Mapping[str, Any]]) -> set[tuple[str, str]]:
    """(phase, check title) of checks whose latest result the cluster changed after (a later change or undo)."""
    changed = [int(e["seq"]) for e in events if e["kind"] in _CHANGE_EVENTS]
    last_change = max(changed, default=-1)
    last_result = {(str(e["phase"]), str(e["task"])): int(e["seq"]) for e in events
                   if e["kind"] == EventKind.CHECK_RESULT.value}
    return {key for key, seq in last_result.items() if seq < last_change}


def observed_flows(verdicts: Iterable[tuple[Verdict, str]],
                   stale: Collection[tuple[str, str]] = ()) -> dict[str, Observation]:
    """Per flow id, the latest observation a check put in ``Verdict.data["flows"]`` (verdicts in phase order)."""
    found: dict[str, Observation] = {}
    for verdict, phase in verdicts:
        for entry in _items(verdict.data.get("flows")):
            if isinstance(entry, Mapping) and entry.get("flow") and entry.get("outcome") in set(Outcome):
                found[str(entry["flow"])] = Observation(dict(entry), f"'{verdict.title}' of phase {phase}",
                                                        (phase, verdict.title) not in stale)
    return found


def flow_rows(view: MeshView | None, flows: Sequence[Flow], observed: Mapping[str, Observation]) -> tuple[FlowRow, ...]:
    """Each declared flow as a check observed it, else as the mesh rules predict it on ``view``.

    An observation the cluster changed after is replaced by a prediction on the live objects (which
    names the old observation); without ``view`` it is shown, marked as older than the changes.
    """
    rows: list[FlowRow] = []
    for flow in flows:
        seen = observed.get(flow.id)
        exercised = seen is not None and seen.exercised
        if seen is not None and exercised and (seen.current or view is None):
            later = "" if seen.current else ", before later changes"
            rows.append(_row(flow, seen.outcome, (seen.describe() + later,)))
        elif view is not None:
            result = evaluate_flow(view, flow)
            why = (f"predicted from the live objects, which changed since it was {seen.describe()}"
                   if seen is not None and exercised else "predicted from the live objects, not exercised")
            rows.append(_row(flow, result.outcome.value, (why, *result.reasons)))
        elif seen is not None:
            rows.append(_row(flow, seen.outcome, (f"predicted by check {seen.source}, not exercised",)))
    return tuple(rows)


def _row(flow: Flow, outcome: str, reasons: tuple[str, ...]) -> FlowRow:
    return FlowRow(flow.id, flow.source, flow.to, flow.protocol.value, outcome, flow.expect or Outcome.OK.value,
                   reasons)


def declared_flows(context: ReportContext) -> list[Flow]:
    return [Flow.model_validate(f) for f in _items(context.rendered("flows", []))]


def observe_platform(cluster: Cluster, context: ReportContext, observed: Mapping[str, Observation],
                     now: dt.datetime | None = None) -> Platform:
    """The platform as it is now on ``cluster`` (one read of the objects mesh semantics needs)."""
    view = live_view(cluster)
    scope = PlatformScope.from_context(context)
    rows = flow_rows(view, declared_flows(context), observed)
    return Platform(mesh_wide_mtls(view), workload_rows(view, scope), rows, _stamp(now))


def journal_observations(store: RunStore, record: RunRecord, context: ReportContext) -> dict[str, Observation]:
    """The run's latest observation of each flow, from its checkpoints' verdicts and its events."""
    events = store.events(record.id)
    names = phase_names(context, events, record)
    verdicts = [(v, name) for index, name in enumerate(names) for v in store.verdicts(record.id, index)]
    return observed_flows(verdicts, stale_checks(events))


def save_platform(store: RunStore, run_id: str, platform: Platform) -> None:
    store.save_vars(run_id, PLATFORM_SLOT, platform.to_dict())


def saved_platform(store: RunStore, run_id: str) -> Platform | None:
    saved = store.load_vars(run_id, PLATFORM_SLOT)
    return Platform.from_dict(saved) if saved else None


# -- phases ------------------------------------------------------------------------------------------------
_EVENT_STATUS = {EventKind.PHASE_START.value: PhaseStatus.RUNNING, EventKind.PHASE_END.value: PhaseStatus.COMPLETED,
                 EventKind.PHASE_SKIPPED.value: PhaseStatus.SKIPPED,
                 EventKind.ROLLBACK_START.value: PhaseStatus.ROLLED_BACK}
_RUN_STATUS = {RunStatus.FAILED: PhaseStatus.FAILED, RunStatus.ROLLED_BACK: PhaseStatus.ROLLED_BACK,
               RunStatus.RUNNING: PhaseStatus.RUNNING, RunStatus.PAUSED: PhaseStatus.PAUSED}
_PAUSED_AFTER = "paused after this phase"
_STAGE_TEXT = {Stage.BEFORE: "paused before phase", Stage.TASKS: "paused during phase",
               Stage.CHECKPOINT: "paused at the checkpoint of phase", Stage.AFTER: "paused after phase",
               Stage.DONE: "paused after phase"}


def phase_names(context: ReportContext, events: Sequence[Mapping[str, Any]], record: RunRecord) -> list[str]:
    """The run's phases: the playbook's, or (without it) those the journal mentions, in order."""
    if context.phases:
        return list(context.phases)
    names = [str(e["phase"]) for e in events if e["kind"] in _EVENT_STATUS and e["phase"]]
    return list(dict.fromkeys([*names, *([record.current_phase] if record.current_phase else [])]))


def last_phase_status(events: Sequence[Mapping[str, Any]]) -> dict[str, tuple[PhaseStatus, str]]:
    """Per phase name, the status its latest phase event implies, and that event's message."""
    found: dict[str, tuple[PhaseStatus, str]] = {}
    for e in events:
        status = _EVENT_STATUS.get(str(e["kind"]))
        if status is not None and e["phase"]:
            found[str(e["phase"])] = (status, str(e["message"]))
    return found


def phase_status(index: int, name: str, record: RunRecord,
                 from_events: Mapping[str, tuple[PhaseStatus, str]]) -> tuple[PhaseStatus, str]:
    """A phase's status and note: the run's own status for the phase it stands at, else its events."""
    status, message = from_events.get(name, (PhaseStatus.PENDING, ""))
    note = message if status is PhaseStatus.SKIPPED else ""
    if index != record.phase_index or record.status is RunStatus.COMPLETED:
        return status, note
    if record.status is RunStatus.PAUSED and record.stage in (Stage.AFTER, Stage.DONE):
        return PhaseStatus.COMPLETED, f"{_PAUSED_AFTER}: {record.paused_reason}"
    return _RUN_STATUS[record.status], record.paused_reason


def phase_reports(store: RunStore, record: RunRecord, names: Sequence[str],
                  events: Sequence[Mapping[str, Any]]) -> tuple[PhaseReport, ...]:
    from_events = last_phase_status(events)
    out: list[PhaseReport] = []
    for index, name in enumerate(names):
        status, note = phase_status(index, name, record, from_events)
        changes = store.changes(record.id, phase_index=index, undo=False)
        applied = sum(c.state is ChangeState.APPLIED for c in changes)
        reverted = sum(c.state is ChangeState.REVERTED for c in changes)
        if status is PhaseStatus.ROLLED_BACK and reverted:
            note = "; ".join(filter(None, [note, f"{reverted} changes reverted"]))
        out.append(PhaseReport(name, status, tuple(store.verdicts(record.id, index)), applied, note))
    return tuple(out)


# -- the report --------------------------------------------------------------------------------------------
def state_line(status: RunStatus, stage: Stage, platform: Platform | None, phases: Sequence[PhaseReport]) -> str:
    """One line an SRE reads first: mTLS mode, meshed count, outages, where the rollout stands, what remains."""
    parts = [f"mTLS {platform.mtls}"] if platform is not None and platform.mtls else []
    if platform is not None:
        parts.append(_membership_counts(platform.workloads))
        parts.append(_outages(platform.flows))
    where = _where(status, stage, phases)
    if where:
        parts.append(where)
    remaining = [p.name for p in phases if p.status in (PhaseStatus.PENDING, PhaseStatus.PAUSED)]
    parts.append("remaining: " + ", ".join(remaining) if remaining else "no phase remaining")
    return f"{status.value.upper().replace('_', ' ')}: " + "; ".join(parts)


def _where(status: RunStatus, stage: Stage, phases: Sequence[PhaseReport]) -> str:
    if status is RunStatus.PAUSED:
        at = next((p for p in phases if p.status is PhaseStatus.PAUSED or p.note.startswith(_PAUSED_AFTER)), None)
        return f"{_STAGE_TEXT[stage]} {at.name}" if at is not None else ""
    stopped = [p.name for p in phases if p.status in (PhaseStatus.FAILED, PhaseStatus.ROLLED_BACK)]
    if stopped and status in (RunStatus.FAILED, RunStatus.ROLLED_BACK):
        return f"{status.value.replace('_', ' ')}: {', '.join(stopped)}"
    return ""


def _membership_counts(workloads: Sequence[WorkloadRow]) -> str:
    meshed = sum(w.membership in (Membership.MESHED, Membership.AMBIENT) for w in workloads)
    excluded = sum(w.membership is Membership.EXCLUDED for w in workloads)
    waiting = sum(w.membership is Membership.NOT_MESHED for w in workloads)
    return f"{_count(meshed, 'workload')} meshed, {excluded} excluded, {waiting} not meshed yet"


def _outages(flows: Sequence[FlowRow]) -> str:
    bad = [f for f in flows if not f.as_expected]
    if not bad:
        return f"no outages ({_count(len(flows), 'flow')} as expected)"
    shown = ", ".join(f"{f.flow_id} {f.outcome}" for f in bad[:3]) + (", …" if len(bad) > 3 else "")
    return f"{len(bad)} {'outage' if len(bad) == 1 else 'outages'} ({shown})"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def maskable(values: Iterable[str]) -> set[str]:
    """The Secret values worth masking wherever they appear (see ``MIN_MASKED_LENGTH``)."""
    return {v for v in values if len(v) >= MIN_MASKED_LENGTH}


def journal_secrets(store: RunStore, run_id: str) -> set[str]:
    """Values of every Secret the run created, changed or deleted (its journaled images)."""
    found: set[str] = set()
    for record in store.changes(run_id):
        for image in (record.change.before, record.change.after):
            if image is not None and is_secret(image):
                found |= secret_values(image)
    return maskable(found)


def build_report(store: RunStore, run_id: str, context: ReportContext, *, platform: Platform | None = None,
                 secrets: Iterable[str] = (), now: dt.datetime | None = None) -> RunReport:
    """The report of run ``run_id`` from its journal; ``platform`` defaults to the picture saved at its last stop.

    Every string is masked: credentials, tokens and private keys by pattern; by value, every Secret the
    run changed and the given ``secrets`` (the cluster's, when the caller has it connected).
    """
    record = store.get_run(run_id)
    events = store.events(record.id)
    phases = phase_reports(store, record, phase_names(context, events, record), events)
    if platform is None:
        platform = saved_platform(store, record.id)
    window = context.rendered("maintenance_window", "")
    report = RunReport(
        run_id=record.id, title=_title(context, record, platform), playbook=_shown_path(record.playbook),
        cluster=str(context.rendered("cluster_label", "") or record.cluster), status=record.status.value,
        started_at=record.created, finished_at=record.updated if record.status in _FINISHED else "",
        window=_window_text(window), state_line=state_line(record.status, record.stage, platform, phases),
        paused_reason=record.paused_reason if record.status is RunStatus.PAUSED else "", phases=phases,
        workloads=platform.workloads if platform else (), flows=platform.flows if platform else (),
        generated_at=_stamp(now),
    )
    scrubbed: RunReport = scrub(report, {*secrets, *journal_secrets(store, record.id)})
    return scrubbed


def _title(context: ReportContext, record: RunRecord, platform: Platform | None) -> str:
    name = context.play or Path(record.playbook).stem
    mode = platform.mtls if platform is not None and platform.mtls not in ("", "none") else ""
    return f"{name} ({mode})" if mode else name


def _window_text(window: Any) -> str:
    if isinstance(window, Mapping):
        start, end = window.get("start", ""), window.get("end", "")
        return f"{start} to {end}" if start or end else ""
    return str(window or "")


def _shown_path(path: str) -> str:
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def _stamp(now: dt.datetime | None) -> str:
    return (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")


def scrub(value: Any, secrets: Iterable[str] = ()) -> Any:
    """A copy of a report (or any part of one) with every string masked by ``kube.redact.redact_text``."""
    known = tuple(secrets)
    return _scrub(value, known)


def _scrub(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, str) and type(value) is str:
        return redact_text(value, secrets)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: _scrub(getattr(value, f.name), secrets) for f in dataclasses.fields(value) if f.init}
        return dataclasses.replace(value, **changes)
    if isinstance(value, Mapping):
        return {k: _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v, secrets) for v in value)
    return value
