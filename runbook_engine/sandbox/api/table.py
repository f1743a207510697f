"""Server-side printing: ``meta.k8s.io/v1`` Tables, which ``kubectl get`` asks for and prints as is.

Columns follow the real server for the kinds users look at most (pods, workloads, services,
namespaces, nodes); every other kind gets ``NAME`` and ``AGE``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from runbook_engine.kube.refs import KindInfo

Obj = dict[str, Any]
Column = tuple[str, str, Callable[[Obj], Any]]  # (name, type, cell)


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def _get(obj: Obj, *path: str, default: Any = None) -> Any:
    node: Any = obj
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    return default if node is None else node


def age(obj: Obj) -> str:
    """``kubectl``'s short age: 45s, 12m, 3h, 9d."""
    created = _get(obj, "metadata", "creationTimestamp")
    if not created:
        return "<unknown>"
    then = dt.datetime.strptime(str(created), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    seconds = max(0, int((dt.datetime.now(dt.UTC) - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * 2 or (unit == "m" and seconds >= 120):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _pod_status(pod: Obj) -> str:
    if _get(pod, "metadata", "deletionTimestamp"):
        return "Terminating"
    for status in _get(pod, "status", "containerStatuses", default=[]):
        waiting = _get(status, "state", "waiting", "reason")
        if waiting:
            return str(waiting)
        terminated = _get(status, "state", "terminated", "reason")
        if terminated:
            return str(terminated)
    return str(_get(pod, "status", "phase", default="Pending"))


def _pod_ready(pod: Obj) -> str:
    statuses = _get(pod, "status", "containerStatuses", default=[])
    ready = sum(1 for s in statuses if s.get("ready"))
    return f"{ready}/{len(_get(pod, 'spec', 'containers', default=[]))}"


def _restarts(pod: Obj) -> int:
    return sum(int(s.get("restartCount", 0)) for s in _get(pod, "status", "containerStatuses", default=[]))


def _ports(svc: Obj) -> str:
    ports = _get(svc, "spec", "ports", default=[])
    return ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in ports) or "<none>"


_NAME: Column = ("Name", "string", lambda o: _get(o, "metadata", "name", default=""))
_AGE: Column = ("Age", "string", age)

_COLUMNS: dict[str, list[Column]] = {
    "Pod": [
        _NAME,
        ("Ready", "string", _pod_ready),
        ("Status", "string", _pod_status),
        ("Restarts", "integer", _restarts),
        _AGE,
    ],
    "Deployment": [
        _NAME,
        ("Ready", "string", lambda o: f"{_get(o, 'status', 'readyReplicas', default=0)}/"
                                      f"{_get(o, 'spec', 'replicas', default=1)}"),
        ("Up-to-date", "integer", lambda o: _get(o, "status", "updatedReplicas", default=0)),
        ("Available", "integer", lambda o: _get(o, "status", "availableReplicas", default=0)),
        _AGE,
    ],
    "ReplicaSet": [
        _NAME,
        ("Desired", "integer", lambda o: _get(o, "spec", "replicas", default=1)),
        ("Current", "integer", lambda o: _get(o, "status", "replicas", default=0)),
        ("Ready", "integer", lambda o: _get(o, "status", "readyReplicas", default=0)),
        _AGE,
    ],
    "StatefulSet": [
        _NAME,
        ("Ready", "string", lambda o: f"{_get(o, 'status', 'readyReplicas', default=0)}/"
                                      f"{_get(o, 'spec', 'replicas', default=1)}"),
        _AGE,
    ],
    "DaemonSet": [
        _NAME,
        ("Desired", "integer", lambda o: _get(o, "status", "desiredNumberScheduled", default=0)),
        ("Current", "integer", lambda o: _get(o, "status", "currentNumberScheduled", default=0)),
        ("Ready", "integer", lambda o: _get(o, "status", "numberReady", default=0)),
        _AGE,
    ],
    "Service": [
        _NAME,
        ("Type", "string", lambda o: _get(o, "spec", "type", default="ClusterIP")),
        ("Cluster-IP", "string", lambda o: _get(o, "spec", "clusterIP", default="<none>")),
        ("Port(s)", "string", _ports),
        _AGE,
    ],
    "Namespace": [_NAME, ("Status", "string", lambda o: _get(o, "status", "phase", default="Active")), _AGE],
    "Node": [
        _NAME,
        ("Status", "string", lambda o: "Ready"),
        ("Version", "string", lambda o: _get(o, "status", "nodeInfo", "kubeletVersion", default="")),
        _AGE,
    ],
}


#: Extra columns ``kubectl get -o wide`` shows (priority 1).
_WIDE: dict[str, list[Column]] = {
    "Pod": [
        ("IP", "string", lambda o: _get(o, "status", "podIP", default="<none>")),
        ("Node", "string", lambda o: _get(o, "spec", "nodeName", default="<none>")),
    ],
    "Deployment": [
        ("Containers", "string", lambda o: ",".join(c.get("name", "") for c in _containers(o))),
        ("Images", "string", lambda o: ",".join(c.get("image", "") for c in _containers(o))),
    ],
}


def _containers(obj: Obj) -> list[Obj]:
    return list(_get(obj, "spec", "template", "spec", "containers", default=[]))


def _partial(info: KindInfo, obj: Obj) -> Obj:
    metadata = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": metadata}


def table_for(info: KindInfo, items: list[Obj], list_meta: Obj) -> Obj:
    builtin = info.api_version in ("v1", "apps/v1")
    columns = _COLUMNS.get(info.kind, [_NAME, _AGE]) if builtin else [_NAME, _AGE]
    wide = _WIDE.get(info.kind, []) if builtin else []
    definitions = [
        {"name": name, "type": kind, "format": "name" if name == "Name" else "", "description": "", "priority": 0}
        for name, kind, _ in columns
    ] + [{"name": name, "type": kind, "format": "", "description": "", "priority": 1} for name, kind, _ in wide]
    columns = columns + wide
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": definitions,
        "rows": [{"cells": [cell(obj) for _, _, cell in columns], "object": _partial(info, obj)} for obj in items],
    }
