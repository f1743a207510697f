"""The run's baseline: every pod's health before the first phase.

``take_baseline`` records, for each pod in the cluster, its top-level owner (a Deployment rather
than its ReplicaSet, a CronJob rather than its Job), phase, readiness, restart count and the reason
it is broken (CrashLoopBackOff, Init:…). Checks compare against it to tell failures a run caused
from failures that were already there (PRE-EXISTING).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from runbook_engine.checks.base import Baseline, PodHealth
from runbook_engine.kube.cluster import Cluster, Obj
from runbook_engine.kube.health import controller_of, pod_problem, pod_ready, pod_restarts

#: Intermediate owners and the kind of the object that owns them: (apiVersion, kind).
_INTERMEDIATE: dict[str, tuple[str, str]] = {"ReplicaSet": ("apps/v1", "ReplicaSet"), "Job": ("batch/v1", "Job")}

Lister = Callable[[str, str], Sequence[Obj]]  # (apiVersion, kind) -> every object of the kind
Owners = Mapping[tuple[str, str, str], tuple[str, str] | None]  # (kind, ns, name) -> its controller


def intermediate_owners(list_kind: Lister) -> dict[tuple[str, str, str], tuple[str, str] | None]:
    """Controllers of every ReplicaSet and Job, one list call per kind."""
    out: dict[tuple[str, str, str], tuple[str, str] | None] = {}
    for kind, (api_version, _) in _INTERMEDIATE.items():
        for obj in list_kind(api_version, kind):
            meta = obj.get("metadata") or {}
            out[(kind, str(meta.get("namespace") or ""), str(meta.get("name")))] = controller_of(obj)
    return out


def owner_of(pod: Mapping[str, Any], owners: Owners) -> str:
    """``<Kind>/<name>`` of a pod's top-level workload, or the pod's own name when it has no owner."""
    meta = pod.get("metadata") or {}
    controller = controller_of(pod)
    if controller is None:
        return str(meta.get("name"))
    kind, name = controller
    if kind in _INTERMEDIATE:
        parent = owners.get((kind, str(meta.get("namespace") or ""), name))
        if parent is not None:
            kind, name = parent
    return f"{kind}/{name}"


def pod_health(pod: Obj, owners: Owners) -> PodHealth:
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    return PodHealth(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name")),
        owner=owner_of(pod, owners),
        phase=str(status.get("phase") or "Unknown"),
        ready=pod_ready(pod),
        restarts=pod_restarts(pod),
        reason=pod_problem(pod),
    )


def take_baseline(cluster: Cluster, now: dt.datetime | None = None) -> Baseline:
    """Every pod's health, now."""
    return baseline_of(cluster.list, now)


def baseline_of(list_kind: Lister, now: dt.datetime | None = None) -> Baseline:
    """Every pod's health, from ``list_kind(apiVersion, kind)`` (all namespaces; only read)."""
    owners = intermediate_owners(list_kind)
    pods = sorted(list_kind("v1", "Pod"), key=lambda p: (p["metadata"].get("namespace", ""), p["metadata"]["name"]))
    return Baseline(now or dt.datetime.now(dt.UTC), tuple(pod_health(p, owners) for p in pods))
