"""Compact pod descriptions for the check tests, expanded into the manifests a cluster would return."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def replicaset(name: str, ns: str, deployment: str) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": ns,
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment,
                                              "uid": f"uid-{deployment}", "controller": True}]}}


def _container_status(p: dict[str, Any]) -> Obj:
    state: Obj = {"running": {}}
    if p.get("waiting"):
        state = {"waiting": {"reason": p["waiting"]}}
    return {"name": "app", "ready": p.get("ready", True), "restartCount": p.get("restarts", 0), "state": state}


def _init_status(p: dict[str, Any]) -> list[Obj]:
    if "init" not in p:
        return []
    state = {"waiting": {"reason": p["init"]}} if p["init"] != "running" else {"running": {}}
    return [{"name": "setup", "ready": False, "restartCount": p.get("init_restarts", 0), "state": state}]


def pod(p: dict[str, Any]) -> Obj:
    """A pod from ``{name, ns, app, owner: rs/<name>|none, phase, ready, restarts, waiting, init, unschedulable}``."""
    ns, app = p.get("ns", "shop"), p.get("app", "api")
    meta: Obj = {"name": p["name"], "namespace": ns, "labels": {"app": app}}
    owner = p.get("owner", f"rs/{app}-5d8f")
    if owner != "none":
        kind, name = owner.split("/")
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": {"rs": "ReplicaSet", "ds": "DaemonSet",
                                                                       "sts": "StatefulSet"}[kind],
                                    "name": name, "uid": f"uid-{name}", "controller": True}]
    ready = p.get("ready", True) and "waiting" not in p and "init" not in p
    status: Obj = {"phase": p.get("phase", "Pending" if "init" in p else "Running"),
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                   "containerStatuses": [_container_status({**p, "ready": ready})]}
    if "unschedulable" in p:
        status = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                                                      "reason": "Unschedulable", "message": p["unschedulable"]}]}
    init = _init_status(p)
    if init:
        status["initContainerStatuses"] = init
    spec: Obj = {"containers": [{"name": "app"}]}
    if init:
        spec["initContainers"] = [{"name": "setup"}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}
