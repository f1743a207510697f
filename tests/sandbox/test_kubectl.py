"""kubectl, an independent client, against the sandbox: get across kinds, apply (server-side with a
conflict, and client-side with validation on), label, annotate, every patch type, delete with
garbage collection, watch, logs, scale, rollout restart + status, and an injected API fault."""

from __future__ import annotations

import json
import time

import pytest
from api_support import Kubectl

from runbook_engine.kube.refs import REGISTRY
from runbook_engine.sandbox.server import SandboxServer

pytestmark = pytest.mark.kubectl

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: app, image: "nginx:1", env: [{name: A, value: "1"}]}
      - {name: sidecar, image: "envoy:1"}
"""


def _jsonpath(kubectl: Kubectl, target: str, path: str) -> str:
    return kubectl.ok("get", target, "-o", f"jsonpath={path}")


def test_get_lists_every_kind(kubectl: Kubectl) -> None:
    kubectl.ok("apply", "-f", "-", stdin=DEPLOYMENT)
    resources = ",".join(f"{i.plural}.{i.group}" if i.group else i.plural for i in REGISTRY)
    out = kubectl.ok("get", resources, "--all-namespaces", "-o", "name")
    assert "deployment.apps/web" in out and "namespace/default" in out


def test_get_prints_server_side_tables(kubectl: Kubectl) -> None:
    kubectl.ok("apply", "-f", "-", stdin=DEPLOYMENT)
    header = kubectl.ok("get", "deployments").splitlines()[0].split()
    assert header == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert kubectl.ok("get", "deploy", "web", "-o", "name") == "deployment.apps/web\n"


def test_client_side_apply_works_with_validation_on(kubectl: Kubectl) -> None:
    assert "deployment.apps/web created" in kubectl.ok("apply", "-f", "-", stdin=DEPLOYMENT)
    changed = DEPLOYMENT.replace("replicas: 2", "replicas: 3")
    assert "deployment.apps/web configured" in kubectl.ok("apply", "-f", "-", stdin=changed)
    assert _jsonpath(kubectl, "deploy/web", "{.spec.replicas}") == "3"


def test_server_side_apply_conflict_and_force(kubectl: Kubectl) -> None:
    assert "serverside-applied" in kubectl.ok("apply", "--server-side", "-f", "-", stdin=DEPLOYMENT)
    changed = DEPLOYMENT.replace("replicas: 2", "replicas: 5")
    refused = kubectl.run("apply", "--server-side", "--field-manager=other", "-f", "-", stdin=changed)
    assert refused.returncode == 1
    assert 'conflict with "kubectl" using apps/v1: .spec.replicas' in refused.stderr
    kubectl.ok("apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", "-", stdin=changed)
    assert _jsonpath(kubectl, "deploy/web", "{.spec.replicas}") == "5"


def test_label_and_annotate(kubectl: Kubectl) -> None:
    kubectl.ok("create", "-f", "-", stdin="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\n")
    kubectl.ok("label", "configmap", "cfg", "team=sre")
    kubectl.ok("annotate", "configmap", "cfg", "owner=platform")
    assert _jsonpath(kubectl, "cm/cfg", "{.metadata.labels.team}/{.metadata.annotations.owner}") == "sre/platform"
    assert kubectl.ok("get", "cm", "-l", "team in (sre,dev)", "-o", "name") == "configmap/cfg\n"
    refused = kubectl.run("label", "configmap", "cfg", "team=dev")
    assert refused.returncode != 0 and "already has a value" in refused.stderr
    kubectl.ok("label", "configmap", "cfg", "team-")
    assert _jsonpath(kubectl, "cm/cfg", "{.metadata.labels}") == ""


def test_patch_merge_json_and_strategic(kubectl: Kubectl) -> None:
    kubectl.ok("apply", "-f", "-", stdin=DEPLOYMENT)
    kubectl.ok("patch", "deploy", "web", "--type=merge", "-p", '{"spec":{"replicas":4}}')
    kubectl.ok("patch", "deploy", "web", "--type=json", "-p",
               '[{"op":"add","path":"/metadata/labels/tier","value":"front"}]')
    kubectl.ok("patch", "deploy", "web", "-p",
               '{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"nginx:2"}]}}}}')
    deployment = json.loads(kubectl.ok("get", "deploy", "web", "-o", "json"))
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert deployment["spec"]["replicas"] == 4 and deployment["metadata"]["labels"]["tier"] == "front"
    assert [(c["name"], c["image"]) for c in containers] == [("app", "nginx:2"), ("sidecar", "envoy:1")]
    assert containers[0]["env"] == [{"name": "A", "value": "1"}]


def test_delete_with_garbage_collection(kubectl: Kubectl) -> None:
    owner = json.loads(kubectl.ok("create", "-o", "json", "-f", "-",
                                  stdin="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: owner}\n"))
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    for name in ("kept", "collected"):
        kubectl.ok("create", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": name, "ownerReferences": [ref]}}))
    kubectl.ok("patch", "cm", "kept", "--type=json", "-p", '[{"op":"remove","path":"/metadata/ownerReferences"}]')
    assert 'configmap "owner" deleted' in kubectl.ok("delete", "cm", "owner")
    assert kubectl.ok("get", "cm", "-o", "name") == "configmap/kept\n"
    missing = kubectl.run("get", "cm", "collected")
    assert missing.returncode == 1 and 'configmaps "collected" not found' in missing.stderr


def test_delete_with_cascade_orphan_keeps_dependents(kubectl: Kubectl) -> None:
    owner = json.loads(kubectl.ok("create", "-o", "json", "-f", "-",
                                  stdin="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: owner}\n"))
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    kubectl.ok("create", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "child", "ownerReferences": [ref]}}))
    kubectl.ok("delete", "cm", "owner", "--cascade=orphan")
    assert kubectl.ok("get", "cm", "-o", "name") == "configmap/child\n"


def test_get_watch_prints_events(kubectl: Kubectl) -> None:
    watcher = kubectl.popen("get", "configmaps", "--watch", "--output-watch-events", "--no-headers")
    try:
        time.sleep(1.0)
        kubectl.ok("create", "-f", "-", stdin="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: seen}\n")
        kubectl.ok("label", "cm", "seen", "a=b")
        kubectl.ok("delete", "cm", "seen")
        time.sleep(1.0)
    finally:
        watcher.terminate()
        out, _ = watcher.communicate(timeout=10)
    events = [line.split()[:2] for line in out.splitlines()]
    assert events == [["ADDED", "seen"], ["MODIFIED", "seen"], ["DELETED", "seen"]]


def test_logs(kubectl: Kubectl, sandbox_server: SandboxServer) -> None:
    kubectl.ok("create", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                                                       "spec": {"containers": [{"name": "app", "image": "i"}]}}))
    sandbox_server.store.set_pod_log("default", "p", "app", "ready\nserving\n")
    assert kubectl.ok("logs", "p", "--tail=1") == "serving\n"


def test_injected_api_fault_is_an_error_from_server(kubectl: Kubectl, sandbox_server: SandboxServer) -> None:
    kubectl.ok("create", "-f", "-", stdin="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\n")
    sandbox_server.faults.add_spec({"api_error": {"status": 500, "verb": "patch", "resource": "configmaps",
                                                  "count": 1}})
    failed = kubectl.run("label", "cm", "cfg", "a=b")
    assert failed.returncode == 1
    assert "Error from server (InternalError)" in failed.stderr and "injected fault" in failed.stderr
    kubectl.ok("label", "cm", "cfg", "a=b")


def test_rollout_restart_and_status(kubectl: Kubectl) -> None:
    kubectl.ok("create", "-f", "-", stdin="apiVersion: v1\nkind: Node\nmetadata: {name: node-1}\n")
    kubectl.ok("patch", "node", "node-1", "--subresource=status", "--type=merge",
               "-p", '{"status":{"conditions":[{"type":"Ready","status":"True"}]}}')
    kubectl.ok("apply", "-f", "-", stdin=DEPLOYMENT)
    kubectl.ok("rollout", "status", "deployment/web", "--timeout=20s", timeout=30)
    before = set(kubectl.ok("get", "pods", "-l", "app=web", "-o", "name").split())
    assert "deployment.apps/web restarted" in kubectl.ok("rollout", "restart", "deployment/web")
    status = kubectl.ok("rollout", "status", "deployment/web", "--timeout=20s", timeout=30)
    assert 'deployment "web" successfully rolled out' in status
    after = set(kubectl.ok("get", "pods", "-l", "app=web", "-o", "name").split())
    assert len(after) == 2 and not before & after
    restarted_at = _jsonpath(kubectl, "deploy/web", "{.spec.template.metadata.annotations}")
    assert "kubectl.kubernetes.io/restartedAt" in restarted_at


def test_scale(kubectl: Kubectl) -> None:
    kubectl.ok("apply", "-f", "-", stdin=DEPLOYMENT)
    kubectl.ok("scale", "deployment/web", "--replicas=3")
    assert _jsonpath(kubectl, "deploy/web", "{.spec.replicas}") == "3"


def test_create_generators_for_simple_kinds(kubectl: Kubectl) -> None:
    kubectl.ok("create", "namespace", "demo")
    kubectl.ok("create", "configmap", "cfg", "-n", "demo", "--from-literal=mode=strict")
    kubectl.ok("create", "secret", "generic", "creds", "-n", "demo", "--from-literal=password=hunter2")
    kubectl.ok("create", "serviceaccount", "robot", "-n", "demo")
    assert kubectl.ok("get", "-n", "demo", "cm", "cfg", "-o", "jsonpath={.data.mode}") == "strict"
    assert kubectl.ok("get", "-n", "demo", "secret", "creds", "-o", "jsonpath={.data.password}") == "aHVudGVyMg=="
    refused = kubectl.run("create", "deployment", "web", "--image=nginx", "-n", "demo")
    assert refused.returncode == 1 and "send JSON or YAML instead" in refused.stderr
