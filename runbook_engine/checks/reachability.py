"""Reachability: ``flows_reachable`` (each declared flow has its expected outcome) and
``controls_unaffected`` (namespaces outside the rollout: healthy, not meshed, their flows fine).

How each flow is observed, and said so in its evidence:

- ``<ns>/<workload>`` callers over HTTP or gRPC: a ``curl`` probe pod in the caller's namespace,
  under its service account and with its mesh enrolment (``checks.probe``), prints
  ``%{http_code}``; curl's exit code tells a reset (56, 52, 7), a TLS failure (35) and a timeout
  (28) apart. A meshed caller's sidecar answers 503 when the upstream resets, which counts as reset.
- ``external:<name>`` callers: ``curl`` of the public URL configured for the flow, from where the
  engine runs; without one the flow is predicted.
- ``kubelet`` and ``kube-apiserver`` callers, and TCP or server-first protocols (a pod cannot
  reproduce them with curl): predicted by ``runbook_engine.mesh.evaluate_flow`` on the live objects.

``expect`` is an outcome (``ok``, ``reset``, ``denied_403``, ``tls_error``, ``hang``) or an HTTP status
(compared exactly when observed, else 2xx/3xx as ``ok`` and 403 as ``denied_403``); no ``expect``
means ``ok``.
"""

from __future__ import annotations

import shlex
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from pydantic import Field

from runbook_engine.checks.base import Check, CheckArgs, CheckContext, register
from runbook_engine.checks.evidence import (
    Finding,
    conclude,
    every,
    evidence,
    listing,
    plural,
    summary_of,
    without_credentials,
    worst,
)
from runbook_engine.checks.live import live_view
from runbook_engine.checks.membership import form_text, workloads_in
from runbook_engine.checks.pods_healthy import PodsHealthy, PodsHealthyArgs
from runbook_engine.checks.probe import CURL_IMAGE, DEFAULT_TIMEOUT, Enrol, ProbeResult, ProbeSpec, run_probes
from runbook_engine.kube.flow import Flow, Outcome, Protocol
from runbook_engine.mesh import MeshView, evaluate_flow, workload_enrolment
from runbook_engine.report.verdict import Evidence, Section, Status, Verdict

CURL_TIMEOUT_S = 10
POLICY_INPUTS = ("kubectl get peerauthentications.security.istio.io,authorizationpolicies.security.istio.io,"
                 "destinationrules.networking.istio.io -A")
#: curl exit codes and what the caller observed.
CURL_EXITS: dict[int, tuple[Outcome, str]] = {
    6: (Outcome.RESET, "host does not resolve"),
    7: (Outcome.RESET, "connection refused"),
    28: (Outcome.HANG, "timed out"),
    35: (Outcome.TLS_ERROR, "TLS handshake failed"),
    52: (Outcome.RESET, "empty reply"),
    56: (Outcome.RESET, "connection reset by peer"),
}


class How(StrEnum):
    PROBE = "probe pod"
    PUBLIC_URL = "public URL"
    PREDICTED = "predicted"


@dataclass(frozen=True)
class FlowCheck:
    """One flow as observed: outcome (None when it could not be observed), HTTP status, evidence."""

    flow: Flow
    how: How
    outcome: Outcome | None
    proof: Evidence
    http_code: str = ""
    detail: str = ""
    invalid: bool = False  # the flow names a caller that does not exist: a failure, not missing data

    @property
    def as_expected(self) -> bool:
        return self.outcome is not None and expected(self.flow, self.outcome, self.http_code)

    def finding(self) -> Finding:
        seen = self.detail or (self.outcome.value if self.outcome else "not observed")
        if self.outcome is None:
            return Finding(Status.FAIL if self.invalid else Status.NO_DATA, self.flow.id, seen)
        if self.as_expected:
            return Finding(Status.PASS, self.flow.id, f"{seen}, {self.how.value}")
        want = self.flow.expect or Outcome.OK.value
        return Finding(Status.FAIL, self.flow.id, f"{seen}, expected {want} ({self.how.value})")

    def to_data(self) -> dict[str, object]:
        return {"flow": self.flow.id, "how": self.how.value, "outcome": self.outcome.value if self.outcome else None,
                "http_code": self.http_code, "expected": self.flow.expect or Outcome.OK.value,
                "as_expected": self.as_expected}


def expected(flow: Flow, outcome: Outcome, http_code: str = "") -> bool:
    want = (flow.expect or Outcome.OK.value).lower()
    if not want.isdigit():
        return want == outcome.value
    if http_code.isdigit() and http_code != "000":
        return http_code == want
    return outcome is (Outcome.DENIED_403 if want == "403" else Outcome.OK if want[0] in "23" else None)


