"""Connection physics, case by case: each case file builds a platform, then changes it step by step
and states what every flow's caller observes before and after each change."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from runbook_engine.kube.flow import Flow, Outcome
from runbook_engine.sandbox.physics import evaluate_flow

CASES = Path(__file__).parent / "physics_cases"


def _load_world() -> ModuleType:
    spec = importlib.util.spec_from_file_location("physics_world", CASES / "world.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


World = _load_world().World


def _do(world: Any, op: dict[str, Any]) -> None:
    ((verb, args),) = op.items()
    if verb == "apply":
        world.apply_yaml(args)
    elif verb == "delete":
        world.store.delete(args["apiVersion"], args["kind"], args.get("namespace", ""), args["name"])
    elif verb == "fault":
        world.physics.faults.add(args)
    elif verb in ("ztunnel",):
        world.ztunnel(*args)
    else:
        getattr(world, verb)(**(args or {}))


def _case_files() -> list[Path]:
    return sorted(CASES.glob("*.yaml"))


@pytest.mark.parametrize("path", _case_files(), ids=lambda p: p.stem)
def test_flow_case(path: Path, tmp_path: Path) -> None:
    case = yaml.safe_load(path.read_text())
    world = World(tmp_path)
    for op in case.get("setup") or []:
        _do(world, op)
    flows = {name: Flow.model_validate(spec) for name, spec in case["flows"].items()}
    for number, step in enumerate(case["steps"]):
        for op in step.get("do") or []:
            _do(world, op)
        world.physics.enroller.reconcile()
        for name, expected in step["expect"].items():
            outcome, reasons = evaluate_flow(world.store, flows[name], world.physics.faults)
            assert outcome is Outcome(expected), (
                f"{path.name} step {number} ({step.get('why', '')}): {name} was {outcome.value}, "
                f"expected {expected}; reasons: {reasons}"
            )
