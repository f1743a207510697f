"""Generated platforms: deterministic, the requested size, valid scenarios the controllers settle."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from runbook_engine.cli.sandbox_generate import generate
from runbook_engine.errors import UserInputError
from runbook_engine.sandbox.controllers import ControllerManager, Timing
from runbook_engine.sandbox.generate import generate_scenario, write_scenario
from runbook_engine.sandbox.runtime import DefaultRuntime
from runbook_engine.sandbox.scenario import load_scenario
from runbook_engine.sandbox.store import Store


def test_the_same_seed_gives_the_same_platform_and_another_seed_another() -> None:
    assert generate_scenario(3, 20, 30, seed=5) == generate_scenario(3, 20, 30, seed=5)
    assert generate_scenario(3, 20, 30, seed=5) != generate_scenario(3, 20, 30, seed=6)


def test_a_generated_platform_has_the_requested_size() -> None:
    scenario = generate_scenario(namespaces=25, workloads=300, flows=400, seed=1)
    kinds = Counter(m["kind"] for m in scenario["manifests"])
    assert kinds["Namespace"] == 25
    assert kinds["Deployment"] + kinds["StatefulSet"] == 300
    assert kinds["Service"] == 300 and 0 < kinds["ServiceAccount"] < 300  # some workloads use `default`
    assert kinds["StatefulSet"] > 0
    assert len({m["metadata"]["namespace"] for m in scenario["manifests"] if m["kind"] == "Deployment"}) == 25
    edges = [(f["from"], f["to"]) for f in scenario["flows"]]
    assert len(edges) == 400 and len(set(edges)) == 400
    assert {f["protocol"] for f in scenario["flows"]} == {"http", "server-first"}


def test_negative_sizes_are_refused() -> None:
    with pytest.raises(UserInputError):
        generate_scenario(0, 10, 10, seed=1)


def test_a_generated_scenario_loads_and_settles(tmp_path: Path) -> None:
    path = tmp_path / "platform.yaml"
    write_scenario(generate_scenario(4, 30, 50, seed=3), path)
    scenario = load_scenario(path)
    assert len(scenario.flows) == 50
    store = Store()
    manager = ControllerManager(store, DefaultRuntime(), timing=Timing(step=0.002, probe_period=1.0))
    scenario.seed(store)
    manager.settle(timeout=30)
    pods = store.list("v1", "Pod")
    wanted = sum(m["spec"]["replicas"] for m in scenario.manifests if m["kind"] in ("Deployment", "StatefulSet"))
    assert len(pods) == wanted
    assert all(p["status"]["phase"] == "Running" for p in pods)


def test_the_generate_command_writes_a_scenario_file(tmp_path: Path) -> None:
    out = tmp_path / "big.yaml"
    result = CliRunner().invoke(
        generate, ["--namespaces", "2", "--workloads", "5", "--flows", "4", "--seed", "9", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    assert load_scenario(out).name == "generated-2ns-5w-seed9"
