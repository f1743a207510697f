"""API fault rules: which requests they match, how they fire, how they retire, what they answer."""

from __future__ import annotations

import pytest

from runbook_engine.errors import UserInputError
from runbook_engine.kube.refs import REGISTRY
from runbook_engine.sandbox.faults import FaultSet, fault_error, parse_fault

DEPLOYMENTS = REGISTRY.get("apps/v1", "Deployment")
PODS = REGISTRY.get("v1", "Pod")


@pytest.mark.parametrize("resource", ["deployments", "Deployment", "deployment"])
def test_rules_match_by_plural_kind_or_singular(resource: str) -> None:
    rule = parse_fault({"api_error": {"status": 500, "verb": "patch", "resource": resource}}, "r")
    assert rule is not None
    assert rule.matches("patch", DEPLOYMENTS, "sre")
    assert not rule.matches("get", DEPLOYMENTS, "sre")
    assert not rule.matches("patch", PODS, "sre")


def test_namespace_narrows_a_rule() -> None:
    rule = parse_fault({"api_error": {"status": 500, "namespace": "sre"}}, "r")
    assert rule is not None and rule.matches("list", PODS, "sre") and not rule.matches("list", PODS, "other")


def test_counted_rules_retire_after_firing() -> None:
    faults = FaultSet()
    faults.add_spec({"api_error": {"status": 503, "count": 2}})
    codes = [d.error.code if d.error else 200 for d in (faults.decide("get", PODS, "x") for _ in range(3))]
    assert codes == [503, 503, 200]
    assert faults.rules() == []


def test_latency_adds_up_and_does_not_fail() -> None:
    faults = FaultSet()
    faults.extend([{"api_latency": {"seconds": 0.2}}, {"api_latency": {"seconds": 0.1, "verb": "list"}}])
    decision = faults.decide("list", PODS, "x")
    assert decision.delay == pytest.approx(0.3) and decision.error is None


def test_probability_is_repeatable_with_a_seed() -> None:
    def run() -> list[bool]:
        faults = FaultSet()
        faults.seed(3)
        faults.add_spec({"api_error": {"status": 500, "probability": 0.5}})
        return [faults.decide("patch", PODS, "x").error is not None for _ in range(20)]

    first = run()
    assert first == run() and 3 < sum(first) < 17


def test_other_fault_types_are_not_api_faults() -> None:
    assert parse_fault({"crashloop": {"namespace": "sre", "workload": "w"}}, "r") is None


@pytest.mark.parametrize("spec", [
    {"api_error": {"probability": 1.5}},
    {"api_error": {"status": "five hundred"}},
    {"api_latency": "slow"},
])
def test_invalid_fault_specs_are_user_errors(spec: dict[str, object]) -> None:
    with pytest.raises(UserInputError):
        parse_fault(spec, "r")


def test_fault_errors_read_like_the_real_server() -> None:
    assert fault_error(500).body()["reason"] == "InternalError"
    throttled = fault_error(429)
    assert (throttled.headers, throttled.body()["details"]) == ({"Retry-After": "1"}, {"retryAfterSeconds": 1})
