"""Mesh membership: ``meshed_workloads`` (who carries a proxy, in which form, and who should but
does not) and ``excluded_workloads`` (datastores and other excluded workloads carry none).

Enrolment is decided by ``runbook_engine.mesh.workload_enrolment`` on the live objects: the proxy
as a classic container or as a native init sidecar both count as meshed, ambient capture too. A
workload whose namespace is enrolled but whose pods predate the label needs a rollout restart.
Excluded workloads are named (``name`` or ``ns/name``) or selected by a label selector on their pod
template. Probe pods that checks create are not workloads and are ignored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import Field

from runbook_engine.checks.base import Check, CheckArgs, CheckContext, register
from runbook_engine.checks.evidence import Finding, conclude, every, evidence, listing, plural, summary_of, table, worst
from runbook_engine.checks.live import live_view
from runbook_engine.checks.probe import MANAGED_BY, PROBE_LABEL
from runbook_engine.kube.selectors import parse_selector
from runbook_engine.mesh import Enrolment, MeshView, ProxyForm, Workload, pod_enrolment, workload_enrolment
from runbook_engine.mesh.model import name_of
from runbook_engine.report.verdict import Evidence, Section, Status, Verdict

OPT_OUT_LABELS = {"sidecar.istio.io/inject": "false", "istio.io/dataplane-mode": "none"}
OPT_OUT_ANNOTATIONS = {"linkerd.io/inject": "disabled", "sidecar.istio.io/inject": "false"}
PODS_COLUMNS = ("-o custom-columns=NAME:.metadata.name,CONTAINERS:.spec.containers[*].name,"
                "INIT:.spec.initContainers[*].name")


class Exclusions(CheckArgs):
    """Workloads kept out of the mesh: by name (``name`` or ``ns/name``) or by pod-template selector."""

    excluded: list[str] = Field(default_factory=list, description="Workload names (or ns/name) kept out of the mesh.")
    excluded_selector: str | None = Field(default=None, description="Label selector of excluded pod templates.")

    def covers(self, wl: Workload) -> bool:
        if wl.name in self.excluded or wl.key in self.excluded:
            return True
        if not self.excluded_selector:
            return False
        return parse_selector(self.excluded_selector).matches(wl.template_labels)


def is_probe(wl: Workload) -> bool:
    return wl.template_labels.get(PROBE_LABEL) is not None or (
        wl.kind == "Pod" and wl.template_labels.get("app.kubernetes.io/managed-by") == MANAGED_BY)


def workloads_in(view: MeshView, namespaces: Iterable[str]) -> list[Workload]:
    """Long-running workloads of the namespaces (controllers and bare pods; no Jobs, no probe pods)."""
    out = []
    for ns in namespaces:
        for wl in sorted(view.workloads_by_ns.get(ns, []), key=lambda w: w.name):
            if wl.kind not in ("Job", "CronJob") and not is_probe(wl):
                out.append(wl)
    return out


def opted_out(wl: Workload) -> bool:
    """The pod template carries an explicit mesh opt-out."""
    lbl, ann = wl.template_labels, wl.template_annotations
    return any(lbl.get(k) == v for k, v in OPT_OUT_LABELS.items()) or any(
        ann.get(k) == v for k, v in OPT_OUT_ANNOTATIONS.items())


def form_text(enrolment: Enrolment) -> str:
    return f"{enrolment.mesh.value}/{enrolment.form.value}" if enrolment.meshed else "none"


def pod_rows(wl: Workload) -> list[list[str]]:
    """``NAME CONTAINERS INIT`` of each pod, as ``PODS_COLUMNS`` prints them."""
    def names(pod: Mapping[str, Any], key: str) -> str:
        return ",".join(str(c.get("name")) for c in (pod.get("spec") or {}).get(key) or []) or "<none>"
    return [[name_of(p), names(p, "containers"), names(p, "initContainers")] for p in wl.pods]


def membership_evidence(view: MeshView, namespaces: list[str], seen: list[tuple[Workload, Enrolment]]
                        ) -> list[Evidence]:
    """The namespaces' labels, and their pods' containers with each workload's enrolment as a note."""
    proof = [evidence(f"kubectl get namespace {ns} -o jsonpath='{{.metadata.labels}}'",
                      json.dumps(view.namespace_labels(ns), separators=(",", ":"))) for ns in namespaces]
    for ns in namespaces:
        mine = [(wl, e) for wl, e in seen if wl.namespace == ns]
        rows = [r for wl, _ in mine for r in pod_rows(wl)]
        note = "\n".join(f"{wl.kind}/{wl.name}: {form_text(e)}" for wl, e in mine)
        proof.append(evidence(f"kubectl get pods -n {ns} {PODS_COLUMNS}",
                              table(["NAME", "CONTAINERS", "INIT"], rows) if rows else "No resources found", note))
    return proof


