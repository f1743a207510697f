"""JSON rendering of a report: the machine-readable twin of the Markdown/HTML document.

The shape is published as a JSON Schema (``schema/report.schema.json``, ``SCHEMA_PATH``) so that
CI pipelines can rely on it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runbook_engine.report.model import FlowRow, PhaseReport, RunReport, WorkloadRow

SCHEMA_PATH = Path(__file__).with_name("schema") / "report.schema.json"
SCHEMA_VERSION = "1"


def _phase(p: PhaseReport) -> dict[str, Any]:
    return {
        "name": p.name,
        "status": p.status.value,
        "changes": p.changes,
        "note": p.note,
        "verdicts": [v.to_dict() for v in p.verdicts],
    }


def _workload(w: WorkloadRow) -> dict[str, Any]:
    return {
        "namespace": w.namespace,
        "name": w.name,
        "kind": w.kind,
        "membership": w.membership.value,
        "form": w.form,
    }


def _flow(f: FlowRow) -> dict[str, Any]:
    return {
        "id": f.flow_id,
        "from": f.source,
        "to": f.to,
        "protocol": f.protocol,
        "outcome": f.outcome,
        "expected": f.expected,
        "as_expected": f.as_expected,
        "reasons": list(f.reasons),
    }


def report_to_dict(report: RunReport) -> dict[str, Any]:
    a = report.assessment()
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": report.run_id,
        "title": report.title,
        "playbook": report.playbook,
        "cluster": report.cluster,
        "status": report.status,
        "started_at": report.started_at,
        "finished_at": report.finished_at,
        "window": report.window,
        "state": report.state(),
        "paused_reason": report.paused_reason,
        "generated_at": report.generated_at,
        "phases": [_phase(p) for p in report.phases],
        "workloads": [_workload(w) for w in report.workloads],
        "flows": [_flow(f) for f in report.flows],
        "assessment": {
            "working": list(a.working),
            "flagged": list(a.flagged),
            "preexisting": list(a.preexisting),
            "not_done": list(a.not_done),
            "failing": list(a.failing),
        },
    }


def render_json(report: RunReport) -> str:
    return json.dumps(report_to_dict(report), indent=2, sort_keys=True) + "\n"


def load_schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    return data
