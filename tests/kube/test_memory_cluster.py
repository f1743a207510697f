"""MemoryCluster specifics beyond the shared contract: seeding, snapshots, write counting, pod logs."""

from __future__ import annotations

from typing import Any

import pytest

from runbook_engine.errors import ClusterError, NotFoundError
from runbook_engine.kube.cluster import Cluster, PatchType
from runbook_engine.kube.memory import MemoryCluster
from runbook_engine.kube.refs import ObjectRef


def cm(name: str, ns: str = "sre", labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {}}, "data": {"k": name}}


def pod(name: str, *containers: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "sre"},
            "spec": {"containers": [{"name": c, "image": c} for c in containers]}}


def test_is_a_cluster() -> None:
    assert isinstance(MemoryCluster(), Cluster)


def test_seeded_objects_get_server_fields_and_keep_given_ones() -> None:
    given = cm("a")
    given["metadata"].update(uid="u-1", resourceVersion="41")
    c = MemoryCluster([given, cm("b")])
    a = c.get(ObjectRef("v1", "ConfigMap", "sre", "a"))
    b = c.get(ObjectRef("v1", "ConfigMap", "sre", "b"))
    assert a is not None and b is not None
    assert (a["metadata"]["uid"], a["metadata"]["resourceVersion"]) == ("u-1", "41")
    assert int(b["metadata"]["resourceVersion"]) > 41
    assert c.writes == 0


def test_seeded_fields_survive_an_apply_that_repeats_then_drops_them() -> None:
    c = MemoryCluster([cm("a", labels={"app": "x"})])
    c.apply({**cm("a", labels={"app": "x", "mesh": "on"})})
    rolled_back = c.apply(cm("a", labels={}))
    assert rolled_back["metadata"]["labels"] == {"app": "x"}


def test_writes_count_only_committed_changes() -> None:
    c = MemoryCluster([cm("a")])
    c.apply(cm("b"), dry_run=True)
    c.patch(ObjectRef("v1", "ConfigMap", "sre", "a"), {"data": {"k": "z"}}, dry_run=True)
    c.delete(ObjectRef("v1", "ConfigMap", "sre", "a"), dry_run=True)
    assert c.writes == 0
    c.apply(cm("b"))
    c.patch(ObjectRef("v1", "ConfigMap", "sre", "a"), {"data": {"k": "z"}})
    c.delete(ObjectRef("v1", "ConfigMap", "sre", "a"))
    assert c.writes == 3


def test_no_op_apply_is_not_a_write_and_keeps_resource_version() -> None:
    c = MemoryCluster()
    first = c.apply(cm("a"))
    again = c.apply(cm("a"))
    assert c.writes == 1
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]


def test_snapshot_lists_once_per_kind_and_is_independent() -> None:
    live = MemoryCluster([cm("a"), cm("b", ns="other"), pod("p", "app")], name="prod")
    snap = MemoryCluster.snapshot(live, [("v1", "ConfigMap"), ("v1", "Pod")])
    assert sorted(live.requests.elements()) == ["list ConfigMap", "list Pod"]
    assert len(snap.objects()) == 3 and snap.name == "prod (snapshot)"
    snap.delete(ObjectRef("v1", "ConfigMap", "sre", "a"))
    assert live.get(ObjectRef("v1", "ConfigMap", "sre", "a")) is not None
    assert live.writes == 0


def test_namespace_defaults_for_namespaced_kinds_and_is_dropped_for_cluster_scoped() -> None:
    c = MemoryCluster()
    created = c.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}})
    assert created["metadata"]["namespace"] == "default"
    ns = c.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x", "namespace": "y"}})
    assert "namespace" not in ns["metadata"]


def test_status_is_kept_across_apply() -> None:
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "sre"},
           "spec": {"replicas": 1}, "status": {"readyReplicas": 1}}
    c = MemoryCluster([dep])
    applied = c.apply({**dep, "spec": {"replicas": 2}, "status": {"readyReplicas": 0}})
    assert applied["status"] == {"readyReplicas": 1}


def test_pod_logs() -> None:
    c = MemoryCluster([pod("one", "app"), pod("two", "app", "proxy")])
    c.set_pod_log("sre", "one", "app", "a\nb\nc\n")
    assert c.pod_logs("sre", "one") == "a\nb\nc\n"
    assert c.pod_logs("sre", "one", tail_lines=2) == "b\nc\n"
    assert c.pod_logs("sre", "two", "proxy") == ""
    with pytest.raises(ClusterError, match="container name must be specified"):
        c.pod_logs("sre", "two")
    with pytest.raises(ClusterError, match="not valid"):
        c.pod_logs("sre", "one", "nope")
    with pytest.raises(NotFoundError):
        c.pod_logs("sre", "absent")


def test_patch_may_not_rename() -> None:
    c = MemoryCluster([cm("a")])
    with pytest.raises(ClusterError, match="may not change"):
        c.patch(ObjectRef("v1", "ConfigMap", "sre", "a"), [{"op": "replace", "path": "/metadata/name", "value": "b"}],
                patch_type=PatchType.JSON)


def test_dry_runs_leave_stored_objects_untouched() -> None:
    c = MemoryCluster([cm("a", labels={"app": "x"})])
    ref = ObjectRef("v1", "ConfigMap", "sre", "a")
    before = c.get(ref)
    c.apply(cm("a", labels={"app": "x", "mesh": "on"}), dry_run=True)
    c.patch(ref, {"data": {"k": "z"}}, dry_run=True)
    assert c.get(ref) == before
