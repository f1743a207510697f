"""Runtime fault injection through ``/sandbox/admin/faults``: every shape a scenario takes, listed with
ids, lifted one by one; the cluster reacts as it would to the same fault declared in the scenario."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from runbook_engine.sandbox.app import MeshSandbox, build_sandbox
from runbook_engine.sandbox.server import SandboxServer

ADMIN = "/sandbox/admin/faults"
NS = "default"


def admin(api: client.ApiClient, method: str, path: str = "", body: Any = None) -> tuple[int, Any]:
    """Call the admin endpoint with the kubernetes client, authenticated like any other request."""
    params = api.param_serialize(method, ADMIN + path, body=body, auth_settings=["BearerToken"],
                                 header_params={"Content-Type": "application/json", "Accept": "application/json"})
    response = api.call_api(*params)
    response.read()
    return response.status, json.loads(response.data)


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(0.05)


def _deployment(name: str, namespace: str = NS) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": name, "image": f"example/{name}:1"}]}},
        },
    }


def _pod(name: str, namespace: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace},
            "spec": {"containers": [{"name": "app", "image": "example/app:1"}]}}


@pytest.fixture
def api(sandbox_server: SandboxServer) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=str(sandbox_server.kubeconfig))
    yield api_client
    api_client.close()


def _worker_state(core: client.CoreV1Api) -> tuple[str, int, bool]:
    """(waiting reason or state, restart count, ready) of the worker's container."""
    pods = core.list_namespaced_pod(NS, label_selector="app=worker").items
    statuses = (pods[0].status.container_statuses or []) if pods else []
    if not statuses:
        return "", 0, False
    state = statuses[0].state
    reason = state.waiting.reason if state.waiting else ("running" if state.running else "terminated")
    return str(reason), int(statuses[0].restart_count), bool(statuses[0].ready)


def test_a_crashloop_injected_at_runtime_crash_loops_the_workload_until_lifted(
    sandbox_server: SandboxServer, api: client.ApiClient
) -> None:
    core = client.CoreV1Api(api)
    core.create_node({"metadata": {"name": "node-1"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    client.AppsV1Api(api).create_namespaced_deployment(NS, _deployment("worker"))
    sandbox_server.settle(timeout=10)
    assert _worker_state(core) == ("running", 0, True)

    code, created = admin(api, "POST", body={"crashloop": {"namespace": NS, "workload": "worker", "exitCode": 3}})
    assert code == 201 and created["fault"]["type"] == "crashloop" and created["fault"]["exitCode"] == 3
    wait_for(lambda: _worker_state(core)[0] == "CrashLoopBackOff")
    assert _worker_state(core)[1] >= 1
    code, listed = admin(api, "GET")
    assert code == 200 and [f["id"] for f in listed["faults"]] == [created["fault"]["id"]]

    code, remaining = admin(api, "DELETE", "/" + created["fault"]["id"])
    assert (code, remaining) == (200, {"faults": []})
    wait_for(lambda: _worker_state(core)[0] == "running" and _worker_state(core)[2])


def test_unknown_and_malformed_faults_are_refused_with_the_accepted_shapes(
    sandbox_server: SandboxServer, api: client.ApiClient
) -> None:
    code, status = admin(api, "POST", body={"istiod_down": True})  # no mesh physics in a bare server
    assert (code, status["reason"]) == (422, "Invalid")
    cause = status["details"]["causes"][0]
    assert cause["field"] == "istiod_down" and "api_error, api_latency, crashloop" in cause["message"]
    code, status = admin(api, "POST", body={"crashloop": {"namespace": NS}})
    assert code == 422 and "workload" in status["message"]
    code, status = admin(api, "POST", body={"api_error": {"status": 500}, "crashloop": {}})
    assert code == 422 and "one key" in status["message"]
    code, status = admin(api, "DELETE", "/fault-does-not-exist")
    assert code == 404
    assert admin(api, "GET") == (200, {"faults": []})


def _mesh_scenario() -> dict[str, Any]:
    return {
        "name": "admin-faults",
        "nodes": [{"name": "node-1"}],
        "manifests": [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}},
            _deployment("istiod", "istio-system"),
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "MutatingWebhookConfiguration",
                "metadata": {"name": "istio-sidecar-injector"},
                "webhooks": [{"name": "namespace.sidecar-injector.istio.io", "failurePolicy": "Fail"}],
            },
            {"apiVersion": "v1", "kind": "Namespace",
             "metadata": {"name": "sre", "labels": {"istio-injection": "enabled"}}},
        ],
        "faults": [{"ztunnel_missing": {"node": "node-1"}}],
    }


@pytest.fixture
def mesh_server(tmp_path: Path) -> Iterator[MeshSandbox]:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(yaml.safe_dump(_mesh_scenario()))
    with build_sandbox(tmp_path / "state", scenario) as server:
        server.settle(timeout=10)
        yield server


def test_istiod_down_injected_at_runtime_refuses_new_meshed_pods_until_lifted(mesh_server: MeshSandbox) -> None:
    api = config.new_client_from_config(config_file=str(mesh_server.kubeconfig))
    core = client.CoreV1Api(api)
    code, listed = admin(api, "GET")
    assert code == 200 and [f["type"] for f in listed["faults"]] == ["ztunnel_missing"]  # from the scenario

    code, created = admin(api, "POST", body={"istiod_down": True})
    assert code == 201 and created["fault"]["type"] == "istiod_down"
    assert mesh_server.physics.faults.istiod_down
    with pytest.raises(ApiException) as refused:  # the injector fails closed: no pod at all
        core.create_namespaced_pod("sre", _pod("during-outage", "sre"))
    assert refused.value.status == 500 and "sidecar-injector.istio.io" in refused.value.body

    code, remaining = admin(api, "DELETE", "/" + created["fault"]["id"])
    assert code == 200 and [f["type"] for f in remaining["faults"]] == ["ztunnel_missing"]
    pod = core.create_namespaced_pod("sre", _pod("after-outage", "sre"))
    assert "istio-proxy" in {c.name for c in pod.spec.containers + (pod.spec.init_containers or [])}
    api.close()


def test_mesh_faults_are_listed_and_lifted_one_by_one(mesh_server: MeshSandbox) -> None:
    api = config.new_client_from_config(config_file=str(mesh_server.kubeconfig))
    faults = mesh_server.physics.faults
    _, first = admin(api, "POST", body={"spire_agent_missing": {"node": "node-1"}})
    _, second = admin(api, "POST", body={"breaks_when_meshed": {"namespace": "sre", "workload": "legacy"}})
    assert faults.spire_agent_missing == {"node-1"} and faults.breaks("sre", "legacy")
    admin(api, "DELETE", "/" + first["fault"]["id"])
    assert faults.spire_agent_missing == set() and faults.breaks("sre", "legacy")
    code, _ = admin(api, "GET", "/" + second["fault"]["id"])
    assert code == 200
    assert admin(api, "DELETE") == (200, {"faults": []})  # every fault, the scenario's too
    assert not faults.breaks("sre", "legacy") and faults.ztunnel_missing == set()
    api.close()
