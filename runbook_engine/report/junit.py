"""JUnit XML rendering: one test suite per phase, one test case per check, so CI shows checkpoints.

FAIL and NO_DATA become ``<failure>``; SKIP becomes ``<skipped>``; PRE-EXISTING is a ``<skipped>``
with the reason (it is not this run's failure, but it must not look green either); FLAG passes with
the summary in ``<system-out>``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from runbook_engine.report.model import PhaseReport, RunReport
from runbook_engine.report.verdict import Status, Verdict


def _case(suite: ET.Element, phase: str, v: Verdict) -> None:
    case = ET.SubElement(suite, "testcase", classname=f"{phase}.{v.section.value}", name=v.title)
    detail = "\n".join(f"$ {e.command}\n{e.output}" for e in v.evidence)
    if v.status in (Status.FAIL, Status.NO_DATA):
        fail = ET.SubElement(case, "failure", message=v.summary, type=v.status.value)
        fail.text = f"{detail}\nhint: {v.hint}" if v.hint else detail
    elif v.status is Status.SKIP:
        ET.SubElement(case, "skipped", message=v.summary)
    elif v.status is Status.PREEXISTING:
        ET.SubElement(case, "skipped", message=f"pre-existing: {v.summary}")
    out = ET.SubElement(case, "system-out")
    out.text = f"[{v.status.value}] {v.summary}\n{detail}"


def _suite(root: ET.Element, phase: PhaseReport) -> None:
    vs = phase.verdicts
    suite = ET.SubElement(
        root,
        "testsuite",
        name=phase.name,
        tests=str(len(vs)),
        failures=str(sum(v.status in (Status.FAIL, Status.NO_DATA) for v in vs)),
        skipped=str(sum(v.status in (Status.SKIP, Status.PREEXISTING) for v in vs)),
        errors="0",
    )
    for v in vs:
        _case(suite, phase.name, v)


def render_junit(report: RunReport) -> str:
    root = ET.Element("testsuites", name=report.title)
    for phase in report.phases:
        _suite(root, phase)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
