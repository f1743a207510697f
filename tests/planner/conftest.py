"""Planner test fixtures: the demo platform's inventory (flows taken from its scenario) and the case playbook."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from runbook_engine.engine.modules import catalog
from runbook_engine.spec.inventory import load_inventory
from runbook_engine.spec.loader import load_playbook
from runbook_engine.spec.model import InventorySpec, PlaybookSpec

ROOT = Path(__file__).resolve().parents[2]
CASES = Path(__file__).parent / "cases"
DEMO_SCENARIO = ROOT / "inventory" / "demo" / "scenario.yaml"


def demo_flows() -> list[dict[str, Any]]:
    """The flows the demo platform's scenario declares (the sandbox drives its traffic from them)."""
    flows: list[dict[str, Any]] = yaml.safe_load(DEMO_SCENARIO.read_text())["flows"]
    return flows


def write_demo_inventory(directory: Path) -> Path:
    """An inventory with one cluster, ``demo``, served by a sandbox of the demo scenario."""
    directory.mkdir(parents=True, exist_ok=True)
    hosts = {"all": {"hosts": {"demo": {"sandbox": str(DEMO_SCENARIO), "flows": demo_flows()}}}}
    (directory / "hosts.yml").write_text(yaml.safe_dump(hosts))
    return directory


@pytest.fixture
def demo_inventory(tmp_path: Path) -> InventorySpec:
    return load_inventory(write_demo_inventory(tmp_path / "inventory"))


@pytest.fixture
def strict_playbook() -> PlaybookSpec:
    return load_playbook(CASES / "strict_rollout.yml", catalog=catalog())

