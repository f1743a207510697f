"""Checks on plain manifests, from case files (``cases/*.cases.yaml``): objects and args in, verdict out.

``objects`` may nest lists (a YAML anchor of a group of objects). A case may carry a ``baseline``
(pods as the run's baseline saw them, same manifest form) and expects a status, the exact summary,
and optionally the hint and evidence commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from runbook_engine.checks.baseline import take_baseline
from runbook_engine.kube.memory import MemoryCluster
from runbook_engine.report.verdict import Status

from .check_support import run_check

CASES = [(path.name.removesuffix(".cases.yaml"), case)
         for path in sorted((Path(__file__).parent / "cases").glob("*.cases.yaml"))
         for case in yaml.safe_load(path.read_text())["cases"]]


def flat(items: list[Any]) -> list[dict[str, Any]]:
    return [obj for item in items for obj in (flat(item) if isinstance(item, list) else [item])]


@pytest.mark.parametrize("case", [c for _, c in CASES], ids=[f"{f}: {c['name']}" for f, c in CASES])
def test_check_case(case: dict[str, Any]) -> None:
    baseline = take_baseline(MemoryCluster(flat(case["baseline"]))) if "baseline" in case else None
    verdict = run_check(case["check"], MemoryCluster(flat(case.get("objects") or [])), case["args"], baseline=baseline)
    expect = case["expect"]
    assert (verdict.status, verdict.summary) == (Status(expect["status"]), expect["summary"])
    if "hint" in expect:
        assert verdict.hint == expect["hint"]
    if "evidence" in expect:
        assert [e.command for e in verdict.evidence] == expect["evidence"]
    assert verdict.section.value and verdict.purpose
