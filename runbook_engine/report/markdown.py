"""Markdown rendering of a verification report: the document an SRE hands to a change board."""

from __future__ import annotations

from runbook_engine.report.model import Assessment, RunReport
from runbook_engine.report.verdict import Status, Verdict

BADGE: dict[Status, str] = {
    Status.PASS: "PASS",
    Status.FLAG: "FLAGGED",
    Status.FAIL: "FAIL",
    Status.PREEXISTING: "PRE-EXISTING",
    Status.SKIP: "SKIPPED",
    Status.NO_DATA: "NO DATA",
}


def _fence(text: str) -> str:
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return f"{ticks}\n{text.rstrip()}\n{ticks}"


def _check(v: Verdict) -> list[str]:
    out = [f"#### {v.title} — **{BADGE[v.status]}**", ""]
    if v.purpose:
        out += [f"*Purpose:* {v.purpose}", ""]
    out += [v.summary, ""]
    for ev in v.evidence:
        out += [_fence(f"$ {ev.command}\n{ev.output}"), ""]
        if ev.note:
            out += [f"> {ev.note}", ""]
    if v.hint and v.status not in (Status.PASS, Status.SKIP):
        out += [f"*Fix:* {v.hint}", ""]
    return out


def _listing(title: str, items: tuple[str, ...]) -> list[str]:
    body = [f"- {i}" for i in items] or ["- (none)"]
    return [f"### {title}", "", *body, ""]


def _assessment(a: Assessment) -> list[str]:
    out = ["## Honest assessment", ""]
    if a.failing:
        out += _listing("Not working", a.failing)
    out += _listing("Working", a.working)
    out += _listing("Flagged or clarified (correct, but worth knowing)", a.flagged)
    out += _listing("Pre-existing, not caused by the rollout", a.preexisting)
    out += _listing("Deliberately not done yet", a.not_done)
    return out


def _platform(report: RunReport) -> list[str]:
    if not report.workloads and not report.flows:
        return []
    out = ["## Platform", ""]
    if report.workloads:
        out += ["| namespace | workload | membership | form |", "| --- | --- | --- | --- |"]
        out += [f"| {w.namespace} | {w.name} | {w.membership.value} | {w.form} |" for w in report.workloads]
        out.append("")
    if report.flows:
        out += ["| flow | protocol | outcome | expected | why |", "| --- | --- | --- | --- | --- |"]
        for f in report.flows:
            mark = "" if f.as_expected else " ⚠"
            out.append(
                f"| {f.flow_id} | {f.protocol} | {f.outcome}{mark} | {f.expected or ''} | {'; '.join(f.reasons)} |"
            )
        out.append("")
    return out


def render_markdown(report: RunReport) -> str:
    out = [f"# {report.title}", ""]
    out += [
        f"- **Run:** `{report.run_id}` ({report.status})",
        f"- **Cluster:** {report.cluster}",
        f"- **Playbook:** `{report.playbook}`",
    ]
    if report.window:
        out.append(f"- **Window:** {report.window}")
    out += [
        f"- **Started:** {report.started_at}"
        + (f" — **finished:** {report.finished_at}" if report.finished_at else ""),
        "",
    ]
    out += [f"**STATE:** {report.state()}", ""]
    if report.paused_reason:
        out += [f"> Paused: {report.paused_reason}", ""]
    out += ["## Phases", "", "| phase | status | changes | note |", "| --- | --- | --- | --- |"]
    out += [f"| {p.name} | {p.status.value} | {p.changes} | {p.note} |" for p in report.phases]
    out.append("")
    out += _platform(report)
    for section, verdicts in report.by_section():
        out += [f"## {section.value}", ""]
        for v in verdicts:
            out += _check(v)
    out += _assessment(report.assessment())
    return "\n".join(out).rstrip() + "\n"