def curl_outcome(exit_code: int, log: str, caller_meshed: bool) -> tuple[Outcome, str, str]:
    """(outcome, HTTP status as printed, what happened) from a ``curl -w '%{http_code}'`` probe."""
    code = log.strip()[-3:] if log.strip()[-3:].isdigit() else ""
    if exit_code in CURL_EXITS:
        outcome, what = CURL_EXITS[exit_code]
        return outcome, code, f"{what} (curl exit {exit_code})"
    if exit_code != 0 or not code or code == "000":
        return Outcome.RESET, code, f"no HTTP response (curl exit {exit_code})"
    if code == "403":
        return Outcome.DENIED_403, code, "HTTP 403"
    if code == "503" and caller_meshed:
        return Outcome.RESET, code, "HTTP 503 from the caller's sidecar: upstream reset or TLS failure"
    return Outcome.OK, code, f"HTTP {code}"


def url_of(flow: Flow) -> str:
    path = flow.path if flow.path.startswith("/") else f"/{flow.path}"
    return f"http://{flow.dest_service}.{flow.dest_namespace}.svc.cluster.local:{flow.port}{path}"


def curl_command(flow: Flow) -> tuple[str, ...]:
    extra = ("--http2-prior-knowledge",) if flow.protocol is Protocol.GRPC else ()
    return ("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", str(CURL_TIMEOUT_S), *extra,
            "-X", flow.method, url_of(flow))


def probed(flow: Flow) -> bool:
    """Flows a curl probe pod can exercise: from a workload, over HTTP or gRPC, to a cluster service."""
    return (flow.source_namespace is not None and flow.protocol in (Protocol.HTTP, Protocol.GRPC)
            and not flow.is_external_destination)


def predict(view: MeshView, flow: Flow, why: str) -> FlowCheck:
    result = evaluate_flow(view, flow)
    output = f"{result.outcome.value}: {result.summary}"
    note = f"predicted from the live objects by the mesh rules: {why}"
    return FlowCheck(flow, How.PREDICTED, result.outcome, evidence(POLICY_INPUTS, output, note),
                     detail=f"{result.outcome.value}")


def call_public_url(flow: Flow, url: str, timeout: float) -> FlowCheck:
    """Call the flow's public URL from where the engine runs, as an outside client would."""
    command = f"curl -s -o /dev/null -w '%{{http_code}}' -m {timeout:g} {shlex.quote(without_credentials(url))}"
    try:
        request = urllib.request.Request(url, method=flow.method)
        with urllib.request.urlopen(request, timeout=timeout, context=ssl.create_default_context()) as response:
            code = str(response.status)
    except urllib.error.HTTPError as exc:
        code = str(exc.code)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = str(getattr(exc, "reason", exc))
        outcome = Outcome.HANG if "timed out" in reason else Outcome.RESET
        return FlowCheck(flow, How.PUBLIC_URL, outcome, evidence(command, f"000 ({reason})"), "000", reason)
    outcome = Outcome.DENIED_403 if code == "403" else Outcome.OK
    return FlowCheck(flow, How.PUBLIC_URL, outcome, evidence(command, code), code, f"HTTP {code}")


def probe_spec(view: MeshView, flow: Flow, key: str) -> ProbeSpec | None:
    """A curl probe posing as the flow's caller, or None when the caller does not exist."""
    ns, name = str(flow.source_namespace), str(flow.source_workload)
    wl = view.workload(ns, name)
    if wl is None:
        return None
    enrol = Enrol.like(workload_enrolment(view, wl), wl.template_labels, wl.template_annotations)
    return ProbeSpec(key, ns, CURL_IMAGE, curl_command(flow), wl.service_account, enrol)


def exercise(ctx: CheckContext, view: MeshView, flows: Sequence[Flow], urls: Mapping[str, str],
             timeout: float) -> list[FlowCheck]:
    """Observe every flow: probe pods in one batch, public URLs, predictions; in the flows' order."""
    checks: dict[int, FlowCheck] = {}
    specs: dict[str, tuple[int, ProbeSpec]] = {}
    for i, flow in enumerate(flows):
        if flow.source.startswith("external:") and flow.id in urls:
            checks[i] = call_public_url(flow, urls[flow.id], CURL_TIMEOUT_S)
        elif not probed(flow):
            checks[i] = predict(view, flow, why_predicted(flow))
        else:
            spec = probe_spec(view, flow, f"{i}/{flow.id}")
            if spec is None:
                checks[i] = FlowCheck(flow, How.PROBE, None, Evidence(
                    f"kubectl get deploy,sts,ds -n {flow.source_namespace} {flow.source_workload}", "NotFound"),
                    detail=f"caller {flow.source} not found", invalid=True)
            else:
                specs[spec.key] = (i, spec)
    for result in run_probes(ctx.cluster, [s for _, s in specs.values()], timeout):
        i = specs[result.spec.key][0]
        checks[i] = observed(view, flows[i], result)
    return [checks[i] for i in range(len(flows))]


def why_predicted(flow: Flow) -> str:
    if flow.source in ("kubelet", "kube-apiserver"):
        return f"{flow.source} traffic comes from outside any pod"
    if flow.source.startswith("external:"):
        return "no public URL configured for this flow"
    return f"a curl probe cannot speak {flow.protocol.value} to {flow.to}"


