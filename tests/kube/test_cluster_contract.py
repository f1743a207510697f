"""One behaviour, every ``Cluster``: the same assertions run on MemoryCluster (bare and behind the
per-phase CachingCluster) and on KubeCluster talking HTTPS to the sandbox API server, so the
planner's simulation and real runs agree.

Each test works in a namespace of its own, so one sandbox server is shared by the session."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import pytest

from runbook_engine.errors import ConflictError, InvalidObjectError, NotFoundError
from runbook_engine.kube.caching import CachingCluster
from runbook_engine.kube.cluster import Cluster, PatchType, Propagation
from runbook_engine.kube.memory import MemoryCluster
from runbook_engine.kube.refs import ObjectRef

_NAMESPACES = itertools.count(1)


def _memory(request: pytest.FixtureRequest) -> Cluster:
    return MemoryCluster(name="memory")


def _kube(request: pytest.FixtureRequest) -> Cluster:
    from runbook_engine.kube.kube_cluster import KubeCluster

    server = request.getfixturevalue("shared_sandbox")
    return KubeCluster.from_kubeconfig(server.kubeconfig, None, name="sandbox")


def _cached(request: pytest.FixtureRequest) -> Cluster:
    return CachingCluster(MemoryCluster(name="memory"))


FACTORIES: dict[str, Callable[[pytest.FixtureRequest], Cluster]] = {
    "memory": _memory,
    "cached-memory": _cached,
    "kube": _kube,
}


@pytest.fixture(params=sorted(FACTORIES))
def cluster(request: pytest.FixtureRequest) -> Cluster:
    return FACTORIES[request.param](request)


@pytest.fixture
def ns(cluster: Cluster) -> str:
    name = f"contract-{next(_NAMESPACES)}"
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def cm(ns: str, name: str, data: dict[str, str] | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if labels is not None:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data or {}}


def deployment(ns: str, name: str, image: str = "app:1", labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": labels or {"app": name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


def ref(ns: str, kind: str, name: str, api_version: str = "v1") -> ObjectRef:
    return ObjectRef(api_version, kind, ns, name)


def test_get_of_missing_object_is_none(cluster: Cluster, ns: str) -> None:
    assert cluster.get(ref(ns, "ConfigMap", "absent")) is None


def test_apply_creates_with_server_fields(cluster: Cluster, ns: str) -> None:
    created = cluster.apply(cm(ns, "a", {"k": "v"}))
    meta = created["metadata"]
    assert created["data"] == {"k": "v"}
    assert meta["uid"] and meta["resourceVersion"] and meta["creationTimestamp"]
    got = cluster.get(ref(ns, "ConfigMap", "a"))
    assert got is not None and got["metadata"]["uid"] == meta["uid"]


def test_apply_update_merges_labels_and_keeps_uid(cluster: Cluster, ns: str) -> None:
    first = cluster.apply(cm(ns, "a", {"k": "v"}, {"app": "x"}), field_manager="creator")
    second = cluster.apply(cm(ns, "a", labels={"mesh": "on"}))
    assert second["metadata"]["labels"] == {"app": "x", "mesh": "on"}
    assert second["data"] == {"k": "v"}
    assert second["metadata"]["uid"] == first["metadata"]["uid"]
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])


def test_reapplying_without_a_field_removes_it(cluster: Cluster, ns: str) -> None:
    cluster.apply(cm(ns, "a", {"k": "v"}, {"app": "x"}), field_manager="creator")
    cluster.apply(cm(ns, "a", labels={"mesh": "on"}))
    restored = cluster.apply(cm(ns, "a", labels={}))
    assert restored["metadata"].get("labels") == {"app": "x"}


def test_apply_conflict_without_force(cluster: Cluster, ns: str) -> None:
    cluster.apply(cm(ns, "a", {"k": "v"}), field_manager="someone-else")
    with pytest.raises(ConflictError):
        cluster.apply(cm(ns, "a", {"k": "mine"}), force=False)
    assert cluster.apply(cm(ns, "a", {"k": "mine"}), force=True)["data"] == {"k": "mine"}


def test_generation_bumps_on_spec_change_only(cluster: Cluster, ns: str) -> None:
    first = cluster.apply(deployment(ns, "web"))
    relabelled = cluster.apply(deployment(ns, "web", labels={"app": "web", "team": "sre"}))
    assert relabelled["metadata"]["generation"] == first["metadata"]["generation"]
    new_image = cluster.apply(deployment(ns, "web", image="app:2"))
    assert new_image["metadata"]["generation"] == first["metadata"]["generation"] + 1
    assert new_image["spec"]["template"]["spec"]["containers"][0]["image"] == "app:2"


def test_dry_run_apply_writes_nothing(cluster: Cluster, ns: str) -> None:
    would = cluster.apply(cm(ns, "a", {"k": "v"}), dry_run=True)
    assert would["data"] == {"k": "v"}
    assert cluster.get(ref(ns, "ConfigMap", "a")) is None
    cluster.apply(cm(ns, "a", {"k": "v"}))
    would_update = cluster.apply(cm(ns, "a", {"k": "w"}), dry_run=True)
    assert would_update["data"] == {"k": "w"}
    got = cluster.get(ref(ns, "ConfigMap", "a"))
    assert got is not None and got["data"] == {"k": "v"}


def test_merge_patch(cluster: Cluster, ns: str) -> None:
    cluster.apply(cm(ns, "a", {"k": "v", "drop": "x"}))
    patched = cluster.patch(ref(ns, "ConfigMap", "a"), {"data": {"drop": None, "new": "1"}})
    assert patched["data"] == {"k": "v", "new": "1"}


def test_json_patch(cluster: Cluster, ns: str) -> None:
    cluster.apply(cm(ns, "a", {"k": "v"}))
    ops = [{"op": "add", "path": "/metadata/labels", "value": {"tier": "db"}},
           {"op": "replace", "path": "/data/k", "value": "w"}]
    patched = cluster.patch(ref(ns, "ConfigMap", "a"), ops, patch_type=PatchType.JSON)
    assert patched["metadata"]["labels"] == {"tier": "db"}
    assert patched["data"] == {"k": "w"}


def test_json_patch_failed_test_changes_nothing(cluster: Cluster, ns: str) -> None:
    cluster.apply(cm(ns, "a", {"k": "v"}))
    ops = [{"op": "replace", "path": "/data/k", "value": "w"}, {"op": "test", "path": "/data/k", "value": "v"}]
    with pytest.raises(InvalidObjectError):
        cluster.patch(ref(ns, "ConfigMap", "a"), ops, patch_type=PatchType.JSON)
    got = cluster.get(ref(ns, "ConfigMap", "a"))
    assert got is not None and got["data"] == {"k": "v"}


def test_strategic_patch_merges_containers_by_name(cluster: Cluster, ns: str) -> None:
    cluster.apply(deployment(ns, "web"))
    sidecar = {"spec": {"template": {"spec": {"containers": [{"name": "proxy", "image": "proxy:1"}]}}}}
    patched = cluster.patch(ref(ns, "Deployment", "web", "apps/v1"), sidecar, patch_type=PatchType.STRATEGIC)
    names = [c["name"] for c in patched["spec"]["template"]["spec"]["containers"]]
    assert names == ["app", "proxy"]


def test_restart_is_a_template_annotation_patch(cluster: Cluster, ns: str) -> None:
    first = cluster.apply(deployment(ns, "web"))
    stamp = {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "now"}}}}}
    patched = cluster.patch(ref(ns, "Deployment", "web", "apps/v1"), stamp, patch_type=PatchType.STRATEGIC)
    assert patched["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"] == "now"
    assert patched["metadata"]["generation"] == first["metadata"]["generation"] + 1


def test_apply_patch_type_is_server_side_apply(cluster: Cluster, ns: str) -> None:
    cluster.apply(cm(ns, "a", {"k": "v"}))
    patched = cluster.patch(ref(ns, "ConfigMap", "a"), cm(ns, "a", {"k": "w"}), patch_type=PatchType.APPLY)
    assert patched["data"] == {"k": "w"}


def test_patch_of_missing_object_is_not_found(cluster: Cluster, ns: str) -> None:
    with pytest.raises(NotFoundError):
        cluster.patch(ref(ns, "ConfigMap", "absent"), {"data": {"a": "b"}})


def test_stale_resource_version_is_a_conflict(cluster: Cluster, ns: str) -> None:
    first = cluster.apply(cm(ns, "a", {"k": "v"}))
    cluster.patch(ref(ns, "ConfigMap", "a"), {"data": {"k": "w"}})
    stale = {"metadata": {"resourceVersion": first["metadata"]["resourceVersion"]}, "data": {"k": "x"}}
    with pytest.raises(ConflictError):
        cluster.patch(ref(ns, "ConfigMap", "a"), stale)


def test_label_selector_lists(cluster: Cluster, ns: str) -> None:
    cluster.apply(cm(ns, "a", labels={"tier": "web", "env": "prod"}))
    cluster.apply(cm(ns, "b", labels={"tier": "db", "env": "prod"}))
    cluster.apply(cm(ns, "c", labels={"tier": "web"}))

    def names(selector: str) -> list[str]:
        objs = cluster.list("v1", "ConfigMap", ns, selector)
        return sorted(o["metadata"]["name"] for o in objs if o["metadata"]["name"] in "abc")

    assert names("tier=web") == ["a", "c"]
    assert names("tier=web,env=prod") == ["a"]
    assert names("tier in (web,db),env") == ["a", "b"]
    assert names("!env") == ["c"]
    assert names("tier!=web") == ["b"]


def test_list_all_namespaces_and_one_namespace(cluster: Cluster, ns: str) -> None:
    other = f"{ns}-other"
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}})
    cluster.apply(cm(ns, "a", labels={"probe": ns}))
    cluster.apply(cm(other, "a", labels={"probe": ns}))
    everywhere = cluster.list("v1", "ConfigMap", None, f"probe={ns}")
    assert sorted(o["metadata"]["namespace"] for o in everywhere) == [ns, other]
    assert [o["metadata"]["namespace"] for o in cluster.list("v1", "ConfigMap", other, f"probe={ns}")] == [other]


def test_cluster_scoped_objects(cluster: Cluster, ns: str) -> None:
    created = cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"{ns}-scoped"}})
    assert "namespace" not in created["metadata"]
    assert cluster.get(ObjectRef("v1", "Namespace", "", f"{ns}-scoped")) is not None
    names = [o["metadata"]["name"] for o in cluster.list("v1", "Namespace")]
    assert f"{ns}-scoped" in names and ns in names


def _owned_by(ns: str, owner: dict[str, Any], name: str) -> dict[str, Any]:
    dep = cm(ns, name)
    dep["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap",
                                           "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"]}]
    return dep


@pytest.mark.parametrize("propagation", [Propagation.BACKGROUND, Propagation.FOREGROUND])
def test_delete_cascades_to_dependents(cluster: Cluster, ns: str, propagation: Propagation) -> None:
    owner = cluster.apply(cm(ns, "owner"))
    child = cluster.apply(_owned_by(ns, owner, "child"))
    cluster.apply(_owned_by(ns, child, "grandchild"))
    last = cluster.delete(ref(ns, "ConfigMap", "owner"), propagation=propagation)
    assert last is not None and last["metadata"]["uid"] == owner["metadata"]["uid"]
    _eventually(lambda: all(cluster.get(ref(ns, "ConfigMap", n)) is None for n in ("owner", "child", "grandchild")))


def test_orphan_delete_keeps_dependents(cluster: Cluster, ns: str) -> None:
    owner = cluster.apply(cm(ns, "owner"))
    cluster.apply(_owned_by(ns, owner, "child"))
    cluster.delete(ref(ns, "ConfigMap", "owner"), propagation=Propagation.ORPHAN)
    _eventually(lambda: cluster.get(ref(ns, "ConfigMap", "owner")) is None)
    child = cluster.get(ref(ns, "ConfigMap", "child"))
    assert child is not None and not child["metadata"].get("ownerReferences")


def test_dry_run_delete_keeps_the_object(cluster: Cluster, ns: str) -> None:
    cluster.apply(cm(ns, "a"))
    assert cluster.delete(ref(ns, "ConfigMap", "a"), dry_run=True) is not None
    assert cluster.get(ref(ns, "ConfigMap", "a")) is not None


def test_delete_of_missing_object_is_none(cluster: Cluster, ns: str) -> None:
    assert cluster.delete(ref(ns, "ConfigMap", "absent")) is None


def test_invalid_object_is_rejected(cluster: Cluster, ns: str) -> None:
    with pytest.raises(InvalidObjectError):
        cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": ns}})


def test_reads_are_copies(cluster: Cluster, ns: str) -> None:
    cluster.apply(cm(ns, "a", {"k": "v"}))
    got = cluster.get(ref(ns, "ConfigMap", "a"))
    assert got is not None
    got["data"]["k"] = "mutated"
    again = cluster.get(ref(ns, "ConfigMap", "a"))
    assert again is not None and again["data"] == {"k": "v"}


def _eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Garbage collection is asynchronous on a real API server; wait for it briefly."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_kinds_the_server_does_not_serve_read_as_empty(cluster: Cluster, ns: str) -> None:
    assert cluster.list("example.com/v1", "Gadget", ns) == []
    assert cluster.get(ObjectRef("example.com/v1", "Gadget", ns, "g")) is None
    assert cluster.delete(ObjectRef("example.com/v1", "Gadget", ns, "g")) is None


def test_deleting_a_namespace_deletes_its_objects(cluster: Cluster, ns: str) -> None:
    cluster.apply(cm(ns, "a"))
    cluster.apply(deployment(ns, "web"))
    cluster.delete(ObjectRef("v1", "Namespace", "", ns))
    _eventually(lambda: not cluster.list("v1", "ConfigMap", ns) and not cluster.list("apps/v1", "Deployment", ns))


def test_a_recorded_pre_image_can_be_re_applied_after_later_changes(cluster: Cluster, ns: str) -> None:
    before = cluster.apply(cm(ns, "a", {"k": "v"}, {"app": "x"}))
    cluster.apply(cm(ns, "a", {"k": "changed"}, {"app": "x", "mesh": "on"}))
    restored = cluster.apply(before)
    assert restored["data"] == {"k": "v"} and restored["metadata"]["labels"] == {"app": "x"}


def test_secret_string_data_is_stored_as_data(cluster: Cluster, ns: str) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": ns},
              "data": {"a": "YQ=="}, "stringData": {"b": "bee"}}
    stored = cluster.apply(secret)
    assert stored["data"] == {"a": "YQ==", "b": "YmVl"} and "stringData" not in stored
    got = cluster.get(ObjectRef("v1", "Secret", ns, "s"))
    assert got is not None and got["data"] == stored["data"] and "stringData" not in got
