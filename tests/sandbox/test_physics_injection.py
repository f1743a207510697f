"""Sidecar injection (Istio classic/native, Linkerd), ambient enrolment, and the injector's faults."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any

import pytest

from runbook_engine.errors import ClusterError

_spec = importlib.util.spec_from_file_location("physics_world", Path(__file__).parent / "physics_cases" / "world.py")
assert _spec and _spec.loader
_world = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_world)
World = _world.World


def _names(pod: dict[str, Any], field: str) -> list[str]:
    return [c["name"] for c in pod["spec"].get(field) or []]


def test_no_injection_before_istiod_is_installed() -> None:
    world = World()
    world.namespace("sre", {"istio-injection": "enabled"})
    pod = world.workload("sre", "api")
    assert "istio-proxy" not in _names(pod, "containers")


def test_classic_sidecar_is_a_container_and_marks_the_pod() -> None:
    world = World()
    world.istiod()
    world.namespace("sre", {"istio-injection": "enabled"})
    pod = world.workload("sre", "api")
    assert _names(pod, "initContainers") == ["istio-init"]
    assert _names(pod, "containers") == ["app", "istio-proxy"]
    assert pod["metadata"]["labels"]["security.istio.io/tlsMode"] == "istio"
    assert "sidecar.istio.io/status" in pod["metadata"]["annotations"]
    probe = pod["spec"]["containers"][0]["readinessProbe"]["httpGet"]
    assert probe == {"path": "/app-health/app/readyz", "port": 15020, "scheme": "HTTP"}


def test_native_sidecar_is_an_init_container_with_restart_policy_always() -> None:
    world = World()
    world.istiod(native=True)
    world.namespace("sre", {"istio-injection": "enabled"})
    pod = world.workload("sre", "api")
    assert _names(pod, "initContainers") == ["istio-init", "istio-proxy"]
    assert pod["spec"]["initContainers"][1]["restartPolicy"] == "Always"
    assert _names(pod, "containers") == ["app"]


@pytest.mark.parametrize(
    ("ns_labels", "pod_labels", "pod_annotations", "injected"),
    [
        ({"istio-injection": "enabled"}, {}, {}, True),
        ({"istio.io/rev": "default"}, {}, {}, True),
        ({"istio.io/rev": "canary"}, {}, {}, False),  # no istiod-canary installed
        ({}, {}, {}, False),
        ({}, {"sidecar.istio.io/inject": "true"}, {}, True),
        ({"istio-injection": "enabled"}, {"sidecar.istio.io/inject": "false"}, {}, False),
        ({"istio-injection": "enabled"}, {}, {"sidecar.istio.io/inject": "false"}, False),
        ({"istio-injection": "disabled"}, {"sidecar.istio.io/inject": "true"}, {}, False),
    ],
)
def test_injection_policy(
    ns_labels: dict[str, str], pod_labels: dict[str, str], pod_annotations: dict[str, str], injected: bool
) -> None:
    world = World()
    world.istiod()
    world.namespace("sre", ns_labels)
    pod = world.workload("sre", "api", pod_labels=pod_labels, pod_annotations=pod_annotations)
    assert ("istio-proxy" in _names(pod, "containers")) is injected


def test_label_without_restart_injects_nothing_but_a_new_pod_gets_a_proxy() -> None:
    world = World()
    world.istiod()
    before = world.workload("sre", "api")
    world.namespace("sre", {"istio-injection": "enabled"})
    still = world.store.get("v1", "Pod", "sre", before["metadata"]["name"])
    assert "istio-proxy" not in _names(still, "containers")
    after = world.restart("sre", "api")
    assert "istio-proxy" in _names(after, "containers")


def test_istiod_down_fails_pod_creation_closed_by_default() -> None:
    world = World()
    world.istiod(ready=False)
    world.namespace("sre", {"istio-injection": "enabled"})
    with pytest.raises(ClusterError) as err:
        world.workload("sre", "api")
    assert err.value.status == 500 and "sidecar-injector.istio.io" in err.value.message
    # a namespace the webhook does not select is unaffected
    assert "istio-proxy" not in _names(world.workload("other", "job"), "containers")


def test_istiod_down_fault_with_failure_policy_ignore_admits_pods_unmeshed() -> None:
    world = World()
    world.istiod(failure_policy="Ignore")
    world.physics.faults.add({"istiod_down": True})
    world.namespace("sre", {"istio-injection": "enabled"})
    assert "istio-proxy" not in _names(world.workload("sre", "api"), "containers")


def test_spire_template_mounts_the_spiffe_csi_socket() -> None:
    world = World()
    world.istiod(spire_template=True)
    world.namespace("sre", {"istio-injection": "enabled"})
    pod = world.workload("sre", "api")
    drivers = [v.get("csi", {}).get("driver") for v in pod["spec"]["volumes"]]
    assert "csi.spiffe.io" in drivers


def test_linkerd_injects_when_the_control_plane_is_ready_and_pods_can_opt_out() -> None:
    world = World()
    world.namespace("emojivoto", annotations={"linkerd.io/inject": "enabled"})
    assert "linkerd-proxy" not in _names(world.workload("emojivoto", "early"), "containers")
    world.linkerd()
    assert _names(world.workload("emojivoto", "web"), "containers") == ["linkerd-proxy", "app"]
    opted_out = world.workload("emojivoto", "job", pod_annotations={"linkerd.io/inject": "disabled"})
    assert "linkerd-proxy" not in _names(opted_out, "containers")
    pod_opt_in = world.workload("plain", "api", pod_annotations={"linkerd.io/inject": "enabled"})
    assert "linkerd-init" in _names(pod_opt_in, "initContainers")


def _redirected(world: Any, ns: str, app: str) -> bool:
    pods = [p for p in world.store.list("v1", "Pod", ns) if p["metadata"]["labels"]["app"] == app]
    value = pods[0]["metadata"].get("annotations", {}).get("ambient.istio.io/redirection")
    return bool(value == "enabled")


def test_ambient_enrols_live_honours_opt_out_and_needs_ztunnel_on_the_node() -> None:
    world = World()
    world.ztunnel("node-1")
    world.workload("shop", "cart")
    world.workload("shop", "report", pod_labels={"istio.io/dataplane-mode": "none"})
    world.workload("shop", "far", node="node-9")
    world.physics.enroller.reconcile()
    assert not _redirected(world, "shop", "cart")
    world.namespace("shop", {"istio.io/dataplane-mode": "ambient"})
    assert world.physics.enroller.reconcile() == 1
    assert _redirected(world, "shop", "cart")
    assert not _redirected(world, "shop", "report")
    assert not _redirected(world, "shop", "far")  # no ztunnel on node-9
    world.namespace("shop", {"istio.io/dataplane-mode": "none"})
    world.physics.enroller.reconcile()
    assert not _redirected(world, "shop", "cart")


def test_ambient_enroller_thread_follows_store_events() -> None:
    world = World()
    world.ztunnel("node-1")
    world.workload("shop", "cart")
    world.physics.start()
    try:
        world.namespace("shop", {"istio.io/dataplane-mode": "ambient"})
        for _ in range(100):
            if _redirected(world, "shop", "cart"):
                break
            time.sleep(0.02)
        assert _redirected(world, "shop", "cart")
    finally:
        world.physics.stop()


def test_revision_label_injects_only_for_an_installed_revision() -> None:
    world = World()
    world.istiod()
    world.namespace("sre", {"istio.io/rev": "canary"})
    assert "istio-proxy" not in _names(world.workload("sre", "before"), "containers")
    world.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "istiod-canary", "namespace": "istio-system", "labels": {"istio.io/rev": "canary"}},
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {"name": "discovery", "env": [{"name": "ENABLE_NATIVE_SIDECARS", "value": "true"}]}
                        ]
                    }
                }
            },
            "status": {"readyReplicas": 1},
        }
    )
    pod = world.workload("sre", "after")
    assert _names(pod, "initContainers") == ["istio-init", "istio-proxy"]  # the canary's native sidecars
    assert '"revision": "canary"' in pod["metadata"]["annotations"]["sidecar.istio.io/status"]
