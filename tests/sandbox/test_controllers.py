"""The sandbox's controllers, driven on a Store directly: what kubectl and the client would see."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from runbook_engine.sandbox.controllers import ControllerManager, Timing
from runbook_engine.sandbox.runtime import ContainerOutcome, ContainerState, DefaultRuntime, PodRuntime
from runbook_engine.sandbox.store import Store

Obj = dict[str, Any]
FAST = Timing(step=0.002, probe_period=0.05, backoff_base=0.02, backoff_cap=0.05)


def node(name: str, **labels: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **labels}},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": f"10.0.0.{len(name)}"}],
        },
    }


def template(app: str, image: str = "nginx:1.25", **spec: Any) -> Obj:
    containers = [{"name": app, "image": image, "ports": [{"name": "http", "containerPort": 8080}]}]
    return {"metadata": {"labels": {"app": app}}, "spec": {"containers": containers, **spec}}


def workload(kind: str, name: str, replicas: int | None = 3, **spec: Any) -> Obj:
    api = "batch/v1" if kind == "Job" else "apps/v1"
    body: Obj = {"selector": {"matchLabels": {"app": name}}, "template": template(name), **spec}
    if replicas is not None:
        body["replicas"] = replicas
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": "sre"}, "spec": body}


@dataclass
class Cluster:
    store: Store
    manager: ControllerManager

    def pods(self, prefix: str = "") -> list[Obj]:
        pods = self.store.list("v1", "Pod", "sre")
        chosen = [p for p in pods if p["metadata"]["name"].startswith(prefix)]
        return sorted(chosen, key=lambda p: str(p["metadata"]["name"]))

    def get(self, api: str, kind: str, name: str, namespace: str = "sre") -> Obj:
        obj = self.store.get(api, kind, namespace, name)
        assert obj is not None, f"{kind} {namespace}/{name} missing"
        return obj

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, "condition not reached in time"
            time.sleep(0.01)


@pytest.fixture
def make_cluster() -> Iterator[Callable[..., Cluster]]:
    managers: list[ControllerManager] = []

    def build(runtime: PodRuntime | None = None, nodes: int = 3, faults: list[Obj] | None = None) -> Cluster:
        store = Store()
        manager = ControllerManager(store, runtime or DefaultRuntime(), timing=FAST, faults=faults or [], seed=7)
        managers.append(manager)
        for i in range(nodes):
            store.create(node(f"node-{i + 1}", zone="a" if i % 2 == 0 else "b"))
        store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "sre"}})
        return Cluster(store, manager)

    yield build
    for manager in managers:
        manager.stop()


def ready(pod: Obj) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


# -- Deployments --------------------------------------------------------------------------------------
def test_deployment_creates_a_replica_set_and_ready_pods(make_cluster: Callable[..., Cluster]) -> None:
    c = make_cluster()
    deploy = c.store.create(workload("Deployment", "portal"))
    c.manager.settle()
    [rs] = c.store.list("apps/v1", "ReplicaSet", "sre")
    digest = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"portal-{digest}"
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "portal", "pod-template-hash": digest}
    assert rs["metadata"]["ownerReferences"][0] | {"uid": ""} == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "portal", "uid": "", "controller": True,
        "blockOwnerDeletion": True,
    }
    assert rs["metadata"]["ownerReferences"][0]["uid"] == deploy["metadata"]["uid"]
    pods = c.pods()
    assert len(pods) == 3
    for pod in pods:
        assert re.fullmatch(rf"portal-{digest}-[bcdfghjklmnpqrstvwxz2456789]{{5}}", pod["metadata"]["name"])
        assert pod["metadata"]["labels"] == {"app": "portal", "pod-template-hash": digest}
        assert pod["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
        assert pod["status"]["phase"] == "Running" and ready(pod)
        assert pod["status"]["podIP"].startswith("10.") and pod["status"]["hostIP"].startswith("10.0.0.")
        assert pod["status"]["containerStatuses"][0]["state"].keys() == {"running"}
    assert {p["spec"]["nodeName"] for p in pods} == {"node-1", "node-2", "node-3"}  # round-robin
    assert len({p["status"]["podIP"] for p in pods}) == 3
    status = c.get("apps/v1", "Deployment", "portal")["status"]
    assert status["observedGeneration"] == 1
    assert (status["replicas"], status["updatedReplicas"], status["readyReplicas"], status["availableReplicas"]) == (
        3, 3, 3, 3)
    conditions = {cond["type"]: cond for cond in status["conditions"]}
    assert conditions["Available"]["status"] == "True"
    assert conditions["Progressing"]["reason"] == "NewReplicaSetAvailable"


def test_rollout_restart_replaces_every_pod_within_the_surge_budget(make_cluster: Callable[..., Cluster]) -> None:
    c = make_cluster()
    c.store.create(workload("Deployment", "portal", replicas=4))
    c.manager.settle()
    before = {p["metadata"]["name"] for p in c.pods()}
    peaks: list[int] = []
    c.store.listeners.append(lambda event, obj: peaks.append(len(c.store.list("v1", "Pod", "sre"))))
    deploy = c.get("apps/v1", "Deployment", "portal")
    restarted = {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}
    deploy["spec"]["template"]["metadata"]["annotations"] = restarted
    c.store.update(deploy)
    c.manager.settle()
    after = c.pods()
    assert len(after) == 4 and not before & {p["metadata"]["name"] for p in after}
    assert all(ready(p) for p in after)
    assert max(peaks) <= 4 + 1  # maxSurge 25% of 4
    sets = {rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]: rs
            for rs in c.store.list("apps/v1", "ReplicaSet", "sre")}
    assert sets["1"]["spec"]["replicas"] == 0 and sets["2"]["spec"]["replicas"] == 4
    deploy = c.get("apps/v1", "Deployment", "portal")
    assert deploy["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    status = deploy["status"]
    assert status["observedGeneration"] == deploy["metadata"]["generation"] == 2
    assert (status["replicas"], status["updatedReplicas"], status["availableReplicas"]) == (4, 4, 4)
    assert "unavailableReplicas" not in status


def test_recreate_strategy_and_scale_down(make_cluster: Callable[..., Cluster]) -> None:
    c = make_cluster()
    c.store.create(workload("Deployment", "portal", replicas=3, strategy={"type": "Recreate"}))
    c.manager.settle()
    deploy = c.get("apps/v1", "Deployment", "portal")
    deploy["spec"]["replicas"] = 1
    deploy["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26"
    c.store.update(deploy)
    c.manager.settle()
    [pod] = c.pods()
    assert pod["spec"]["containers"][0]["image"] == "nginx:1.26" and ready(pod)


def test_a_rollout_whose_pods_never_get_ready_keeps_the_old_pods(make_cluster: Callable[..., Cluster]) -> None:
    c = make_cluster(BrokenImageRuntime("portal:broken"))
    c.store.create(workload("Deployment", "portal", replicas=4))
    c.manager.settle()
    deploy = c.get("apps/v1", "Deployment", "portal")
    deploy["spec"]["template"]["spec"]["containers"][0]["image"] = "portal:broken"
    c.store.update(deploy)
    c.manager.settle()
    images = [p["spec"]["containers"][0]["image"] for p in c.pods() if ready(p)]
    assert images.count("nginx:1.25") >= 3  # maxUnavailable 25% of 4
    status = c.get("apps/v1", "Deployment", "portal")["status"]
    assert status["updatedReplicas"] < 4 or status["availableReplicas"] < status["updatedReplicas"]


# -- StatefulSets, DaemonSets, Jobs -------------------------------------------------------------------
def test_statefulset_pods_start_in_order_and_roll_in_reverse(make_cluster: Callable[..., Cluster]) -> None:
    c = make_cluster()
    created: list[tuple[str, int]] = []

    def record(event: str, obj: Obj) -> None:
        if obj["kind"] == "Pod" and event == "ADDED":
            created.append((obj["metadata"]["name"], sum(ready(p) for p in c.store.list("v1", "Pod", "sre"))))

    c.store.listeners.append(record)
    c.store.create(workload("StatefulSet", "postgres", replicas=3, serviceName="postgres"))
    c.manager.settle()
    assert created == [("postgres-0", 0), ("postgres-1", 1), ("postgres-2", 2)]  # each waits for the last
    pod = c.get("v1", "Pod", "postgres-1")
    assert pod["spec"]["hostname"] == "postgres-1" and pod["spec"]["subdomain"] == "postgres"
    assert pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == "postgres-1"
    sts = c.get("apps/v1", "StatefulSet", "postgres")
    first_revision = sts["status"]["updateRevision"]
    assert sts["status"]["currentRevision"] == first_revision and sts["status"]["readyReplicas"] == 3

    created.clear()
    sts["spec"]["template"]["spec"]["containers"][0]["image"] = "postgres:16.4"
    c.store.update(sts)
    c.manager.settle()
    assert [name for name, _ in created] == ["postgres-2", "postgres-1", "postgres-0"]
    status = c.get("apps/v1", "StatefulSet", "postgres")["status"]
    assert status["updateRevision"] != first_revision
    assert status["currentRevision"] == status["updateRevision"]
    assert status["updatedReplicas"] == status["readyReplicas"] == 3


def test_daemonset_runs_one_pod_per_matching_node(make_cluster: Callable[..., Cluster]) -> None:
    c = make_cluster(nodes=4)
    everywhere = workload("DaemonSet", "node-exporter", replicas=None)
    zoned = workload("DaemonSet", "zone-agent", replicas=None)
    zoned["spec"]["template"]["spec"]["nodeSelector"] = {"zone": "a"}
    c.store.create(everywhere)
    c.store.create(zoned)
    c.manager.settle()
    assert sorted(p["spec"]["nodeName"] for p in c.pods("node-exporter")) == [f"node-{i}" for i in range(1, 5)]
    assert sorted(p["spec"]["nodeName"] for p in c.pods("zone-agent")) == ["node-1", "node-3"]
    status = c.get("apps/v1", "DaemonSet", "node-exporter")["status"]
    assert status["desiredNumberScheduled"] == status["numberReady"] == status["updatedNumberScheduled"] == 4
    c.store.create(node("node-5", zone="a"))
    c.manager.settle()
    assert len(c.pods("zone-agent")) == 3


def test_job_runs_to_completion(make_cluster: Callable[..., Cluster]) -> None:
    c = make_cluster(CompletingRuntime())
    job = workload("Job", "migrate", replicas=None, completions=2, parallelism=1)
    job["spec"].pop("selector")
    job["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    c.store.create(job)
    c.manager.settle()
    status = c.get("batch/v1", "Job", "migrate")["status"]
    assert status["succeeded"] == 2 and "active" not in status
    assert {cond["type"] for cond in status["conditions"] if cond["status"] == "True"} >= {"Complete"}
    pods = c.pods("migrate")
    assert [p["status"]["phase"] for p in pods] == ["Succeeded", "Succeeded"]
    assert pods[0]["metadata"]["labels"]["job-name"] == "migrate"
    terminated = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")


# -- pod lifecycle ------------------------------------------------------------------------------------
def test_crashlooping_workload_shows_crashloopbackoff_and_rising_restarts(
    make_cluster: Callable[..., Cluster],
) -> None:
    c = make_cluster(faults=[{"crashloop": {"namespace": "sre", "workload": "report-worker", "log": "boom\n"}}])
    c.store.create(workload("Deployment", "report-worker", replicas=1))
    c.manager.settle()
    [pod] = c.pods()
    status = pod["status"]["containerStatuses"][0]
    assert pod["status"]["phase"] == "Running" and not ready(pod)
    assert status["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert status["lastState"]["terminated"]["exitCode"] == 1
    assert status["restartCount"] >= 1
    assert c.store.get_pod_log("sre", pod["metadata"]["name"], "report-worker") == "boom\n"
    first = status["restartCount"]
    c.manager.start()
    c.wait_for(lambda: c.pods()[0]["status"]["containerStatuses"][0]["restartCount"] >= first + 2)
    assert c.get("apps/v1", "Deployment", "report-worker")["status"].get("readyReplicas", 0) == 0


def test_lifting_a_crashloop_lets_the_pod_recover(make_cluster: Callable[..., Cluster]) -> None:
    fault = {"crashloop": {"workload": "sre/report-worker"}}
    c = make_cluster(faults=[fault])
    c.store.create(workload("Deployment", "report-worker", replicas=1))
    c.manager.settle()
    assert c.manager.remove_fault(fault)
    c.manager.start()
    c.wait_for(lambda: ready(c.pods()[0]))
    assert c.pods()[0]["status"]["containerStatuses"][0]["restartCount"] >= 1


def test_a_hanging_init_container_leaves_the_pod_pending_in_init(make_cluster: Callable[..., Cluster]) -> None:
    c = make_cluster(HangingInitRuntime("wait-for-db"))
    deploy = workload("Deployment", "portal", replicas=1)
    deploy["spec"]["template"]["spec"]["initContainers"] = [
        {"name": "migrate", "image": "portal:1"},
        {"name": "wait-for-db", "image": "busybox"},
        {"name": "warm-cache", "image": "portal:1"},
    ]
    c.store.create(deploy)
    c.manager.settle()
    [pod] = c.pods()
    status = pod["status"]
    assert status["phase"] == "Pending"
    states = [next(iter(s["state"])) for s in status["initContainerStatuses"]]
    assert states == ["terminated", "running", "waiting"]  # kubectl shows Init:1/3
    assert status["initContainerStatuses"][2]["state"]["waiting"]["reason"] == "PodInitializing"
    assert status["containerStatuses"][0]["state"]["waiting"]["reason"] == "PodInitializing"
    initialized = next(cond for cond in status["conditions"] if cond["type"] == "Initialized")
    assert initialized["status"] == "False" and "wait-for-db" in initialized["message"]
    assert c.get("apps/v1", "Deployment", "portal")["status"].get("availableReplicas", 0) == 0


def test_a_native_sidecar_keeps_running_and_the_pod_becomes_ready(make_cluster: Callable[..., Cluster]) -> None:
    c = make_cluster()
    deploy = workload("Deployment", "portal", replicas=1)
    deploy["spec"]["template"]["spec"]["initContainers"] = [
        {"name": "istio-init", "image": "proxyv2"},
        {"name": "istio-proxy", "image": "proxyv2", "restartPolicy": "Always"},
    ]
    c.store.create(deploy)
    c.manager.settle()
    [pod] = c.pods()
    init = {s["name"]: s for s in pod["status"]["initContainerStatuses"]}
    assert init["istio-init"]["state"]["terminated"]["reason"] == "Completed"
    assert "running" in init["istio-proxy"]["state"] and init["istio-proxy"]["ready"]
    assert pod["status"]["phase"] == "Running" and ready(pod)


def test_failed_liveness_restarts_and_readiness_gates_endpoints(make_cluster: Callable[..., Cluster]) -> None:
    runtime = SwitchableRuntime()
    c = make_cluster(runtime)
    c.store.create(workload("Deployment", "portal", replicas=2))
    c.store.create({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "portal", "namespace": "sre"},
        "spec": {"selector": {"app": "portal"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    })
    c.manager.settle()
    [subset] = c.get("v1", "Endpoints", "portal")["subsets"]
    assert sorted(a["ip"] for a in subset["addresses"]) == sorted(p["status"]["podIP"] for p in c.pods())
    assert subset["ports"] == [{"port": 8080, "protocol": "TCP", "name": "http"}]
    c.manager.start()
    runtime.ready = False
    c.wait_for(lambda: "addresses" not in c.get("v1", "Endpoints", "portal")["subsets"][0])
    assert len(c.get("v1", "Endpoints", "portal")["subsets"][0]["notReadyAddresses"]) == 2
    runtime.ready, runtime.state = True, ContainerState.FAILED
    c.wait_for(lambda: all(p["status"]["containerStatuses"][0]["restartCount"] >= 1 for p in c.pods()))
    runtime.state = ContainerState.RUNNING
    c.wait_for(lambda: len(c.get("v1", "Endpoints", "portal")["subsets"][0].get("addresses", [])) == 2)


def test_unschedulable_pod_waits_for_a_matching_node(make_cluster: Callable[..., Cluster]) -> None:
    c = make_cluster()
    deploy = workload("Deployment", "gpu-job", replicas=1)
    deploy["spec"]["template"]["spec"]["nodeSelector"] = {"gpu": "true"}
    c.store.create(deploy)
    c.manager.settle()
    [pod] = c.pods()
    scheduled = next(cond for cond in pod["status"]["conditions"] if cond["type"] == "PodScheduled")
    assert (scheduled["status"], scheduled["reason"]) == ("False", "Unschedulable")
    c.store.create(node("gpu-1", gpu="true"))
    c.manager.settle()
    [pod] = c.pods()
    assert pod["spec"]["nodeName"] == "gpu-1" and ready(pod)


def test_namespaces_get_a_default_service_account(make_cluster: Callable[..., Cluster]) -> None:
    c = make_cluster()
    c.store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gitea"}})
    c.manager.settle()
    assert c.store.get("v1", "ServiceAccount", "gitea", "default") is not None
    assert c.get("v1", "Namespace", "gitea", namespace="")["status"]["phase"] == "Active"
    c.store.delete("v1", "ServiceAccount", "gitea", "default")
    c.manager.settle()
    assert c.store.get("v1", "ServiceAccount", "gitea", "default") is not None


def test_a_restarted_manager_picks_up_persisted_state(make_cluster: Callable[..., Cluster]) -> None:
    c = make_cluster()
    c.store.create(workload("Deployment", "portal", replicas=2))
    c.manager.settle()
    c.manager.stop()
    store = Store()
    store.load(c.store.dump())
    again = ControllerManager(store, DefaultRuntime(), timing=FAST)
    store.create({**workload("Deployment", "status-page", replicas=1)})
    again.settle()
    ips = [p["status"]["podIP"] for p in store.list("v1", "Pod", "sre")]
    assert len(ips) == 3 and len(set(ips)) == 3
    assert len([p for p in store.list("v1", "Pod", "sre") if p["metadata"]["name"].startswith("portal")]) == 2


# -- fake runtimes ------------------------------------------------------------------------------------
class CompletingRuntime(DefaultRuntime):
    def run_container(self, store: Store, pod: Obj, container: Obj) -> ContainerOutcome:
        return ContainerOutcome(ContainerState.COMPLETED, reason="Completed", log="done\n")


@dataclass
class HangingInitRuntime(DefaultRuntime):
    hanging: str

    def run_init_container(self, store: Store, pod: Obj, container: Obj) -> ContainerOutcome:
        if container["name"] == self.hanging:
            return ContainerOutcome(ContainerState.HANGING, ready=False)
        return super().run_init_container(store, pod, container)


@dataclass
class BrokenImageRuntime(DefaultRuntime):
    image: str

    def run_container(self, store: Store, pod: Obj, container: Obj) -> ContainerOutcome:
        if container["image"] == self.image:
            return ContainerOutcome(ContainerState.RUNNING, ready=False)
        return super().run_container(store, pod, container)


@dataclass
class SwitchableRuntime(DefaultRuntime):
    ready: bool = True
    state: ContainerState = ContainerState.RUNNING

    def run_container(self, store: Store, pod: Obj, container: Obj) -> ContainerOutcome:
        return ContainerOutcome(self.state, exit_code=137 if self.state is ContainerState.FAILED else 0,
                                ready=self.ready)
