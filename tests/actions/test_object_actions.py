"""Object actions from case files: the exact changes planned, and idempotence once they are carried out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from runbook_engine.errors import UserInputError
from runbook_engine.kube.change import Change
from runbook_engine.kube.memory import MemoryCluster
from runbook_engine.kube.merge import to_apply_config

from .actions_support import Planner, execute

CASES: list[dict[str, Any]] = yaml.safe_load((Path(__file__).parent / "cases" / "object_actions.yaml").read_text())


def assert_change(change: Change, want: dict[str, Any], cluster_before: MemoryCluster) -> None:
    assert change.kind.value == want["kind"]
    assert str(change.ref) == want["ref"]
    if "before" in want:
        expected = cluster_before.get(change.ref) if want["before"] == "live" else want["before"]
        assert change.before == expected
    if "after" in want:
        assert change.after == want["after"]
    for key, value in (want.get("meta") or {}).items():
        assert change.meta[key] == value


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_object_action_case(case: dict[str, Any], plan: Planner, cluster: MemoryCluster) -> None:
    for obj in case.get("extra", []):
        cluster.apply(obj, field_manager="kubectl")
    writes = cluster.writes
    planned = plan(case["action"], case["args"])
    assert cluster.writes == writes, "plan must only read"
    expect = case["expect"]
    assert planned.failed is expect.get("failed", False)
    assert expect["msg"] in planned.msg
    changes = sorted(planned.changes, key=lambda c: str(c.ref))
    assert len(changes) == len(expect["changes"]), [str(c.ref) for c in changes]
    for change, want in zip(changes, expect["changes"], strict=True):
        assert_change(change, want, cluster)
    assert planned.result.get("changed", False) is bool(changes)

    execute(cluster, planned.changes)
    for change in planned.changes:
        if "patch" in change.meta:  # carried out as a patch: the object is now exactly `after`
            assert to_apply_config(cluster.get(change.ref) or {}) == to_apply_config(change.after or {})
    if "repeat_error" in case:
        with pytest.raises(UserInputError, match=case["repeat_error"]):
            plan(case["action"], case["args"])
        return
    again = plan(case["action"], case["args"])
    assert again.changes == [], "planning again after the changes were made must plan nothing"
