"""End to end: a real Prometheus scrapes the sandbox's /metrics; the mTLS share PromQL of a
namespace's traffic changes when the calling workload is meshed through the Kubernetes API."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from runbook_engine.sandbox.app import MeshSandbox, build_sandbox

pytestmark = [pytest.mark.slow, pytest.mark.prometheus]
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
SHARE = (
    '(sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="sre",'
    'connection_security_policy="mutual_tls"}[4s])) or vector(0)) / '
    'sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="sre"}[4s]))'
)


def _deployment(ns: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [{"name": name, "image": f"example/{name}", "ports": [{"containerPort": 8080}]}]
                },
            },
        },
    }


SCENARIO = {
    "name": "telemetry",
    "nodes": [{"name": "node-1"}],
    "manifests": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}},
        {**_deployment("istio-system", "istiod")},
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "istio-sidecar-injector"},
            "webhooks": [{"name": "namespace.sidecar-injector.istio.io", "failurePolicy": "Fail"}],
        },
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "sre"}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "legacy"}},
        _deployment("sre", "api"),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "api", "namespace": "sre"},
            "spec": {"selector": {"app": "api"}, "ports": [{"port": 8080, "targetPort": 8080}]},
        },
        _deployment("legacy", "web"),
    ],
    "flows": [{"from": "legacy/web", "to": "sre/api:8080", "protocol": "http"}],
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _until(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[MeshSandbox]:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(yaml.safe_dump(SCENARIO))
    server = build_sandbox(tmp_path / "state", scenario, request_rate=10.0)
    with server:
        yield server


@pytest.fixture
def prometheus(sandbox: MeshSandbox, tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "sandbox",
                        "scheme": "https",
                        "tls_config": {"insecure_skip_verify": True},
                        "static_configs": [{"targets": [f"127.0.0.1:{sandbox.port}"]}],
                    }
                ],
            }
        )
    )
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={cfg}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _until("prometheus ready", lambda: _get(f"{url}/-/ready") is not None)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bytes(resp.read())
    except OSError:
        return None


def _share(url: str) -> float | None:
    body = _get(f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": SHARE}))
    result = json.loads(body or b"{}").get("data", {}).get("result") or []
    return float(result[0]["value"][1]) if result else None


def _meshed_pod_ready(sandbox: MeshSandbox, ns: str, app: str) -> bool:
    for pod in sandbox.store.list("v1", "Pod", ns):
        names = [c["name"] for c in pod["spec"].get("containers") or []]
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (pod.get("status") or {}).get("conditions") or []
        )
        if pod["metadata"]["labels"].get("app") == app and "istio-proxy" in names and ready:
            return True
    return False


def _mesh(apps: client.AppsV1Api, core: client.CoreV1Api, ns: str, name: str) -> None:
    """What an SRE runs: label the namespace, then restart the workload."""
    core.patch_namespace(ns, {"metadata": {"labels": {"istio-injection": "enabled"}}})
    now = dt.datetime.now(dt.UTC).isoformat()
    apps.patch_namespaced_deployment(
        name, ns, {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}}}
    )


def test_prometheus_sees_the_mtls_share_change_when_the_caller_is_meshed(sandbox: MeshSandbox, prometheus: str) -> None:
    api_client = config.new_client_from_config(config_file=str(sandbox.kubeconfig))  # type: ignore[no-untyped-call]
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    _until(
        "istiod ready",
        lambda: (
            (sandbox.store.get("apps/v1", "Deployment", "istio-system", "istiod") or {})
            .get("status", {})
            .get("readyReplicas")
        ),
    )
    _mesh(apps, core, "sre", "api")
    _until("api meshed", lambda: _meshed_pod_ready(sandbox, "sre", "api"))
    _until("plaintext share observed", lambda: _share(prometheus) == 0.0, timeout=20)
    _mesh(apps, core, "legacy", "web")
    _until("web meshed", lambda: _meshed_pod_ready(sandbox, "legacy", "web"))
    assert _until("mTLS share reaches 100%", lambda: _share(prometheus) == 1.0, timeout=20)
    api_client.close()