class MeshedWorkloadsArgs(Exclusions):
    namespaces: list[str] = Field(min_length=1, description="Namespaces whose workloads must be meshed.")
    form: ProxyForm | None = Field(default=None, description="Expected proxy form, e.g. native-sidecar; others FLAG.")


@register
class MeshedWorkloads(Check[MeshedWorkloadsArgs]):
    name = "meshed_workloads"
    section = Section.MEMBERSHIP
    purpose = "Every workload of the enrolled namespaces (but the excluded) runs a proxy: container or native sidecar."
    Args = MeshedWorkloadsArgs

    def run(self, ctx: CheckContext, args: MeshedWorkloadsArgs) -> Verdict:
        view = live_view(ctx.cluster)
        before = ctx.baseline.unhealthy_owners() if ctx.baseline is not None else set()
        findings, seen, forms = [], [], {}
        for wl in workloads_in(view, args.namespaces):
            if args.covers(wl):
                continue
            enrolment = workload_enrolment(view, wl)
            finding = self._judge(view, wl, enrolment, args)
            if finding.status is Status.FAIL and f"{wl.namespace}/{wl.kind}/{wl.name}" in before:
                finding = Finding(Status.PREEXISTING, finding.subject, f"{finding.detail}; unhealthy before the run")
            findings.append(finding)
            seen.append((wl, enrolment))
            if enrolment.meshed:
                forms[wl.key] = enrolment.form.value
        proof = membership_evidence(view, args.namespaces, seen)
        kinds = {f"{wl.namespace}/{wl.name}": wl.kind.lower() for wl, _ in seen}
        return self._conclude(ctx, findings, forms, kinds, proof)

    @staticmethod
    def _judge(view: MeshView, wl: Workload, enrolment: Enrolment, args: MeshedWorkloadsArgs) -> Finding:
        subject = f"{wl.namespace}/{wl.name}"
        if enrolment.meshed and args.form is not None and enrolment.form is not args.form:
            return Finding(Status.FLAG, subject, f"proxy as {enrolment.form.value}, expected {args.form.value}")
        if enrolment.meshed:
            return Finding(Status.PASS, subject, form_text(enrolment))
        meshed_pods = sum(1 for pod in wl.pods if pod_enrolment(view, pod).meshed)
        if meshed_pods:
            return Finding(Status.FAIL, subject, f"{meshed_pods} of {len(wl.pods)} pods meshed: rollout incomplete")
        if enrolment.needs_restart:
            return Finding(Status.FAIL, subject, "namespace enrolled but pods not restarted")
        if opted_out(wl):
            return Finding(Status.FLAG, subject, "opted out of the mesh but not listed as excluded")
        return Finding(Status.FAIL, subject, "; ".join(enrolment.reasons) or "no proxy")

    def _conclude(self, ctx: CheckContext, findings: list[Finding], forms: dict[str, str], kinds: dict[str, str],
                  proof: list[Evidence]) -> Verdict:
        status = worst((f.status for f in findings), Status.NO_DATA)
        meshed = len(forms)
        by_form = ", ".join(f"{sorted(forms.values()).count(f)} {f}" for f in sorted(set(forms.values())))
        data = {"meshed": forms, "unmeshed": [f.subject for f in findings if f.status is not Status.PASS]}
        if status is Status.NO_DATA:
            return conclude(self, ctx, status, "no workloads found in the namespaces", proof, data=data)
        if status is Status.PASS:
            return conclude(self, ctx, status, f"{every(meshed, 'workload')} meshed ({by_form})", proof,
                            data=data)
        if status is Status.PREEXISTING:
            return conclude(self, ctx, status, f"{meshed} of {len(findings)} meshed; "
                            + summary_of(findings, status, "not meshed, already failing before the run"), proof,
                            data=data, hint="these workloads cannot finish a rollout; fix them separately, then "
                            "restart them into the mesh")
        if status is Status.FLAG:
            return conclude(self, ctx, status, f"{meshed} of {len(findings)} meshed; "
                            + summary_of(findings, Status.FLAG, "to note"), proof, data=data,
                            hint="list intentional opt-outs in 'excluded'; restart pods whose form is outdated")
        restart = [f.subject for f in findings if f.status is Status.FAIL and "not restarted" in f.detail]
        hint = (f"kubectl rollout restart {kinds[restart[0]]}/{restart[0].split('/')[1]} -n {restart[0].split('/')[0]}"
                " (and the other listed workloads)" if restart else
                "label the namespace for injection (istio-injection=enabled) and restart its workloads; "
                "an incomplete rollout: kubectl rollout status, and the new pods' events")
        return conclude(self, ctx, status, f"{meshed} of {len(findings)} meshed; "
                        + summary_of(findings, Status.FAIL, "not meshed"), proof, hint=hint, data=data)


