"""Dependencies: ``datastore_dependents_ready``, ``external_db_exceptions`` and
``permissive_exceptions_present``.

- ``datastore_dependents_ready``: the datastores and every workload that depends on one (a flow's
  caller whose destination is served by a datastore, plus those named) have rolled out and are
  ready; a workload already unhealthy in the run's baseline is PRE-EXISTING.
- ``external_db_exceptions``: a sidecar that sees an external TLS database must pass the
  application's own TLS through: a ServiceEntry declaring the host and port, and a DestinationRule
  with ``tls.mode: DISABLE`` for that port (https://istio.io/latest/docs/ops/common-problems/
  network-issues/#double-tls). Every port a flow uses must be covered; an uncovered port is FLAGged
  (it works through the passthrough cluster today and is invisible to the mesh), a port whose
  DestinationRule originates TLS fails (double TLS).
- ``permissive_exceptions_present``: where a caller without a proxy (e.g. External Secrets → Vault)
  reaches a meshed server, the server port must accept plaintext through a *workload-scoped*
  PeerAuthentication (PERMISSIVE or port-level), not merely through a namespace or mesh-wide
  PERMISSIVE that STRICT will remove. Mode resolution is ``runbook_engine.mesh.effective_mode``.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from runbook_engine.checks.base import Check, CheckArgs, CheckContext, register
from runbook_engine.checks.evidence import (
    PA_COMMAND,
    Finding,
    conclude,
    evidence,
    listing,
    pa_table,
    plural,
    summary_of,
    table,
    worst,
)
from runbook_engine.checks.live import live_view
from runbook_engine.kube.flow import Flow
from runbook_engine.kube.health import pod_ready, rollout_state
from runbook_engine.mesh import Mesh, MeshView, MtlsMode, Workload, effective_mode, evaluate_flow, workload_enrolment
from runbook_engine.mesh.model import ref
from runbook_engine.mesh.mtls import ClientTls, dr_tls, find_destination_rule, find_service_entry, workload_policy
from runbook_engine.report.verdict import Evidence, Section, Status, Verdict

SE_COMMAND = ("kubectl get serviceentries.networking.istio.io -A -o custom-columns=NAMESPACE:.metadata.namespace,"
              "NAME:.metadata.name,HOSTS:.spec.hosts,PORTS:.spec.ports[*].number")
DR_COMMAND = ("kubectl get destinationrules.networking.istio.io -A -o custom-columns=NAMESPACE:.metadata.namespace,"
              "NAME:.metadata.name,HOST:.spec.host,TLS:.spec.trafficPolicy.tls.mode,"
              "PORT_TLS:.spec.trafficPolicy.portLevelSettings[*].port.number")


def backend(view: MeshView, ns: str, name: str, port: int) -> tuple[Workload, int] | None:
    """The workload and container port behind ``<ns>/<service>:<port>`` (or a workload of that name)."""
    svc = view.services.get(f"{ns}/{name}")
    if svc is None:
        wl = view.workload(ns, name)
        return (wl, port) if wl is not None else None
    for entry in (svc.get("spec") or {}).get("ports") or []:
        if int(entry.get("port", -1)) == port:
            found = view.workloads_for_service(svc)
            if found:
                return found[0], found[0].container_port(entry.get("targetPort", port)) or port
    return None


def named(view: MeshView, names: Sequence[str], namespaces: Sequence[str]) -> list[Workload]:
    """Workloads named ``ns/name``, or ``name`` in any of ``namespaces``."""
    out = []
    for item in names:
        candidates = [item] if "/" in item else [f"{ns}/{item}" for ns in namespaces]
        out += [view.workloads[key] for key in candidates if key in view.workloads]
    return out


class DatastoreDependentsArgs(CheckArgs):
    datastores: list[str] = Field(min_length=1, description="Datastore workloads (name or ns/name).")
    namespaces: list[str] = Field(default_factory=list, description="Namespaces of datastores named without one.")
    flows: list[Flow] = Field(default_factory=list, description="Flows; callers of a datastore are its dependents.")
    dependents: list[str] = Field(default_factory=list, description="More dependents (ns/name).")


def workload_ready(wl: Workload) -> tuple[bool, str]:
    if wl.kind == "Pod":
        return pod_ready(wl.obj), "Ready" if pod_ready(wl.obj) else "not Ready"
    state = rollout_state(wl.obj)
    return state.done, state.detail


def readiness_evidence(workloads: list[Workload], stores: int) -> list[Evidence]:
    """``kubectl get <kind>/<name>…`` per namespace with READY, and the rollout state of each as a note."""
    proof = []
    for ns in dict.fromkeys(wl.namespace for wl in workloads):
        mine = [(i, wl) for i, wl in enumerate(workloads) if wl.namespace == ns]
        refs = " ".join(f"{wl.kind.lower()}/{wl.name}" for _, wl in mine)
        rows = [[f"{wl.kind.lower()}/{wl.name}", ready_count(wl)] for _, wl in mine]
        note = "\n".join(f"{'datastore' if i < stores else 'dependent'} {wl.kind.lower()}/{wl.name}: "
                         f"{workload_ready(wl)[1]}" for i, wl in mine)
        proof.append(evidence(f"kubectl get {refs} -n {ns}", table(["NAME", "READY"], rows), note))
    return proof


def ready_count(wl: Workload) -> str:
    status, spec = wl.obj.get("status") or {}, wl.obj.get("spec") or {}
    if wl.kind == "DaemonSet":
        return f"{status.get('numberReady', 0)}/{status.get('desiredNumberScheduled', 0)}"
    if wl.kind == "Pod":
        return "1/1" if pod_ready(wl.obj) else "0/1"
    return f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}"


@register
class DatastoreDependentsReady(Check[DatastoreDependentsArgs]):
    name = "datastore_dependents_ready"
    section = Section.DEPENDENCIES
    purpose = "Datastores and the workloads that depend on them are ready (their connections survived the rollout)."
    Args = DatastoreDependentsArgs

    def run(self, ctx: CheckContext, args: DatastoreDependentsArgs) -> Verdict:
        view = live_view(ctx.cluster)
        stores = named(view, args.datastores, args.namespaces)
        deps = self._dependents(view, args, {wl.key for wl in stores})
        before = ctx.baseline.unhealthy_owners() if ctx.baseline is not None else set()
        findings = []
        for wl in [*stores, *deps]:
            ok, detail = workload_ready(wl)
            status = Status.PASS if ok else (
                Status.PREEXISTING if f"{wl.namespace}/{wl.kind}/{wl.name}" in before else Status.FAIL)
            findings.append(Finding(status, wl.key, detail + (", as before the run" if status is Status.PREEXISTING
                                                              else "")))
        return self._conclude(ctx, findings, len(stores), readiness_evidence([*stores, *deps], len(stores)))

    @staticmethod
    def _dependents(view: MeshView, args: DatastoreDependentsArgs, stores: set[str]) -> list[Workload]:
        keys: dict[str, None] = {}
        for flow in args.flows:
            if flow.dest_namespace is None or flow.source_namespace is None:
                continue
            found = backend(view, flow.dest_namespace, flow.dest_service, flow.port)
            if found is not None and found[0].key in stores:
                keys[f"{flow.source_namespace}/{flow.source_workload}"] = None
        keys.update(dict.fromkeys(args.dependents))
        return [view.workloads[k] for k in keys if k in view.workloads and k not in stores]

    def _conclude(self, ctx: CheckContext, findings: list[Finding], stores: int, proof: list[Evidence]) -> Verdict:
        status = worst((f.status for f in findings), Status.NO_DATA)
        data = {"not_ready": [f.subject for f in findings if f.status is not Status.PASS]}
        if status is Status.NO_DATA:
            return conclude(self, ctx, status, "no datastore found: check 'datastores' and 'namespaces'", proof)
        if status is Status.PASS:
            return conclude(self, ctx, status, f"{plural(stores, 'datastore')} and "
                            f"{plural(len(findings) - stores, 'dependent')} ready", proof, data=data)
        if status is Status.PREEXISTING:
            return conclude(self, ctx, status, summary_of(findings, status, "not ready, as before the run"), proof,
                            data=data, hint="these were failing before the rollout; fix them separately")
        first = next(f.subject for f in findings if f.status is Status.FAIL)
        return conclude(self, ctx, status, summary_of(findings, Status.FAIL, "not ready"), proof, data=data,
                        hint=f"kubectl describe pods -n {first.split('/')[0]} and read their logs: a client that "
                        "cannot reach its datastore through the mesh usually fails its readiness probe")


class ExternalDbArgs(CheckArgs):
    flows: list[Flow] = Field(min_length=1, description="Flows; those to external:<host>:<port> are checked.")
    hosts: list[str] = Field(default_factory=list, description="Only these external hosts (default: all in flows).")


@register
class ExternalDbExceptions(Check[ExternalDbArgs]):
    name = "external_db_exceptions"
    section = Section.DEPENDENCIES
    purpose = "External TLS databases have a ServiceEntry and a DestinationRule tls.mode DISABLE for every port used."
    Args = ExternalDbArgs

    def run(self, ctx: CheckContext, args: ExternalDbArgs) -> Verdict:
        view = live_view(ctx.cluster)
        ports: dict[tuple[str, int], list[Flow]] = {}
        for flow in args.flows:
            if flow.is_external_destination and (not args.hosts or flow.dest_host in args.hosts):
                ports.setdefault((flow.dest_host, flow.port), []).append(flow)
        findings = [self._judge(view, host, port, flows) for (host, port), flows in sorted(ports.items())]
        predicted = [evaluate_flow(view, flows[0]).outcome.value for _, flows in sorted(ports.items())]
        proof = [evidence(SE_COMMAND, self._entries(view)),
                 evidence(DR_COMMAND, self._rules(view), "\n".join(
                     f"{f.subject}: {f.detail}; predicted now: {p}" for f, p in zip(findings, predicted, strict=True)))]
        status = worst((f.status for f in findings), Status.NO_DATA)
        data = {"ports": {f.subject: f.status.value for f in findings}}
        if status is Status.NO_DATA:
            return conclude(self, ctx, status, "no flow to an external host", proof)
        if status is Status.PASS:
            return conclude(self, ctx, status, f"{plural(len(findings), 'external port')} covered: "
                            f"{listing([f.subject for f in findings])}", proof, data=data)
        worst_label = "double TLS" if status is Status.FAIL else "not covered by ServiceEntry + DestinationRule DISABLE"
        return conclude(self, ctx, status, summary_of(findings, status, f"external ports {worst_label}"), proof,
                        data=data, hint="add the port to the host's ServiceEntry and a DestinationRule "
                        "portLevelSettings entry with tls.mode: DISABLE (the application does its own TLS)")

    @staticmethod
    def _judge(view: MeshView, host: str, port: int, flows: list[Flow]) -> Finding:
        subject = f"{host}:{port}"
        callers = listing(sorted({f.source for f in flows}), 3)
        entry = find_service_entry(view, host, port)
        dr = find_destination_rule(view, host, client_ns=flows[0].source_namespace, dest_ns=None)
        mode, where = dr_tls(dr, port) if dr is not None else (None, "")
        entry_text = ref(entry[0]) if entry else f"no ServiceEntry for port {port}"
        rule_text = f"{where} {mode.value}" if mode else f"no DestinationRule tls for port {port}"
        seen = f"{entry_text}; {rule_text}; callers {callers}"
        if mode in (ClientTls.SIMPLE, ClientTls.MUTUAL, ClientTls.ISTIO_MUTUAL):
            return Finding(Status.FAIL, subject, seen)
        if entry is None or mode is not ClientTls.DISABLE:
            return Finding(Status.FLAG, subject, seen)
        return Finding(Status.PASS, subject, seen)

    @staticmethod
    def _entries(view: MeshView) -> str:
        rows = [[o["metadata"].get("namespace", ""), o["metadata"]["name"], ",".join(map(str, spec.get("hosts") or [])),
                 ",".join(str(p.get("number")) for p in spec.get("ports") or [])]
                for o in view.objects("ServiceEntry") for spec in [o.get("spec") or {}]]
        return table(["NAMESPACE", "NAME", "HOSTS", "PORTS"], rows) if rows else "No resources found"

    @staticmethod
    def _rules(view: MeshView) -> str:
        rows = []
        for o in view.objects("DestinationRule"):
            policy = (o.get("spec") or {}).get("trafficPolicy") or {}
            per_port = ",".join(f"{(p.get('port') or {}).get('number')}:{(p.get('tls') or {}).get('mode')}"
                                for p in policy.get("portLevelSettings") or [])
            rows.append([o["metadata"].get("namespace", ""), o["metadata"]["name"], str(o["spec"].get("host", "")),
                         str((policy.get("tls") or {}).get("mode") or "<none>"), per_port or "<none>"])
        return table(["NAMESPACE", "NAME", "HOST", "TLS", "PORT_TLS"], rows) if rows else "No resources found"


class PermissiveExceptionsArgs(CheckArgs):
    flows: list[Flow] = Field(min_length=1, description="Flows from callers that stay outside the mesh.")


def exception_finding(view: MeshView, flow: Flow) -> Finding:
    """Whether the flow's server port accepts the sidecar-less caller through a workload-scoped policy."""
    caller = view.workload(str(flow.source_namespace), str(flow.source_workload)) if flow.source_namespace else None
    if caller is not None and workload_enrolment(view, caller).meshed:
        return Finding(Status.PASS, flow.id, "caller is meshed: no exception needed")
    found = backend(view, str(flow.dest_namespace), flow.dest_service, flow.port) if flow.dest_namespace else None
    if found is None:
        return Finding(Status.FAIL, flow.id, f"no server behind {flow.to}")
    wl, port = found
    server = workload_enrolment(view, wl)
    if not server.meshed:
        return Finding(Status.PASS, flow.id, "server has no proxy: plaintext accepted")
    resolution = effective_mode(view, wl, port, ambient=server.mesh is Mesh.ISTIO_AMBIENT)
    policy = workload_policy(view, wl)
    scoped = policy is not None and resolution.source.startswith(ref(policy))
    seen = f"port {port} {resolution.mode.value} via {resolution.source}"
    if resolution.mode is MtlsMode.STRICT:
        return Finding(Status.FAIL, flow.id, seen)
    if not scoped:
        return Finding(Status.FLAG, flow.id, f"{seen}: no workload-scoped exception, STRICT will break it")
    return Finding(Status.PASS, flow.id, seen)


