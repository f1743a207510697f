"""KubeCluster against the sandbox over HTTPS: retries of transient faults (and only where safe),
error mapping, CRD discovery, kubeconfig handling, and no credentials in logs or errors."""

from __future__ import annotations

import base64
import http.server
import json
import logging
import ssl
import threading
import urllib.request
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from runbook_engine.errors import (
    ClusterError,
    ConflictError,
    InvalidObjectError,
    NotFoundError,
    TransientClusterError,
    UserInputError,
)
from runbook_engine.kube.cluster import PatchType
from runbook_engine.kube.kube_cluster import KubeCluster, RetryPolicy
from runbook_engine.kube.refs import KindRegistry, ObjectRef, default_registry
from runbook_engine.sandbox.server import SandboxServer, free_port

NS = "default"


class Sleeps:
    """Records backoff sleeps instead of sleeping, so retry tests are fast and their waits visible."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def connect(server: SandboxServer, sleeps: Sleeps, attempts: int = 5,
            registry: KindRegistry | None = None) -> KubeCluster:
    policy = RetryPolicy(attempts=attempts, total_seconds=30.0, sleep=sleeps)
    return KubeCluster.from_kubeconfig(server.kubeconfig, None, retry=policy, registry=registry or default_registry())


def inject(server: SandboxServer, fault: dict[str, Any]) -> None:
    """Add an API fault through the sandbox's admin endpoint, authenticated like any client."""
    config = yaml.safe_load(server.kubeconfig.read_text())
    ca = base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
    request = urllib.request.Request(
        f"{server.url}/sandbox/admin/faults", data=json.dumps(fault).encode(), method="POST",
        headers={"Authorization": f"Bearer {config['users'][0]['user']['token']}",
                 "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, context=ssl.create_default_context(cadata=ca), timeout=10) as response:
        assert response.status == 201


def cm(name: str, data: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": NS}, "data": data or {}}


CM = ObjectRef("v1", "ConfigMap", NS, "a")


def test_apply_succeeds_through_random_500s(sandbox_server: SandboxServer) -> None:
    sleeps = Sleeps()
    cluster = connect(sandbox_server, sleeps, attempts=8)
    inject(sandbox_server, {"api_error": {"status": 500, "verb": "patch", "probability": 0.3}})
    for i in range(30):
        assert cluster.apply(cm(f"c{i}", {"i": str(i)}))["data"] == {"i": str(i)}
    assert len(cluster.list("v1", "ConfigMap", NS, None)) >= 30
    assert cluster.requests["apply ConfigMap"] == 30 + len(sleeps.calls)


def test_transient_error_is_retried_with_backoff(sandbox_server: SandboxServer) -> None:
    sleeps = Sleeps()
    cluster = connect(sandbox_server, sleeps)
    inject(sandbox_server, {"api_error": {"status": 503, "verb": "patch", "count": 2}})
    cluster.apply(cm("a"))
    assert cluster.requests["apply ConfigMap"] == 3
    assert len(sleeps.calls) == 2 and all(0 <= s <= 5.0 for s in sleeps.calls)


def test_retry_after_is_honoured(sandbox_server: SandboxServer) -> None:
    sleeps = Sleeps()
    cluster = connect(sandbox_server, sleeps)
    inject(sandbox_server, {"api_error": {"status": 429, "verb": "get", "count": 1}})
    assert cluster.get(CM) is None
    assert sleeps.calls and sleeps.calls[0] >= 1.0


def test_attempts_are_bounded(sandbox_server: SandboxServer) -> None:
    sleeps = Sleeps()
    cluster = connect(sandbox_server, sleeps, attempts=3)
    inject(sandbox_server, {"api_error": {"status": 500, "verb": "list"}})
    with pytest.raises(TransientClusterError) as caught:
        cluster.list("v1", "ConfigMap", NS)
    assert caught.value.status == 500 and caught.value.retryable
    assert cluster.requests["list ConfigMap"] == 3


@pytest.mark.parametrize("status", [403, 409])
def test_permanent_errors_are_not_retried(sandbox_server: SandboxServer, status: int) -> None:
    cluster = connect(sandbox_server, Sleeps())
    inject(sandbox_server, {"api_error": {"status": status, "verb": "patch", "count": 1}})
    with pytest.raises(ClusterError) as caught:
        cluster.apply(cm("a"))
    assert caught.value.status == status and not caught.value.retryable
    assert isinstance(caught.value, ConflictError) == (status == 409)
    assert cluster.requests["apply ConfigMap"] == 1
    assert cluster.apply(cm("a"))["metadata"]["name"] == "a"  # the fault was one-shot


def test_invalid_request_is_not_retried(sandbox_server: SandboxServer) -> None:
    cluster = connect(sandbox_server, Sleeps())
    cluster.apply(cm("a", {"k": "v"}))
    with pytest.raises(InvalidObjectError) as caught:
        cluster.patch(CM, [{"op": "test", "path": "/data/k", "value": "other"}], patch_type=PatchType.JSON)
    assert caught.value.status == 422
    assert cluster.requests["patch ConfigMap"] == 1


def test_json_patch_is_not_repeated_after_a_server_error(sandbox_server: SandboxServer) -> None:
    cluster = connect(sandbox_server, Sleeps())
    cluster.apply({**cm("a"), "data": {"log": ""}})
    append = [{"op": "add", "path": "/metadata/labels", "value": {"x": "1"}}]
    inject(sandbox_server, {"api_error": {"status": 500, "verb": "patch", "count": 1}})
    with pytest.raises(TransientClusterError):
        cluster.patch(CM, append, patch_type=PatchType.JSON)
    assert cluster.requests["patch ConfigMap"] == 1
    inject(sandbox_server, {"api_error": {"status": 500, "verb": "patch", "count": 1}})
    cluster.patch(CM, {"metadata": {"labels": {"y": "2"}}}, patch_type=PatchType.MERGE)
    assert cluster.requests["patch ConfigMap"] == 3


def test_connection_refused_is_transient_and_retried() -> None:
    configuration = kubernetes.client.Configuration(host=f"http://127.0.0.1:{free_port()}")
    sleeps = Sleeps()
    cluster = KubeCluster(kubernetes.client.ApiClient(configuration), "dead",
                          retry=RetryPolicy(attempts=2, sleep=sleeps), discover=False)
    with pytest.raises(TransientClusterError, match="cannot connect"):
        cluster.get(CM)
    assert len(sleeps.calls) == 1 and cluster.requests["get ConfigMap"] == 2


def test_missing_kubeconfig_or_context_is_user_input_error(tmp_path: Path, sandbox_server: SandboxServer) -> None:
    with pytest.raises(UserInputError, match="cannot load kubeconfig"):
        KubeCluster.from_kubeconfig(tmp_path / "absent", None)
    with pytest.raises(UserInputError, match="context"):
        KubeCluster.from_kubeconfig(sandbox_server.kubeconfig, "no-such-context")


def test_namespace_comes_from_the_context(tmp_path: Path, sandbox_server: SandboxServer) -> None:
    config = yaml.safe_load(sandbox_server.kubeconfig.read_text())
    config["contexts"][0]["context"]["namespace"] = "team"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    cluster = KubeCluster.from_kubeconfig(kubeconfig, config["contexts"][0]["name"], name="mine")
    assert cluster.name == "mine" and cluster.default_namespace == "team"
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    created = cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
    assert created["metadata"]["namespace"] == "team"


CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
        "versions": [{"name": "v1", "served": True, "storage": True,
                      "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}],
    },
}
WIDGET = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": NS},
          "spec": {"size": 3}}


def test_crds_are_discovered_at_connect_time(sandbox_server: SandboxServer) -> None:
    connect(sandbox_server, Sleeps()).apply(CRD)
    registry = default_registry()
    cluster = connect(sandbox_server, Sleeps(), registry=registry)
    info = registry.find("example.com/v1", "Widget")
    assert info is not None and info.plural == "widgets" and info.namespaced and "wd" in info.short_names
    assert cluster.apply(WIDGET)["spec"] == {"size": 3}
    assert [w["metadata"]["name"] for w in cluster.list("example.com/v1", "Widget")] == ["w"]


def test_a_crd_installed_after_connecting_is_found_on_first_use(sandbox_server: SandboxServer) -> None:
    registry = default_registry()
    cluster = connect(sandbox_server, Sleeps(), registry=registry)
    assert registry.find("example.com/v1", "Widget") is None
    cluster.apply(CRD)
    assert cluster.apply(WIDGET)["metadata"]["name"] == "w"
    assert registry.find("example.com/v1", "Widget") is not None


def test_credentials_never_reach_logs_or_errors(
    sandbox_server: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    token = yaml.safe_load(sandbox_server.kubeconfig.read_text())["users"][0]["user"]["token"]
    cluster = connect(sandbox_server, Sleeps(), attempts=2)
    inject(sandbox_server, {"api_error": {"status": 500}})
    with caplog.at_level(logging.DEBUG), pytest.raises(TransientClusterError) as caught:
        cluster.apply(cm("a"))
    assert "retrying" in caplog.text
    assert token not in caplog.text and token not in str(caught.value) and token not in repr(caught.value)


def test_pod_logs(sandbox_server: SandboxServer) -> None:
    cluster = connect(sandbox_server, Sleeps())
    cluster.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": NS},
                   "spec": {"containers": [{"name": "app", "image": "app:1"}]}})
    sandbox_server.store.set_pod_log(NS, "p", "app", "one\ntwo\nthree\n")
    assert cluster.pod_logs(NS, "p") == "one\ntwo\nthree\n"
    assert cluster.pod_logs(NS, "p", "app", tail_lines=2) == "two\nthree\n"
    with pytest.raises(InvalidObjectError, match="not valid"):
        cluster.pod_logs(NS, "p", "nope")
    with pytest.raises(NotFoundError):
        cluster.pod_logs(NS, "absent")


class _ForbiddenDiscovery(http.server.BaseHTTPRequestHandler):
    """An API server whose discovery is forbidden to this user and which holds no objects."""

    def do_GET(self) -> None:
        code, reason = (403, "Forbidden") if self.path == "/apis" else (404, "NotFound")
        body = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
                           "reason": reason, "message": f"{reason.lower()}: {self.path}"}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


def test_forbidden_discovery_does_not_prevent_connecting() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ForbiddenDiscovery)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        configuration = kubernetes.client.Configuration(host=f"http://127.0.0.1:{server.server_address[1]}")
        api = kubernetes.client.ApiClient(configuration)
        cluster = KubeCluster(api, "restricted", retry=RetryPolicy(sleep=Sleeps()))
        assert cluster.requests["discover APIGroupList"] == 1
        assert cluster.get(CM) is None
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
