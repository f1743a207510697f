"""Gating a real run: the phase that would break a flow pauses the run before it writes anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from runbook_engine.engine.connect import fixed_connector
from runbook_engine.engine.journal import RunStatus, RunStore, Stage
from runbook_engine.engine.modules import catalog
from runbook_engine.engine.planner import PlanGate, Planner, PlanOptions
from runbook_engine.engine.run_model import RunOptions
from runbook_engine.engine.runner import Engine
from runbook_engine.kube.memory import MemoryCluster
from runbook_engine.kube.refs import ObjectRef
from runbook_engine.spec.inventory import load_inventory
from runbook_engine.spec.loader import load_playbook
from runbook_engine.spec.model import InventorySpec, PlaybookSpec

from .conftest import CASES

FLOW = "batch/exporter -> shop/cart:8080"
STRICT = ObjectRef("security.istio.io/v1", "PeerAuthentication", "istio-system", "default")
LABELLED = ObjectRef("v1", "Namespace", "", "shop")


def _platform() -> MemoryCluster:
    return MemoryCluster(yaml.safe_load((CASES / "gate_platform.yaml").read_text()), name="lab")


def _specs(tmp_path: Path, accept: list[str]) -> tuple[PlaybookSpec, InventorySpec]:
    book = tmp_path / "gate_strict.yml"
    book.write_text((CASES / "gate_strict.yml").read_text().replace("__ACCEPT__", json.dumps(accept)))
    return load_playbook(book, catalog=catalog()), load_inventory(CASES / "gate_inventory")


def _run(tmp_path: Path, cluster: MemoryCluster, accept: list[str], options: RunOptions
         ) -> tuple[RunStatus, str, RunStore, str]:
    playbook, inventory = _specs(tmp_path, accept)
    store = RunStore(tmp_path / "state")
    engine = Engine(store, connect=fixed_connector({"lab": cluster}), phase_gate=PlanGate(inventory, options))
    [result] = engine.run(playbook, inventory, options)
    return result.status, result.reason, store, result.run_id


def test_a_predicted_break_pauses_the_run_before_the_phase_writes(tmp_path: Path) -> None:
    cluster = _platform()
    status, reason, store, run_id = _run(tmp_path, cluster, [], RunOptions())

    assert status is RunStatus.PAUSED
    assert reason.startswith("phase 'strict' is predicted to break 1 flow(s): " + FLOW + ": ok → reset")
    assert "no proxy" in reason and "STRICT via PeerAuthentication istio-system/default" in reason
    assert cluster.get(STRICT) is None  # nothing of the gated phase was written...
    assert (cluster.get(LABELLED) or {})["metadata"]["labels"]["rollout"] == "strict"  # ...the phase before ran
    assert store.get_run(run_id).stage is Stage.BEFORE and store.get_run(run_id).current_phase == "strict"


@pytest.mark.parametrize(("accept", "risk"), [([FLOW], frozenset[str]()), ([], frozenset({FLOW}))],
                         ids=["phase accept", "--accept-risk"])
def test_an_accepted_break_lets_the_run_proceed(tmp_path: Path, accept: list[str], risk: frozenset[str]) -> None:
    cluster = _platform()
    status, reason, _, _ = _run(tmp_path, cluster, accept, RunOptions(accept_risk=risk))
    assert status is RunStatus.COMPLETED, reason
    assert cluster.get(STRICT) is not None


def test_resuming_at_the_gated_phase_is_the_deliberate_decision(tmp_path: Path) -> None:
    cluster = _platform()
    status, _, store, run_id = _run(tmp_path, cluster, [], RunOptions())
    assert status is RunStatus.PAUSED
    playbook, inventory = _specs(tmp_path, [])
    gate = PlanGate.for_run(store.get_run(run_id))
    engine = Engine(store, connect=fixed_connector({"lab": cluster}), phase_gate=gate)
    assert engine.resume(run_id, playbook=playbook, inventory=inventory).status is RunStatus.COMPLETED
    assert cluster.get(STRICT) is not None


def test_planning_reports_each_step_as_it_starts(tmp_path: Path) -> None:
    """What `runbook plan` shows on its status line while a large plan runs."""
    playbook, inventory = _specs(tmp_path, [])
    steps: list[str] = []
    Planner(fixed_connector({"lab": _platform()})).plan(playbook, inventory, PlanOptions(progress=steps.append))
    phases = [p.name for play in playbook.plays for p in play.phases]
    assert steps == [
        "cluster lab: connecting",
        "cluster lab: reading the cluster (one list per kind)",
        *[f"cluster lab: simulating phase {i}/{len(phases)} ({name})" for i, name in enumerate(phases, 1)],
        *[f"cluster lab: predicting flows and diffs of phase {i}/{len(phases)} ({name})"
          for i, name in enumerate(phases, 1)],
    ]