def observed(view: MeshView, flow: Flow, result: ProbeResult) -> FlowCheck:
    command = result.spec.human_command()
    if not result.finished:
        return FlowCheck(flow, How.PROBE, None, evidence(command, result.log or result.error, result.error),
                         detail=result.error)
    wl = view.workload(str(flow.source_namespace), str(flow.source_workload))
    meshed = wl is not None and workload_enrolment(view, wl).meshed
    outcome, code, what = curl_outcome(int(result.exit_code or 0), result.log, meshed)
    note = f"probe pod {result.pod} exited {result.exit_code}"
    return FlowCheck(flow, How.PROBE, outcome, evidence(command, result.log, note), code, what)


class FlowsReachableArgs(CheckArgs):
    flows: list[Flow] = Field(min_length=1, description="Flows to exercise, as declared in the inventory.")
    public_urls: dict[str, str] = Field(default_factory=dict,
                                        description="Public URL per external flow (keyed by flow id or name).")
    probe_timeout: float = Field(default=DEFAULT_TIMEOUT, gt=0, description="Seconds to wait for the probe pods.")


def flows_verdict(check: Check[FlowsReachableArgs], ctx: CheckContext, results: list[FlowCheck]) -> Verdict:
    findings = [r.finding() for r in results]
    status = worst(f.status for f in findings)
    proof = [r.proof for r in results]
    data = {"flows": [r.to_data() for r in results]}
    counted = {How.PROBE: "probed", How.PUBLIC_URL: "by public URL", How.PREDICTED: "predicted"}
    counts = ", ".join(f"{sum(1 for r in results if r.how is h)} {counted[h]}" for h in How
                       if any(r.how is h for r in results))
    if status is Status.PASS:
        return conclude(check, ctx, status, f"{every(len(results), 'flow')} as expected ({counts})", proof,
                        data=data)
    if status is Status.NO_DATA:
        return conclude(check, ctx, status, summary_of(findings, status, "flows not observed"), proof, data=data,
                        hint="kubectl get pods -A -l app.kubernetes.io/managed-by=runbook-engine; check that probe "
                        "pods can be scheduled and their images pulled")
    return conclude(check, ctx, status, summary_of(findings, Status.FAIL, "flows not as expected"), proof, data=data,
                    hint="read each failing flow's evidence: a reset under STRICT means a caller without a proxy "
                    "(add a workload-scoped PERMISSIVE exception), a 403 an AuthorizationPolicy")


@register
class FlowsReachable(Check[FlowsReachableArgs]):
    name = "flows_reachable"
    section = Section.REACHABILITY
    purpose = "Each declared flow has its expected outcome, observed from the caller's side."
    Args = FlowsReachableArgs

    def run(self, ctx: CheckContext, args: FlowsReachableArgs) -> Verdict:
        view = live_view(ctx.cluster)
        urls = {f.id: args.public_urls[key] for f in args.flows
                for key in (f.id, f.name) if key and key in args.public_urls}
        return flows_verdict(self, ctx, exercise(ctx, view, args.flows, urls, args.probe_timeout))


class ControlsUnaffectedArgs(CheckArgs):
    namespaces: list[str] = Field(min_length=1, description="Control namespaces outside the rollout's scope.")
    flows: list[Flow] = Field(default_factory=list, description="Flows to or from the controls.")
    probe_timeout: float = Field(default=DEFAULT_TIMEOUT, gt=0, description="Seconds to wait for the probe pods.")


@register
class ControlsUnaffected(Check[ControlsUnaffectedArgs]):
    name = "controls_unaffected"
    section = Section.REACHABILITY
    purpose = "Namespaces outside the rollout stay healthy, unmeshed, and their flows keep working."
    Args = ControlsUnaffectedArgs

    def run(self, ctx: CheckContext, args: ControlsUnaffectedArgs) -> Verdict:
        view = live_view(ctx.cluster)
        health = PodsHealthy().run(ctx, PodsHealthyArgs(namespace=list(args.namespaces)))
        findings = [Finding(health.status, "pods", health.summary)]
        for wl in workloads_in(view, args.namespaces):
            enrolment = workload_enrolment(view, wl)
            if enrolment.meshed:
                findings.append(Finding(Status.FAIL, wl.key, f"meshed ({form_text(enrolment)})"))
        flows = exercise(ctx, view, args.flows, {}, args.probe_timeout)
        findings += [f.finding() for f in flows]
        proof = [*health.evidence, *(f.proof for f in flows)]
        status = worst(f.status for f in findings)
        data = {"flows": [f.to_data() for f in flows]}
        scope = listing(args.namespaces)
        if status is Status.PASS:
            return conclude(self, ctx, status, f"controls {scope} unaffected: {health.summary}; none meshed; "
                            f"{plural(len(flows), 'flow')} as expected", proof, data=data)
        bad = [f for f in findings if f.status is status]
        return conclude(self, ctx, status, f"controls {scope} affected: {listing(bad)}", proof, data=data,
                        hint="the rollout must not touch these namespaces: check namespace labels and mesh-wide "
                        "policies (a mesh-wide STRICT or default-deny reaches them too)")
