"""The mesh-aware pod runtime: init containers and sidecars, crash-on-mesh faults, curl probe pods."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from runbook_engine.sandbox.runtime import ContainerState

_spec = importlib.util.spec_from_file_location("physics_world", Path(__file__).parent / "physics_cases" / "world.py")
assert _spec and _spec.loader
_world = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_world)
World = _world.World

FETCH_SECRETS = {"name": "fetch-secrets", "image": "example/vault-agent"}
NEEDS_NET = {"sandbox.runbook.dev/init-needs-network": "fetch-secrets"}


def _init(world: Any, pod: dict[str, Any], name: str) -> Any:
    container = next(c for c in pod["spec"]["initContainers"] if c["name"] == name)
    return world.physics.runtime.run_init_container(world.store, pod, container)


@pytest.mark.parametrize(("native", "state"), [(False, ContainerState.HANGING), (True, ContainerState.COMPLETED)])
def test_network_hungry_init_container_needs_a_native_sidecar(native: bool, state: ContainerState) -> None:
    world = World()
    world.istiod(native=native)
    world.namespace("sre", {"istio-injection": "enabled"})
    pod = world.workload("sre", "api", init=[dict(FETCH_SECRETS)], pod_annotations=NEEDS_NET)
    assert _init(world, pod, "istio-init").state is ContainerState.COMPLETED
    assert _init(world, pod, "fetch-secrets").state is state
    if native:
        assert _init(world, pod, "istio-proxy").state is ContainerState.RUNNING


def test_network_hungry_init_container_completes_without_a_mesh() -> None:
    world = World()
    pod = world.workload("sre", "api", init=[dict(FETCH_SECRETS)], pod_annotations=NEEDS_NET)
    assert _init(world, pod, "fetch-secrets").state is ContainerState.COMPLETED


def test_workload_that_breaks_when_meshed_crashes_only_with_a_proxy() -> None:
    world = World()
    world.istiod()
    world.physics.faults.add({"breaks_when_meshed": {"namespace": "sre", "workload": "legacy"}})
    plain = world.workload("sre", "legacy")
    app = plain["spec"]["containers"][0]
    assert world.physics.runtime.run_container(world.store, plain, app).state is ContainerState.RUNNING
    world.namespace("sre", {"istio-injection": "enabled"})
    meshed = world.restart("sre", "legacy")
    outcome = world.physics.runtime.run_container(world.store, meshed, meshed["spec"]["containers"][0])
    assert outcome.state is ContainerState.FAILED and outcome.exit_code == 1


def test_proxy_without_svid_is_not_ready_on_a_node_without_spire_agent() -> None:
    world = World()
    world.istiod(spire_template=True)
    world.spire(agent_nodes=("node-1",))
    world.namespace("sre", {"istio-injection": "enabled"})
    good = world.workload("sre", "api", node="node-1")
    bad = world.workload("sre", "web", node="node-2")
    for pod, ready in ((good, True), (bad, False)):
        proxy = next(c for c in pod["spec"]["containers"] if c["name"] == "istio-proxy")
        assert world.physics.runtime.run_container(world.store, pod, proxy).ready is ready


def test_readiness_probe_not_rewritten_fails_under_strict() -> None:
    world = World()
    world.istiod()
    world.namespace("sre", {"istio-injection": "enabled"})
    world.apply_yaml("""
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
""")
    rewritten = world.workload("sre", "api")
    raw = world.workload("sre", "web", pod_annotations={"sidecar.istio.io/rewriteAppHTTPProbers": "false"})
    run = world.physics.runtime.run_container
    assert run(world.store, rewritten, rewritten["spec"]["containers"][0]).ready is True
    assert run(world.store, raw, raw["spec"]["containers"][0]).ready is False


def _curl(world: Any, ns: str, args: list[str], **kw: Any) -> Any:
    pod = world.workload(
        ns, f"probe{len(world.store.list('v1', 'Pod'))}", service=False, image="curlimages/curl", args=args, **kw
    )
    return world.physics.runtime.run_container(world.store, pod, pod["spec"]["containers"][0])


def _strict_platform() -> Any:
    world = World()
    world.istiod()
    world.namespace("sre", {"istio-injection": "enabled"})
    world.workload("sre", "api")
    world.apply_yaml("""
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
""")
    return world


def test_curl_probe_reports_status_code_and_reset_like_curl() -> None:
    world = _strict_platform()
    meshed = _curl(
        world, "sre", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://api.sre.svc.cluster.local:8080/"]
    )
    assert (meshed.state, meshed.log, meshed.exit_code) == (ContainerState.COMPLETED, "200", 0)
    plain = _curl(world, "legacy", ["-sS", "http://api.sre:8080/healthz"])
    assert plain.state is ContainerState.FAILED and plain.exit_code == 56
    assert plain.log.strip() == "curl: (56) Recv failure: Connection reset by peer"
    silent = _curl(world, "legacy", ["-s", "-o", "/dev/null", "-w", "%{http_code}\\n", "http://api.sre:8080/"])
    assert (silent.log, silent.exit_code) == ("000\n", 56)


def test_curl_probe_shows_rbac_denial_and_status_line() -> None:
    world = _strict_platform()
    world.apply_yaml("""
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-all, namespace: sre}
spec: {}
""")
    verbose = _curl(world, "sre", ["-v", "http://api.sre.svc.cluster.local:8080/"])
    assert "< HTTP/1.1 403 Forbidden" in verbose.log
    assert verbose.log.endswith("RBAC: access denied") and verbose.exit_code == 0
    failing = _curl(world, "sre", ["-sSf", "http://api:8080/"])
    assert failing.exit_code == 22


def test_curl_probe_unknown_service_is_a_dns_error() -> None:
    world = _strict_platform()
    missing = _curl(world, "sre", ["-sS", "http://nope.sre.svc.cluster.local:8080/"])
    assert missing.exit_code == 6 and "Could not resolve host" in missing.log
