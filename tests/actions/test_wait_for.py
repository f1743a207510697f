"""wait_for: conditions, JSONPath values and existence; progress, timeouts that say what was seen, check mode."""

from __future__ import annotations

import threading

import pytest

from runbook_engine.actions.base import ActionContext
from runbook_engine.actions.jsonpath import find, render
from runbook_engine.actions.wait_for import WaitFor, WaitForArgs
from runbook_engine.errors import UserInputError
from runbook_engine.kube.refs import ObjectRef

from .actions_support import StatusDriven, deployment

API = ObjectRef("apps/v1", "Deployment", "shop", "api")
AVAILABLE = {"conditions": [{"type": "Available", "status": "True"}], "phase": "Running"}
UNAVAILABLE = {"conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"}]}


@pytest.fixture
def cluster() -> StatusDriven:
    return StatusDriven([deployment("api")])


def wait(cluster: StatusDriven, check_mode: bool = False, **args: object) -> tuple[str, bool, str]:
    """(plan message, settled ok, settled message); check mode stops after the plan, as the engine does."""
    ctx = ActionContext(cluster=cluster, check_mode=check_mode)
    parsed = WaitForArgs.model_validate({"kind": "Deployment", "namespace": "shop", "timeout": 0.3,
                                         "interval": 0.02, **args})
    planned = WaitFor().plan(ctx, parsed)
    assert planned.changes == []
    if check_mode:
        assert not WaitFor.settle_in_check_mode
        return planned.msg, True, ""
    settled = WaitFor().settle(ctx, parsed, [])
    return planned.msg, settled.ok, settled.msg


def test_condition_met(cluster: StatusDriven) -> None:
    cluster.set_status(API, AVAILABLE)
    _, ok, msg = wait(cluster, name="api", condition="Available")
    assert ok and msg.startswith("Deployment api: condition Available=True met after")


def test_condition_that_turns_true_while_waiting(cluster: StatusDriven) -> None:
    cluster.set_status(API, UNAVAILABLE)
    timer = threading.Timer(0.1, cluster.set_status, (API, AVAILABLE))
    timer.start()
    _, ok, _ = wait(cluster, name="api", condition={"type": "Available", "status": True}, timeout=2)
    timer.join()
    assert ok


def test_timeout_names_the_object_and_what_it_showed(cluster: StatusDriven) -> None:
    cluster.set_status(API, UNAVAILABLE)
    _, ok, msg = wait(cluster, name="api", condition="Available")
    assert not ok
    assert msg == ("timed out after 0.3s waiting for Deployment api: condition Available=True: "
                   "Deployment/shop/api (Available=False (MinimumReplicasUnavailable))")


def test_jsonpath_value(cluster: StatusDriven) -> None:
    cluster.set_status(API, AVAILABLE)
    assert wait(cluster, name="api", jsonpath="{.status.phase}", value="Running")[1]
    _, ok, msg = wait(cluster, name="api", jsonpath=".spec.replicas", value=3)
    assert not ok and msg.endswith("Deployment/shop/api (.spec.replicas is '2')")


def test_selector_must_match_something(cluster: StatusDriven) -> None:
    _, ok, msg = wait(cluster, selector="app=nothing")
    assert not ok and "Deployment selector 'app=nothing' (no object matches)" in msg
    assert wait(cluster, selector="app=api")[1]  # existence is enough without a criterion


def test_check_mode_reports_what_it_would_wait_for(cluster: StatusDriven) -> None:
    msg, _, _ = wait(cluster, check_mode=True, name="api", condition="Available", timeout=60)
    assert msg == "would wait up to 60s for Deployment api: condition Available=True"


STATUS = {"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Synced", "status": "False"}],
                     "ready": True, "ports": [1, 2], "a.b": {"c": "dotted"}}}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("{.status.conditions[?(@.type==\"Ready\")].status}", ["True"]),
        (".status.conditions[?(@.type!='Ready')].type", ["Synced"]),
        ("{.status.conditions[*].type}", ["Ready", "Synced"]),
        ("{.status.ports[1]}", ["2"]),
        ("{.status.ready}", ["true"]),
        ("{$.status['a.b'].c}", ["dotted"]),
        ("{.status.missing}", []),
    ],
)
def test_jsonpath_subset(expr: str, expected: list[str]) -> None:
    assert [render(v) for v in find(STATUS, expr)] == expected


def test_jsonpath_refuses_what_it_does_not_understand() -> None:
    with pytest.raises(UserInputError, match="unsupported JSONPath"):
        find(STATUS, "{range .items[*]}{.name}{end}")
