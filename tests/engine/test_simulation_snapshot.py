"""The planner's snapshot of a live cluster: every object of every planned kind, read with one list per
kind, stored as ``MemoryCluster`` stores objects, with the garbage collector left as it was found."""

from __future__ import annotations

import builtins
import copy
import gc
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from runbook_engine.engine.simulation import PlanCluster, snapshot, snapshot_kinds
from runbook_engine.kube.cluster import Obj
from runbook_engine.kube.kube_cluster import KubeCluster
from runbook_engine.kube.memory import MemoryCluster
from runbook_engine.sandbox.server import SandboxServer

CASE_FILE = Path(__file__).parent / "cases" / "snapshot" / "loading.yaml"
CASES: list[dict[str, Any]] = yaml.safe_load(CASE_FILE.read_text())
MADE_UP = ("uid", "creationTimestamp")


@pytest.mark.parametrize("case", CASES, ids=[c["case"] for c in CASES])
def test_plan_cluster_stores_an_object_as_memory_cluster_does(case: dict[str, Any]) -> None:
    (stored,) = PlanCluster([copy.deepcopy(case["object"])], "plan").objects()
    (expected,) = MemoryCluster([case["object"]], name="memory").objects()

    assert stored["metadata"].get("namespace", "") == case["namespace"]
    if case.get("generated"):
        for field in MADE_UP:
            assert stored["metadata"].pop(field) and expected["metadata"].pop(field)
    assert stored == expected


def test_writes_to_the_plan_get_a_resource_version_above_every_loaded_one() -> None:
    plan = PlanCluster([copy.deepcopy(c["object"]) for c in CASES], "plan")
    loaded = max(int(o["metadata"]["resourceVersion"]) for o in plan.objects())

    written = plan.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "new", "namespace": "shop"}})

    assert loaded >= 99
    assert int(written["metadata"]["resourceVersion"]) > loaded


@pytest.fixture
def quiet_sandbox(tmp_path: Path) -> Iterator[SandboxServer]:
    """A sandbox without controllers: nothing changes between the snapshot and the comparison."""
    with SandboxServer(tmp_path / "sandbox", controllers=False) as server:
        store = server.store
        store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
        for namespace, name in (("shop", "prices"), ("default", "settings"), ("shop", "carts")):
            store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
                          "data": {"owner": name}})
        store.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1", "labels": {"zone": "a"}}})
        yield server


def test_snapshot_reads_every_object_with_one_list_per_kind(quiet_sandbox: SandboxServer) -> None:
    live = KubeCluster.from_kubeconfig(quiet_sandbox.kubeconfig, None, "lab")
    before = live.requests

    plan = snapshot(live)

    kinds = snapshot_kinds()
    assert live.requests - before == Counter(f"list {kind}" for _, kind in kinds)
    for api_version, kind in kinds:
        stored = sorted(quiet_sandbox.store.list(api_version, kind), key=_namespace_and_name)
        assert plan.list(api_version, kind) == stored, kind
    assert {o["metadata"]["name"] for o in plan.list("v1", "ConfigMap")} >= {"prices", "settings", "carts"}
    assert [o["metadata"]["name"] for o in plan.list("v1", "Node")] == ["node-1"]


def _namespace_and_name(obj: Obj) -> tuple[str, str]:
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


class _UntypedLists(MemoryCluster):
    """A cluster whose list items come without apiVersion and kind (as a real API server's do), and
    which notes whether the garbage collector was on during each list."""

    def __init__(self, objects: list[Obj]) -> None:
        super().__init__(objects, name="untyped")
        self.collecting: list[bool] = []

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None) -> builtins.list[Obj]:
        self.collecting.append(gc.isenabled())
        items = super().list(api_version, kind, namespace, label_selector)
        for obj in items:
            del obj["apiVersion"], obj["kind"]
        return items


def test_snapshot_types_untyped_list_items_by_the_kind_listed() -> None:
    live = _UntypedLists([copy.deepcopy(c["object"]) for c in CASES[:3]])

    plan = snapshot(live, [("v1", "ConfigMap"), ("v1", "Namespace")], workers=2)

    assert sorted((o["kind"], o["metadata"]["name"]) for o in plan.objects()) == [
        ("ConfigMap", "bare"), ("ConfigMap", "settings"), ("Namespace", "shop")]
    assert all(o["apiVersion"] == "v1" for o in plan.objects())


@pytest.mark.parametrize("enabled", [True, False], ids=["collector on", "collector off"])
def test_snapshot_pauses_the_garbage_collector_and_leaves_it_as_it_was(enabled: bool) -> None:
    live = _UntypedLists([copy.deepcopy(c["object"]) for c in CASES[:3]])
    if not enabled:
        gc.disable()
    try:
        snapshot(live, [("v1", "ConfigMap"), ("v1", "Namespace")])
        assert gc.isenabled() is enabled
    finally:
        gc.enable()
    assert live.collecting == [False, False]
