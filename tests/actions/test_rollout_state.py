"""Rollout completion as ``kubectl rollout status`` judges it, for each workload kind, from case data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from runbook_engine.kube.health import rollout_state

CASES: list[dict[str, Any]] = yaml.safe_load((Path(__file__).parent / "cases" / "rollout_states.yaml").read_text())


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_rollout_state(case: dict[str, Any]) -> None:
    w = case["workload"]
    workload = {"apiVersion": "apps/v1", "kind": w["kind"], "metadata": {"name": "x", "generation": w["generation"]},
                "spec": w.get("spec", {}), "status": w["status"]}
    state = rollout_state(workload)
    assert [state.done, state.detail] == case["expect"]
