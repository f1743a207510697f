"""Ambient enrolment of new pods happens before their containers run, as istio-cni's CNI plugin does.

A pod created onto a known node is enrolled on creation; a pod the scheduler places is enrolled by
the kubelet's runtime before its first container runs — so a short-lived curl probe pod in an
ambient namespace calls with its mesh identity even while the background enroller is not running.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runbook_engine.sandbox.controllers.context import Timing
from runbook_engine.sandbox.controllers.manager import ControllerManager

_spec = importlib.util.spec_from_file_location("physics_world", Path(__file__).parent / "physics_cases" / "world.py")
assert _spec and _spec.loader
_world = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_world)
World = _world.World

REDIRECTION = "ambient.istio.io/redirection"
AMBIENT = {"istio.io/dataplane-mode": "ambient"}
OPT_OUT = {"istio.io/dataplane-mode": "none"}
FAST = Timing(step=0.005, probe_period=0.05, backoff_base=0.05, backoff_cap=0.2)


def _enrolled(pod: dict[str, Any]) -> bool:
    return bool((pod["metadata"].get("annotations") or {}).get(REDIRECTION) == "enabled")


@pytest.mark.parametrize(
    ("ns_labels", "pod_labels", "node", "enrolled"),
    [
        pytest.param(AMBIENT, {}, "node-1", True, id="ambient-namespace"),
        pytest.param({}, AMBIENT, "node-1", True, id="pod-label-opts-in"),
        pytest.param(AMBIENT, OPT_OUT, "node-1", False, id="pod-opts-out-with-none"),
        pytest.param(AMBIENT, {}, "node-9", False, id="no-ztunnel-on-the-node"),
        pytest.param({"istio-injection": "enabled", **AMBIENT}, {}, "node-1", False, id="sidecar-wins"),
        pytest.param({}, {}, "node-1", False, id="namespace-not-ambient"),
    ],
)
def test_a_pod_created_onto_its_node_is_enrolled_on_creation(
    ns_labels: dict[str, str], pod_labels: dict[str, str], node: str, enrolled: bool
) -> None:
    world = World()
    world.istiod()
    world.ztunnel("node-1")
    world.namespace("shop", ns_labels)
    pod = world.workload("shop", "cart", node=node, pod_labels=pod_labels)  # no enroller pass
    assert _enrolled(pod) is enrolled
    assert world.physics.enroller.reconcile() == 0  # nothing left for the background enroller


def test_a_started_pod_is_left_to_the_background_enroller() -> None:
    world = World()
    world.ztunnel("node-1")
    pod = world.workload("shop", "cart")
    pod["status"]["startTime"] = "2026-01-01T00:00:00Z"
    world.namespace("shop", AMBIENT)
    world.physics.runtime.run_container(world.store, pod, pod["spec"]["containers"][0])
    assert not _enrolled(pod)
    assert world.physics.enroller.reconcile() == 1
    assert _enrolled(world.store.get("v1", "Pod", "shop", pod["metadata"]["name"]))


# -- through the kubelet ------------------------------------------------------------------------------
@pytest.fixture
def default_deny_shop() -> Iterator[tuple[Any, ControllerManager]]:
    """Ambient ``shop`` with default-deny and an ALLOW for the ``prober`` service account only.

    The controllers run with the mesh runtime; the background enroller is deliberately not started.
    """
    world = World()
    world.store.create(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "node-1"},
            "status": {
                "conditions": [{"type": "Ready", "status": "True"}],
                "addresses": [{"type": "InternalIP", "address": "10.0.0.11"}],
            },
        }
    )
    world.istiod()
    world.ztunnel("node-1")
    world.namespace("shop", AMBIENT)
    world.workload("shop", "cart")
    world.apply_yaml("""
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: default-deny, namespace: shop}
spec: {}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: cart-access, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  rules: [{from: [{source: {principals: ["cluster.local/ns/shop/sa/prober"]}}]}]
""")
    manager = ControllerManager(world.store, world.physics.runtime, timing=FAST, seed=7)
    manager.start()
    try:
        manager.settle()  # cart runs and is ready before any probe
        yield world, manager
    finally:
        manager.stop()


def _probe_pod(world: Any, name: str, labels: dict[str, str]) -> None:
    world.store.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "shop", "labels": {"app": name, **labels}},
            "spec": {  # no nodeName: the scheduler places it
                "serviceAccountName": "prober",
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "curl",
                        "image": "curlimages/curl",
                        "args": ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "http://cart.shop:8080/"],
                    }
                ],
            },
        }
    )


def _finished(world: Any, manager: ControllerManager, name: str) -> dict[str, Any]:
    manager.settle()
    pod = world.store.get("v1", "Pod", "shop", name)
    assert pod is not None and pod["status"].get("phase") in ("Succeeded", "Failed"), pod.get("status")
    return dict(pod)


def test_a_scheduled_probe_pod_calls_with_its_ambient_identity(
    default_deny_shop: tuple[Any, ControllerManager],
) -> None:
    world, manager = default_deny_shop
    _probe_pod(world, "probe", {})
    pod = _finished(world, manager, "probe")
    assert world.store.get_pod_log("shop", "probe", "curl") == "200"
    assert pod["status"]["phase"] == "Succeeded" and _enrolled(pod)


def test_a_probe_pod_opted_out_with_none_calls_in_plaintext_and_is_reset(
    default_deny_shop: tuple[Any, ControllerManager],
) -> None:
    world, manager = default_deny_shop
    _probe_pod(world, "plain-probe", OPT_OUT)
    pod = _finished(world, manager, "plain-probe")
    log = world.store.get_pod_log("shop", "plain-probe", "curl")
    assert "curl: (56) Recv failure: Connection reset by peer" in log
    assert pod["status"]["phase"] == "Failed" and not _enrolled(pod)
