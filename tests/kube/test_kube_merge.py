"""Patch semantics (merge, strategic, JSON) from case files, and server-side apply field ownership."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from runbook_engine.errors import ConflictError, InvalidObjectError
from runbook_engine.kube.merge import (
    from_fields_v1,
    json_patch,
    leaf_values,
    merge_patch,
    record_update,
    server_side_apply,
    strategic_merge,
    to_fields_v1,
)

CASES = yaml.safe_load((Path(__file__).parent / "cases" / "patches.yaml").read_text())
PATCHERS = {"merge": merge_patch, "strategic": strategic_merge, "json": json_patch}
NOW = "2026-01-01T00:00:00Z"


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_patch_case(case: dict[str, Any]) -> None:
    patcher = PATCHERS[case["type"]]
    original = yaml.safe_load(yaml.safe_dump(case["target"]))
    if "error" in case:
        with pytest.raises(InvalidObjectError, match=case["error"]):
            patcher(case["target"], case["patch"])
    else:
        assert patcher(case["target"], case["patch"]) == case["expected"]
    assert case["target"] == original, "patching must not modify its input"


def _cm(data: dict[str, str], labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "c", "namespace": "n"}
    if labels is not None:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def test_fields_v1_round_trip() -> None:
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "1"}},
           "spec": {"containers": [{"name": "app", "image": "x"}]}}
    paths = set(leaf_values(obj))
    fields = to_fields_v1(paths)
    assert fields["f:spec"]["f:containers"]['k:{"name":"app"}']["f:image"] == {}
    assert "f:name" not in fields["f:metadata"]
    assert from_fields_v1(fields) == paths


def test_apply_removes_fields_the_manager_stopped_applying() -> None:
    first = server_side_apply(None, _cm({"a": "1", "b": "2"}), manager="m", force=False, now=NOW)
    second = server_side_apply(first, _cm({"a": "1"}), manager="m", force=False, now=NOW)
    assert second["data"] == {"a": "1"}


def test_apply_keeps_fields_other_managers_own() -> None:
    first = server_side_apply(None, _cm({"a": "1"}, {"app": "x"}), manager="creator", force=False, now=NOW)
    mine = server_side_apply(first, _cm({}, {"mesh": "on"}), manager="m", force=False, now=NOW)
    assert mine["metadata"]["labels"] == {"app": "x", "mesh": "on"}
    undone = server_side_apply(mine, _cm({}, {}), manager="m", force=False, now=NOW)
    assert undone["metadata"]["labels"] == {"app": "x"}
    assert undone["data"] == {"a": "1"}


def test_apply_conflict_unless_forced() -> None:
    first = server_side_apply(None, _cm({"a": "1"}), manager="other", force=False, now=NOW)
    with pytest.raises(ConflictError, match="other"):
        server_side_apply(first, _cm({"a": "2"}), manager="m", force=False, now=NOW)
    forced = server_side_apply(first, _cm({"a": "2"}), manager="m", force=True, now=NOW)
    assert forced["data"] == {"a": "2"}
    owners = {e["manager"]: from_fields_v1(e["fieldsV1"]) for e in forced["metadata"]["managedFields"]}
    assert ("f:data", "f:a") in owners["m"]
    assert "other" not in owners  # it lost its only field


def test_apply_same_value_is_shared_not_a_conflict() -> None:
    first = server_side_apply(None, _cm({"a": "1"}), manager="other", force=False, now=NOW)
    shared = server_side_apply(first, _cm({"a": "1"}), manager="m", force=False, now=NOW)
    managers = sorted(e["manager"] for e in shared["metadata"]["managedFields"])
    assert managers == ["m", "other"]


def test_apply_merges_keyed_lists_and_removes_items_it_owned() -> None:
    def dep(*containers: str) -> dict[str, Any]:
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "n"},
                "spec": {"template": {"spec": {"containers": [{"name": c, "image": c} for c in containers]}}}}

    base = server_side_apply(None, dep("app"), manager="creator", force=False, now=NOW)
    with_sidecar = server_side_apply(base, dep("proxy"), manager="m", force=False, now=NOW)
    names = [c["name"] for c in with_sidecar["spec"]["template"]["spec"]["containers"]]
    assert names == ["app", "proxy"]
    without = server_side_apply(with_sidecar, dep(), manager="m", force=False, now=NOW)
    assert [c["name"] for c in without["spec"]["template"]["spec"]["containers"]] == ["app"]


def test_record_update_moves_ownership_to_the_patcher() -> None:
    first = server_side_apply(None, _cm({"a": "1"}), manager="m", force=False, now=NOW)
    patched = merge_patch(first, {"data": {"a": "2"}})
    updated = record_update(first, patched, manager="kubectl-edit", now=NOW)
    owners = {(e["manager"], e["operation"]): from_fields_v1(e["fieldsV1"])
              for e in updated["metadata"]["managedFields"]}
    assert owners[("kubectl-edit", "Update")] == {("f:data", "f:a")}
    assert ("m", "Apply") not in owners
    # The applier no longer owns data.a, so re-applying without it leaves the patched value alone.
    again = server_side_apply(updated, _cm({}), manager="m", force=False, now=NOW)
    assert again["data"] == {"a": "2"}


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from(["a", "b", "c"]))
_names = st.sampled_from(["app", "proxy", "init"])
_containers = st.lists(st.fixed_dictionaries({"name": _names}, optional={"image": st.sampled_from(["x", "y"])}),
                       max_size=3, unique_by=lambda c: c["name"])
_docs = st.recursive(
    _scalars,
    lambda inner: st.dictionaries(st.sampled_from(["k", "l", "m"]), inner, max_size=3),
    max_leaves=8,
)


@given(target=_docs, patch=st.dictionaries(st.sampled_from(["k", "l", "containers"]),
                                           st.one_of(_docs, _containers), max_size=3))
def test_merge_and_strategic_patches_are_idempotent(target: Any, patch: dict[str, Any]) -> None:
    for patcher in (merge_patch, strategic_merge):
        once = patcher(target, patch)
        assert patcher(once, patch) == once


@given(data=st.dictionaries(st.sampled_from(["a", "b", "c"]), st.sampled_from(["1", "2"]), max_size=3),
       labels=st.dictionaries(st.sampled_from(["x", "y"]), st.sampled_from(["on", "off"]), max_size=2),
       containers=_containers)
def test_applying_the_same_configuration_twice_changes_nothing(
    data: dict[str, str], labels: dict[str, str], containers: list[dict[str, str]]
) -> None:
    config = {**_cm(data, labels), "spec": {"containers": containers}}
    once = server_side_apply(None, config, manager="m", force=False, now=NOW)
    assert server_side_apply(once, config, manager="m", force=False, now=NOW) == once


def _deployment_with_two_managers() -> dict[str, Any]:
    seeded = record_update({"apiVersion": "apps/v1", "metadata": {}}, {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "api", "namespace": "sre", "labels": {"app": "api", "tier": "web"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "api"}},
                 "template": {"metadata": {"labels": {"app": "api"}},
                              "spec": {"containers": [{"name": "app", "image": "api:1"}]}}},
    }, manager="kubectl-create", now="2026-01-01T00:00:00Z")
    patched = merge_patch(seeded, {"metadata": {"labels": {"team": "sre"}}})
    return record_update(seeded, patched, manager="labeller", now="2026-01-02T00:00:00Z")


MERGE_PATCHES = [
    {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "now"}}}}},
    {"metadata": {"labels": {"tier": None, "team": "platform"}}},
    {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "api:2"}]}}}},
    {"spec": {"replicas": 3, "paused": True}},
    {"spec": {"template": {"metadata": None}}},
    {"metadata": {"annotations": {"note": "x"}}, "spec": {"selector": {"matchLabels": {"app": "api"}}}},
]


@pytest.mark.parametrize("patch", MERGE_PATCHES)
def test_ownership_of_a_merge_patch_is_the_same_whether_or_not_it_is_scoped_by_the_patch(patch: Any) -> None:
    before = _deployment_with_two_managers()
    after = merge_patch(before, patch)
    now = "2026-01-03T00:00:00Z"
    full = record_update(before, after, manager="runbook-engine", now=now)
    scoped = record_update(before, after, manager="runbook-engine", now=now, merge_patch=patch)
    assert scoped == full
    assert "kubectl-create" in {e["manager"] for e in full["metadata"]["managedFields"]}
