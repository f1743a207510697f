"""Planner test fixtures: the demo platform's inventory (flows taken from its scenario) and the case playbook."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from runbook_engine.engine.connect import connect
from runbook_engine.engine.modules import catalog
from runbook_engine.kube.cluster import Cluster
from runbook_engine.spec.inventory import load_inventory
from runbook_engine.spec.loader import load_playbook
from runbook_engine.spec.model import ClusterSpec, InventorySpec, PlaybookSpec

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


def _pods_created(cluster: Cluster) -> bool:
    """Whether every Deployment and StatefulSet has created its pods and every DaemonSet scheduled its own."""
    for kind in ("Deployment", "StatefulSet"):
        for wl in cluster.list("apps/v1", kind):
            wanted = int((wl.get("spec") or {}).get("replicas", 1))
            if int((wl.get("status") or {}).get("replicas", 0)) < wanted:
                return False
    for ds in cluster.list("apps/v1", "DaemonSet"):
        status = ds.get("status") or {}
        if int(status.get("currentNumberScheduled", 0)) < int(status.get("desiredNumberScheduled", 1)):
            return False
    return True


def wait_for_pods(cluster: Cluster, timeout: float = 30.0) -> None:
    """Wait until a freshly started sandbox's controllers have created the seeded workloads' pods."""
    deadline = time.monotonic() + timeout
    while not _pods_created(cluster):
        if time.monotonic() > deadline:
            raise TimeoutError("the sandbox did not create its workloads' pods")
        time.sleep(0.1)


class SettledConnector:
    """Connects like ``runbook`` does (the sandbox over HTTPS), once the sandbox has created its pods."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def __call__(self, spec: ClusterSpec) -> AbstractContextManager[Cluster]:
        return self._connect(spec)

    @contextmanager
    def _connect(self, spec: ClusterSpec) -> Iterator[Cluster]:
        with connect(spec, self.state_dir) as cluster:
            wait_for_pods(cluster)
            yield cluster
