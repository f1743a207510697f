"""assert, set_fact and pause: results, facts and operator gates, never changes."""

from __future__ import annotations

from runbook_engine.actions.base import ACTIONS, ActionContext
from runbook_engine.actions.pause import Pause, PauseArgs
from runbook_engine.kube.memory import MemoryCluster

from .actions_support import Planner


def test_assert_passes_when_every_condition_holds(plan: Planner) -> None:
    planned = plan("assert", {"that": [True, True], "success_msg": "mesh ready"})
    assert not planned.failed and planned.msg == "mesh ready" and planned.changes == []


def test_assert_names_the_first_false_condition(plan: Planner) -> None:
    planned = plan("assert", {"that": [True, False, False]})
    assert planned.failed
    assert planned.msg == "Assertion failed: condition 2 of 3 is false"
    assert planned.result["failed_conditions"] == [2, 3]
    assert plan("assert", {"that": False, "fail_msg": "istiod is not ready"}).msg == "istiod is not ready"


def test_assert_asks_the_engine_to_evaluate_that() -> None:
    assert ACTIONS["assert"].condition_args == ("that",)


def test_set_fact_returns_facts(plan: Planner) -> None:
    planned = plan("set_fact", {"mesh_ns": "istio-system", "batches": [["a"], ["b"]]})
    assert planned.facts == {"mesh_ns": "istio-system", "batches": [["a"], ["b"]]}
    assert planned.changes == [] and planned.msg == "set batches, mesh_ns"


def test_pause_is_an_operator_gate(plan: Planner) -> None:
    planned = plan("pause", {"prompt": "Check the dashboards, then resume"})
    assert planned.gate == "Check the dashboards, then resume" and planned.changes == []
    assert plan("pause", {}).gate  # a gate even without a prompt


def test_timed_pause_waits_in_settle_without_a_gate() -> None:
    ctx = ActionContext(cluster=MemoryCluster())
    args = PauseArgs(seconds=0.05)
    assert Pause().plan(ctx, args).gate is None
    assert Pause().settle(ctx, args, []).msg == "paused 0.05s"
    assert PauseArgs(minutes=2).duration() == 120