class ExcludedWorkloadsArgs(Exclusions):
    namespaces: list[str] = Field(min_length=1, description="Namespaces to look in.")


@register
class ExcludedWorkloads(Check[ExcludedWorkloadsArgs]):
    name = "excluded_workloads"
    section = Section.MEMBERSHIP
    purpose = "Datastores and other excluded workloads carry no proxy, and will not get one on their next restart."
    Args = ExcludedWorkloadsArgs

    def run(self, ctx: CheckContext, args: ExcludedWorkloadsArgs) -> Verdict:
        view = live_view(ctx.cluster)
        chosen = [wl for wl in workloads_in(view, args.namespaces) if args.covers(wl)]
        seen = [(wl, workload_enrolment(view, wl)) for wl in chosen]
        findings = [self._judge(wl, enrolment) for wl, enrolment in seen]
        proof = membership_evidence(view, args.namespaces, seen)
        status = worst((f.status for f in findings), Status.NO_DATA)
        data = {"excluded": [f.subject for f in findings]}
        if status is Status.NO_DATA:
            return conclude(self, ctx, status, "no excluded workload found: check 'excluded' and "
                            "'excluded_selector'", proof, data=data)
        if status is Status.PASS:
            return conclude(self, ctx, status, f"{plural(len(findings), 'excluded workload')} without a proxy: "
                            f"{listing([f.subject for f in findings], 10)}", proof, data=data)
        what = "excluded workloads " + ("with a proxy" if status is Status.FAIL else "a restart would inject")
        return conclude(self, ctx, status, summary_of(findings, status, what), proof, data=data,
                        hint="add the pod-template label sidecar.istio.io/inject=\"false\" (ambient: "
                        "istio.io/dataplane-mode=none; Linkerd: annotation linkerd.io/inject: disabled) and restart")

    @staticmethod
    def _judge(wl: Workload, enrolment: Enrolment) -> Finding:
        subject = f"{wl.namespace}/{wl.name}"
        if enrolment.meshed:
            return Finding(Status.FAIL, subject, f"has {form_text(enrolment)}")
        if enrolment.would_inject_on_restart:
            return Finding(Status.FLAG, subject, "no proxy now, but the next restart injects one")
        return Finding(Status.PASS, subject, "no proxy")
