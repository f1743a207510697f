"""Predictions reused across states: a changed input always invalidates a previous result.

Cases are ``tests/mesh/cases/reuse/*.yaml``: a ``before`` platform, the change that makes ``after``
(objects added or removed, workloads predicted as restarted), flows and the outcomes expected in both
states. Unchanged objects are the very same dicts in both states, as in the planner's simulation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mesh_builders import case_params, expand

from runbook_engine.kube.flow import Flow
from runbook_engine.mesh import MeshView, Predictions, evaluate_flow

CASES_DIR = Path(__file__).parent / "cases" / "reuse"


def _ref(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    name = f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]
    return f"{obj['kind']} {name}"


def _after(before: list[dict[str, Any]], case: dict[str, Any]) -> list[dict[str, Any]]:
    removed = set(case.get("remove") or [])
    return [o for o in before if _ref(o) not in removed] + expand(case.get("add") or [])


@pytest.mark.parametrize(("case", "entries"), case_params(CASES_DIR, "before"))
def test_reuse_case(case: dict[str, Any], entries: list[dict[str, Any]]) -> None:
    before_objects = expand(entries)
    before_view = MeshView.build(before_objects)
    after_view = MeshView.build(_after(before_objects, case), restarted=case.get("restarted") or ())
    flows = [Flow.model_validate(f) for f in case["flows"]]
    first = Predictions(before_view)
    second = Predictions(after_view, first)
    old = [first.result(f) for f in flows]
    new = [second.result(f) for f in flows]
    fresh = [evaluate_flow(MeshView.build(_after(before_objects, case), restarted=case.get("restarted") or ()), f)
             for f in flows]
    expect = case["expect"]
    assert [r.outcome.value for r in old] == expect["before"]
    assert [r.outcome.value for r in new] == expect["after"]
    assert [(r.outcome, r.reasons) for r in new] == [(r.outcome, r.reasons) for r in fresh]
    assert second.reused == expect["reused"]
    if "reason" in expect:
        assert expect["reason"] in new[0].summary
        assert expect["reason"] not in old[0].summary


def test_a_result_is_reused_only_once_computed_in_the_previous_state() -> None:
    objects = expand([{"deploy": "shop/web", "pod": {}}, {"deploy": "shop/cart", "pod": {}},
                      {"service": "shop/cart", "port": 80, "targetPort": 8080}])
    flow = Flow.model_validate({"from": "shop/web", "to": "shop/cart:80"})
    first = Predictions(MeshView.build(objects))
    second = Predictions(MeshView.build(objects), first)
    assert second.result(flow).outcome.value == "ok"
    assert second.reused == 0  # the previous state never predicted it
    third = Predictions(MeshView.build(objects), second)
    assert third.result(flow) is second.result(flow)
    assert third.reused == 1


def test_a_changed_mesh_config_reuses_nothing() -> None:
    base = [{"namespace": "sre", "labels": {"istio-injection": "enabled"}},
            {"deploy": "sre/client", "proxy": "container", "pod": {}},
            {"se": "sre/api", "spec": {"hosts": ["api.example.com"], "ports": [{"number": 443, "protocol": "TLS"}]}}]
    flow = Flow.model_validate({"from": "sre/client", "to": "external:unknown.example.com:443", "protocol": "tcp"})
    first = Predictions(MeshView.build(expand([{"istiod": "default"}, *base])))
    assert first.result(flow).outcome.value == "ok"
    registry_only = {"istiod": "default", "mesh": {"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}}
    second = Predictions(MeshView.build(expand([registry_only, *base])), first)
    assert second.result(flow).outcome.value == "reset"
    assert second.reused == 0
