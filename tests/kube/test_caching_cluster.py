"""CachingCluster: one list per kind per phase reaches the cluster; writes and new phases refresh."""

from __future__ import annotations

from typing import Any

from runbook_engine.kube.caching import CachingCluster
from runbook_engine.kube.cluster import Cluster
from runbook_engine.kube.memory import MemoryCluster
from runbook_engine.kube.refs import ObjectRef


def cm(name: str, ns: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns, "labels": labels}}


def setup() -> tuple[MemoryCluster, CachingCluster]:
    inner = MemoryCluster([cm("a", "x", tier="web"), cm("b", "x", tier="db"), cm("c", "y", tier="web"),
                           {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}])
    return inner, CachingCluster(inner)


def names(objs: list[dict[str, Any]]) -> list[str]:
    return sorted(o["metadata"]["name"] for o in objs)


def test_is_a_cluster() -> None:
    assert isinstance(setup()[1], Cluster)


def test_narrower_lists_and_gets_come_from_the_all_namespaces_list() -> None:
    inner, cache = setup()
    assert names(cache.list("v1", "ConfigMap")) == ["a", "b", "c"]
    assert names(cache.list("v1", "ConfigMap", "x")) == ["a", "b"]
    assert names(cache.list("v1", "ConfigMap", None, "tier=web")) == ["a", "c"]
    assert names(cache.list("v1", "ConfigMap", "y", "tier=web")) == ["c"]
    got = cache.get(ObjectRef("v1", "ConfigMap", "x", "b"))
    assert got is not None and got["metadata"]["labels"] == {"tier": "db"}
    assert cache.get(ObjectRef("v1", "ConfigMap", "x", "absent")) is None
    assert inner.requests == {"list ConfigMap": 1}
    assert (cache.hits, cache.misses) == (5, 1)


def test_a_namespaced_list_answers_its_selector_lists_but_not_other_namespaces() -> None:
    inner, cache = setup()
    cache.list("v1", "ConfigMap", "x")
    assert names(cache.list("v1", "ConfigMap", "x", "tier=db")) == ["b"]
    assert names(cache.list("v1", "ConfigMap", "y")) == ["c"]
    assert inner.requests["list ConfigMap"] == 2


def test_a_selector_list_does_not_answer_an_unfiltered_one() -> None:
    inner, cache = setup()
    cache.list("v1", "ConfigMap", None, "tier=web")
    assert names(cache.list("v1", "ConfigMap")) == ["a", "b", "c"]
    assert inner.requests["list ConfigMap"] == 2


def test_get_without_a_cached_list_goes_to_the_cluster() -> None:
    inner, cache = setup()
    assert cache.get(ObjectRef("v1", "Namespace", "", "x")) is not None
    cache.list("v1", "Namespace")
    assert cache.get(ObjectRef("v1", "Namespace", "", "x")) is not None
    assert inner.requests == {"get Namespace": 1, "list Namespace": 1}


def test_a_write_invalidates_its_kind_only() -> None:
    inner, cache = setup()
    cache.list("v1", "ConfigMap")
    cache.list("v1", "Namespace")
    cache.apply(cm("d", "x", tier="web"))
    assert names(cache.list("v1", "ConfigMap", "x")) == ["a", "b", "d"]
    cache.list("v1", "Namespace")
    assert inner.requests["list ConfigMap"] == 2 and inner.requests["list Namespace"] == 1


def test_a_dry_run_write_keeps_the_cache() -> None:
    inner, cache = setup()
    cache.list("v1", "ConfigMap")
    cache.apply(cm("d", "x"), dry_run=True)
    cache.patch(ObjectRef("v1", "ConfigMap", "x", "a"), {"data": {"k": "v"}}, dry_run=True)
    cache.delete(ObjectRef("v1", "ConfigMap", "x", "a"), dry_run=True)
    assert names(cache.list("v1", "ConfigMap")) == ["a", "b", "c"]
    assert inner.requests["list ConfigMap"] == 1


def test_patch_and_delete_are_seen_by_the_next_read() -> None:
    _, cache = setup()
    cache.list("v1", "ConfigMap")
    cache.patch(ObjectRef("v1", "ConfigMap", "x", "a"), {"metadata": {"labels": {"tier": "db"}}})
    assert names(cache.list("v1", "ConfigMap", None, "tier=db")) == ["a", "b"]
    cache.delete(ObjectRef("v1", "ConfigMap", "x", "b"))
    assert names(cache.list("v1", "ConfigMap", None, "tier=db")) == ["a"]


def test_new_phase_rereads_and_cached_results_are_copies() -> None:
    inner, cache = setup()
    first = cache.list("v1", "ConfigMap")
    first[0]["metadata"]["labels"]["tier"] = "mutated"
    assert "mutated" not in str(cache.list("v1", "ConfigMap"))
    inner.apply(cm("e", "x"))  # changed behind the cache's back
    assert names(cache.list("v1", "ConfigMap")) == ["a", "b", "c"]
    cache.new_phase()
    assert names(cache.list("v1", "ConfigMap")) == ["a", "b", "c", "e"]


def test_disabled_passes_every_read_through_to_the_cluster() -> None:
    inner = MemoryCluster([cm("a", "x"), cm("b", "x")])
    cache = CachingCluster(inner, enabled=False)
    assert names(cache.list("v1", "ConfigMap")) == ["a", "b"]
    assert names(cache.list("v1", "ConfigMap", "x")) == ["a", "b"]
    assert cache.get(ObjectRef("v1", "ConfigMap", "x", "a")) is not None
    assert inner.requests == {"list ConfigMap": 2, "get ConfigMap": 1}
    assert (cache.hits, cache.misses) == (0, 0)
