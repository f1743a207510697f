"""The plan as Markdown: one section per phase, for reviews, tickets and the verification report.

Per phase: what changes (a table of objects, each diff in a collapsible ``<details>`` block), the
workloads that restart, the flows whose predicted outcome changes (breaks first, with the reason
chain) and the checkpoint's predicted verdicts. Flows that keep their outcome are counted, not
listed; ``--format json`` has them all.
"""

from __future__ import annotations

from collections.abc import Sequence

from runbook_engine.engine.plan_model import FlowPlan, PhasePlan, PhaseStatus, Plan


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _flow_row(flow: FlowPlan) -> str:
    verdict = "**BREAKS**" if flow.breaks and not flow.accepted else "breaks (accepted)" if flow.breaks else ""
    why = " → ".join(flow.reasons)
    return (f"| {_cell(flow.flow.id)} | {flow.flow.protocol.value} | {flow.origin.value} | {flow.transition} | "
            f"{verdict} | {_cell(why)} |")


def _objects(phase: PhasePlan) -> list[str]:
    if not phase.objects:
        return ["No object changes."]
    lines = ["| change | object | diff from |", "|---|---|---|"]
    lines += [f"| {o.change.value} | `{o.ref}` | {o.source.value} |" for o in phase.objects]
    for obj in phase.objects:
        if obj.diff:
            lines += ["", f"<details><summary>{obj.change.value} {obj.ref}</summary>", "", "```diff",
                      obj.diff.rstrip("\n"), "```", "", "</details>"]
    return lines


def _restarts(phase: PhasePlan) -> list[str]:
    if not phase.restarts:
        return []
    pods = sum(r.pods for r in phase.restarts)
    items = ", ".join(f"`{r.workload}` ({r.pods})" for r in phase.restarts)
    return ["", f"**Restarts** {len(phase.restarts)} workloads, {pods} pods: {items}"]


def _flows(phase: PhasePlan) -> list[str]:
    changed = sorted(phase.changed_flows, key=lambda f: (not f.breaks, f.flow.id))
    unchanged = len(phase.flows) - len(changed)
    if not changed:
        return ["", f"**Flows**: none of {len(phase.flows)} changes outcome."]
    lines = ["", f"**Flows**: {len(changed)} change outcome ({unchanged} unchanged)", "",
             "| flow | protocol | from | outcome | | why |", "|---|---|---|---|---|---|"]
    return lines + [_flow_row(f) for f in changed]


def _checks(phase: PhasePlan) -> list[str]:
    if not phase.checks:
        return []
    lines = ["", f"**Checkpoint** (predicted decision: {phase.decision or 'continue'}; checks on simulated "
             "objects see pods as they were before the phase: no controller runs in a plan)", "",
             "| check | predicted | basis | summary |", "|---|---|---|---|"]
    return lines + [f"| {_cell(c.title)} | {c.status.value} | {c.basis.value} | {_cell(c.summary)} |"
                    for c in phase.checks]


def phase_markdown(phase: PhasePlan) -> str:
    head = f"### Phase {phase.index + 1}: {phase.name}"
    if phase.status is not PhaseStatus.PLANNED:
        body = [f"_{phase.status.value.replace('_', ' ')}_: {phase.note}"]
        if phase.status is PhaseStatus.STOPPED:
            body += ["", *_objects(phase)]
        return "\n".join([head, "", *body]) + "\n"
    lines = [head, "", *_objects(phase), *_restarts(phase), *_flows(phase), *_checks(phase)]
    return "\n".join(lines) + "\n"


def plan_markdown(plans: Sequence[Plan]) -> str:
    """Every plan (one per cluster) as one Markdown document."""
    out: list[str] = []
    for plan in plans:
        breaking = plan.breaking
        verdict = (f"**{len(breaking)} unaccepted predicted break(s)**: " + ", ".join(f"`{f.flow.id}`" for f in
                                                                                       breaking)
                   if breaking else "No unaccepted predicted breaks.")
        out += [f"## Plan: {plan.playbook} on {plan.cluster}", "",
                f"{plan.flows} flows evaluated; {sum(plan.requests.values())} API requests. {verdict}", ""]
        out += [phase_markdown(p) for p in plan.phases]
    return "\n".join(out).rstrip("\n") + "\n"
