"""The sandbox demo platform after a PERMISSIVE Istio sidecar rollout, driven through the Cluster API.

``permissive_rollout`` applies ``cases/demo_permissive_rollout.yaml`` (control plane, SPIRE,
exceptions), opts the datastores out of injection, labels ``sre`` for injection and restarts its
workloads, as the playbook's phases do; ``settle`` waits until every rollout has finished.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import yaml

from runbook_engine.kube.cluster import Cluster, PatchType
from runbook_engine.kube.flow import Flow
from runbook_engine.kube.health import rollout_state
from runbook_engine.kube.refs import ObjectRef

DEMO = Path(__file__).parents[2] / "inventory" / "demo" / "scenario.yaml"
ROLLOUT = Path(__file__).parent / "cases" / "demo_permissive_rollout.yaml"
DATASTORES = {"StatefulSet": ["neo4j", "redpanda", "redis", "postgres-incidents", "postgres-runbooks",
                              "postgres-temporal"], "Deployment": ["temporal"]}
BROKEN = {"report-worker"}  # crash-looping since before the rollout


def demo_flows() -> list[Flow]:
    return [Flow.model_validate(f) for f in yaml.safe_load(DEMO.read_text())["flows"]]


def workloads(cluster: Cluster, ns: str) -> list[dict[str, Any]]:
    return cluster.list("apps/v1", "Deployment", ns) + cluster.list("apps/v1", "StatefulSet", ns)


def permissive_rollout(cluster: Cluster) -> None:
    for doc in yaml.safe_load_all(ROLLOUT.read_text()):
        if doc:
            cluster.apply(doc)
    settle(cluster, ["istio-system", "spire-server"])
    opt_out = {"spec": {"template": {"metadata": {"labels": {"sidecar.istio.io/inject": "false"}}}}}
    for kind, names in DATASTORES.items():
        for name in names:
            cluster.patch(ObjectRef("apps/v1", kind, "sre", name), opt_out, patch_type=PatchType.MERGE)
    cluster.patch(ObjectRef("v1", "Namespace", "", "sre"), {"metadata": {"labels": {"istio-injection": "enabled"}}})
    stamp = dt.datetime.now(dt.UTC).isoformat()
    restart = {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}}}}
    for wl in workloads(cluster, "sre"):
        cluster.patch(ObjectRef("apps/v1", wl["kind"], "sre", wl["metadata"]["name"]), restart)
    settle(cluster, ["sre"])


def settle(cluster: Cluster, namespaces: list[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        pending = [f"{ns}/{wl['metadata']['name']}" for ns in namespaces for wl in workloads(cluster, ns)
                   + cluster.list("apps/v1", "DaemonSet", ns)
                   if wl["metadata"]["name"] not in BROKEN and not rollout_state(wl).done]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"rollouts not finished: {pending}")
        time.sleep(0.2)
