"""Planner states reuse the previous state's implied flows and predictions only when their inputs are equal."""

from __future__ import annotations

import copy
from typing import Any

from runbook_engine.engine.planner import State
from runbook_engine.kube.flow import Flow
from runbook_engine.mesh import MeshView


def _deployment(probe_port: int, *, proxy: bool = False) -> dict[str, Any]:
    containers: list[dict[str, Any]] = [{"name": "app", "ports": [{"containerPort": 8080, "name": "http"}],
                                         "readinessProbe": {"httpGet": {"path": "/healthz", "port": probe_port}}}]
    if proxy:
        containers.append({"name": "istio-proxy"})
    template = {"metadata": {"labels": {"app": "cart"}}, "spec": {"containers": containers}}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "cart", "namespace": "shop"},
            "spec": {"selector": {"matchLabels": {"app": "cart"}}, "template": template}}


BASE: list[dict[str, Any]] = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "cart", "namespace": "shop"},
     "spec": {"selector": {"app": "cart"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}},
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
     "spec": {"selector": {"matchLabels": {"app": "web"}},
              "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app"}]}}}},
]
STRICT = {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
          "metadata": {"name": "default", "namespace": "istio-system"}, "spec": {"mtls": {"mode": "STRICT"}}}
FLOW = Flow.model_validate({"from": "shop/web", "to": "shop/cart:80"})


def test_an_unchanged_state_keeps_implied_flows_and_predictions() -> None:
    objects = [*BASE, _deployment(8080)]
    first = State(MeshView.build(objects))
    first_implied, first_result = first.implied(), first.result(FLOW)
    second = State(MeshView.build(objects), first)
    assert second.implied() is first_implied
    assert second.result(FLOW) is first_result


def test_an_equal_copy_counts_as_unchanged() -> None:
    first = State(MeshView.build([*BASE, _deployment(8080)]))
    first.implied()
    second = State(MeshView.build(copy.deepcopy([*BASE, _deployment(8080)])), first)
    assert second.implied() == first.implied()


def test_a_changed_probe_changes_the_implied_flows() -> None:
    first = State(MeshView.build([*BASE, _deployment(8080)]))
    assert [f.to for f in first.implied()] == ["shop/cart:8080"]
    second = State(MeshView.build([*BASE, _deployment(9090)]), first)
    assert [f.to for f in second.implied()] == ["shop/cart:9090"]


def test_a_policy_or_a_sidecar_added_between_states_changes_the_prediction() -> None:
    plain = State(MeshView.build([*BASE, _deployment(8080, proxy=True)]))
    assert plain.result(FLOW).outcome.value == "ok"
    strict = State(MeshView.build([*BASE, _deployment(8080, proxy=True), STRICT]), plain)
    assert strict.result(FLOW).outcome.value == "reset"
    unmeshed = State(MeshView.build([*BASE, _deployment(8080), STRICT]), strict)
    assert unmeshed.result(FLOW).outcome.value == "ok"