@register
class PermissiveExceptionsPresent(Check[PermissiveExceptionsArgs]):
    name = "permissive_exceptions_present"
    section = Section.DEPENDENCIES
    purpose = "Servers with sidecar-less callers keep accepting them through a workload-scoped PERMISSIVE exception."
    Args = PermissiveExceptionsArgs

    def run(self, ctx: CheckContext, args: PermissiveExceptionsArgs) -> Verdict:
        view = live_view(ctx.cluster)
        findings = [exception_finding(view, flow) for flow in args.flows]
        predicted = [evaluate_flow(view, flow) for flow in args.flows]
        resolved = "\n".join(f"{f.subject}: {f.detail}; predicted now: {r.outcome.value}"
                             for f, r in zip(findings, predicted, strict=True))
        proof = [evidence(PA_COMMAND, pa_table(view.objects("PeerAuthentication")),
                          "resolved from these PeerAuthentications by the mesh rules:\n" + resolved)]
        status = worst(f.status for f in findings)
        if status is Status.PASS:
            return conclude(self, ctx, status, f"{plural(len(findings), 'sidecar-less path')} covered: "
                            f"{listing(findings, 3)}", proof)
        what = "paths rejected (STRICT, no exception)" if status is Status.FAIL else "paths without a scoped exception"
        return conclude(self, ctx, status, summary_of(findings, status, what), proof,
                        hint="add a PeerAuthentication with a selector for the server, mtls PERMISSIVE (or "
                        "portLevelMtls for the port), labelled with an owner and an expiry")
