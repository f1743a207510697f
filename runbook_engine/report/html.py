"""Self-contained HTML rendering of a verification report (inline CSS and SVG, no scripts)."""

from __future__ import annotations

from html import escape

from runbook_engine.report.markdown import BADGE
from runbook_engine.report.model import Assessment, RunReport
from runbook_engine.report.svg import render_svg
from runbook_engine.report.verdict import Status, Verdict

CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#212121;line-height:1.45}
h1{margin-bottom:.2em} .state{font-size:1.1em;padding:.6em 1em;background:#e3f2fd;border-radius:6px}
table{border-collapse:collapse;margin:.6em 0} td,th{border:1px solid #ddd;padding:4px 8px;font-size:.92em}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:.85em;font-weight:600}
.pass{background:#2e7d32}.flag{background:#f9a825;color:#000}.fail{background:#c62828}
.preexisting{background:#6d4c41}.skip{background:#9e9e9e}.no_data{background:#5c6bc0}
pre{background:#263238;color:#eceff1;padding:.7em;border-radius:6px;overflow-x:auto;font-size:.85em}
.check{border-left:4px solid #ddd;padding-left:1em;margin:1.2em 0}.platform{overflow-x:auto}
"""


def _verdict(v: Verdict) -> str:
    parts = [
        f'<div class="check"><h4>{escape(v.title)} <span class="badge {v.status.value}">{BADGE[v.status]}</span></h4>'
    ]
    if v.purpose:
        parts.append(f"<p><em>Purpose:</em> {escape(v.purpose)}</p>")
    parts.append(f"<p>{escape(v.summary)}</p>")
    for ev in v.evidence:
        parts.append(f"<pre>$ {escape(ev.command)}\n{escape(ev.output)}</pre>")
        if ev.note:
            parts.append(f"<p><small>{escape(ev.note)}</small></p>")
    if v.hint and v.status not in (Status.PASS, Status.SKIP):
        parts.append(f"<p><em>Fix:</em> {escape(v.hint)}</p>")
    return "".join(parts) + "</div>"


def _list(title: str, items: tuple[str, ...]) -> str:
    lis = "".join(f"<li>{escape(i)}</li>" for i in items) or "<li>(none)</li>"
    return f"<h3>{escape(title)}</h3><ul>{lis}</ul>"


def _assessment(a: Assessment) -> str:
    out = "<h2>Honest assessment</h2>"
    if a.failing:
        out += _list("Not working", a.failing)
    return out + (
        _list("Working", a.working)
        + _list("Flagged or clarified (correct, but worth knowing)", a.flagged)
        + _list("Pre-existing, not caused by the rollout", a.preexisting)
        + _list("Deliberately not done yet", a.not_done)
    )


def _phases(report: RunReport) -> str:
    rows = "".join(
        f"<tr><td>{escape(p.name)}</td><td>{escape(p.status.value)}</td><td>{p.changes}</td>"
        f"<td>{escape(p.note)}</td></tr>"
        for p in report.phases
    )
    return f"<h2>Phases</h2><table><tr><th>phase</th><th>status</th><th>changes</th><th>note</th></tr>{rows}</table>"


def _flows(report: RunReport) -> str:
    if not report.flows:
        return ""
    rows = "".join(
        f"<tr><td>{escape(f.flow_id)}</td><td>{escape(f.protocol)}</td><td>{escape(f.outcome)}"
        f"{'' if f.as_expected else ' ⚠'}</td><td>{escape(f.expected or '')}</td>"
        f"<td>{escape('; '.join(f.reasons))}</td></tr>"
        for f in report.flows
    )
    return f"<table><tr><th>flow</th><th>protocol</th><th>outcome</th><th>expected</th><th>why</th></tr>{rows}</table>"


def render_html(report: RunReport) -> str:
    head = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(report.title)}'
        f"</title><style>{CSS}</style></head><body>"
    )
    meta = (
        f"<h1>{escape(report.title)}</h1><p>Run <code>{escape(report.run_id)}</code> "
        f"({escape(report.status)}) on <b>{escape(report.cluster)}</b> — playbook "
        f"<code>{escape(report.playbook)}</code>{' — window ' + escape(report.window) if report.window else ''}"
        f"<br>Started {escape(report.started_at)}"
        f"{' — finished ' + escape(report.finished_at) if report.finished_at else ''}</p>"
        f'<p class="state"><b>STATE:</b> {escape(report.state())}</p>'
    )
    if report.paused_reason:
        meta += f"<p><b>Paused:</b> {escape(report.paused_reason)}</p>"
    platform = ""
    if report.workloads or report.flows:
        platform = (
            f'<h2>Platform</h2><div class="platform">{render_svg(report.workloads, report.flows)}</div>'
            + _flows(report)
        )
    sections = "".join(
        f"<h2>{escape(s.value)}</h2>" + "".join(_verdict(v) for v in vs) for s, vs in report.by_section()
    )
    return head + meta + _phases(report) + platform + sections + _assessment(report.assessment()) + "</body></html>\n"
