"""The StatefulSet controller: ordered pods ``<name>-0..n-1`` and revision-based rolling updates.

With the default ``OrderedReady`` policy a pod is created only when every lower ordinal is Running
and Ready, and scale-down removes the highest ordinal first. A template change sets a new
``updateRevision`` (``<name>-<hash>``, also each pod's ``controller-revision-hash`` label); the
rolling update replaces pods from the highest ordinal down to ``partition``, one at a time, and
``currentRevision`` follows once every pod runs the update.
"""

from __future__ import annotations

import contextlib
from typing import Any

from runbook_engine.errors import NotFoundError
from runbook_engine.sandbox.controllers.context import Context, pod_from_template
from runbook_engine.sandbox.controllers.util import (
    REVISION_HASH_LABEL,
    Wake,
    key_of,
    labels_of,
    pod_active,
    pod_ready,
    write_status,
)
from runbook_engine.sandbox.store import Key, Obj


class StatefulSetController:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def reconcile(self, key: Key) -> Wake | None:
        sts = self.ctx.get(key)
        if sts is None:
            return None
        spec = sts.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        revision = f"{sts['metadata']['name']}-{self.ctx.template_hash(sts)}"
        ordered = spec.get("podManagementPolicy", "OrderedReady") == "OrderedReady"
        pods = self._pods(sts)
        self._create_missing(sts, pods, replicas, revision, ordered)
        self._remove_extra(pods, replicas, ordered)
        self._roll(sts, pods, replicas, revision)
        write_status(self.ctx.store, sts, self._status(sts, self._pods(sts), replicas, revision))
        return None

    def _pods(self, sts: Obj) -> dict[int, Obj]:
        base = f"{sts['metadata']['name']}-"
        out: dict[int, Obj] = {}
        for pod in self.ctx.children(sts, ("v1", "Pod")):
            suffix = str(pod["metadata"]["name"]).removeprefix(base)
            if suffix.isdigit() and pod_active(pod):
                out[int(suffix)] = pod
        return out

    def _create_missing(self, sts: Obj, pods: dict[int, Obj], replicas: int, revision: str, ordered: bool) -> None:
        for ordinal in range(replicas):
            pod = pods.get(ordinal)
            if pod is None:
                pods[ordinal] = self._create(sts, ordinal, revision)
                if ordered:
                    return
            elif ordered and not pod_ready(pod):
                return

    def _remove_extra(self, pods: dict[int, Obj], replicas: int, ordered: bool) -> None:
        extra = sorted((o for o in pods if o >= replicas), reverse=True)
        if ordered and any(not pod_ready(pods[o]) for o in pods if o < replicas):
            return
        for ordinal in extra[:1] if ordered else extra:
            with contextlib.suppress(NotFoundError):
                self.ctx.store.delete(*key_of(pods.pop(ordinal)))

    def _roll(self, sts: Obj, pods: dict[int, Obj], replicas: int, revision: str) -> None:
        """Replace the highest out-of-date ordinal once every pod is ready (maxUnavailable 1)."""
        strategy = (sts.get("spec") or {}).get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") != "RollingUpdate":
            return
        partition = int((strategy.get("rollingUpdate") or {}).get("partition", 0))
        if len(pods) < replicas or not all(pod_ready(p) for p in pods.values()):
            return
        stale = [o for o in sorted(pods, reverse=True) if o >= partition and _revision(pods[o]) != revision]
        if stale:
            with contextlib.suppress(NotFoundError):
                self.ctx.store.delete(*key_of(pods.pop(stale[0])))

    def _create(self, sts: Obj, ordinal: int, revision: str) -> Obj:
        spec = sts.get("spec") or {}
        name = f"{sts['metadata']['name']}-{ordinal}"
        labels = {
            REVISION_HASH_LABEL: revision,
            "statefulset.kubernetes.io/pod-name": name,
            "apps.kubernetes.io/pod-index": str(ordinal),
        }
        pod = pod_from_template(spec.get("template") or {}, sts, name, labels)
        pod["spec"]["hostname"] = name
        claims = [
            {"name": t["metadata"]["name"], "persistentVolumeClaim": {"claimName": f"{t['metadata']['name']}-{name}"}}
            for t in spec.get("volumeClaimTemplates") or []
        ]
        if claims:
            pod["spec"]["volumes"] = [*claims, *(pod["spec"].get("volumes") or [])]
        if spec.get("serviceName"):
            pod["spec"]["subdomain"] = spec["serviceName"]
        return self.ctx.create_pod(pod, generate=False)

    def _status(self, sts: Obj, pods: dict[int, Obj], replicas: int, revision: str) -> dict[str, Any]:
        previous = sts.get("status") or {}
        updated = sum(1 for p in pods.values() if _revision(p) == revision)
        ready = sum(1 for p in pods.values() if pod_ready(p))
        current_revision = str(previous.get("currentRevision") or revision)
        if updated == replicas == len(pods) and ready == replicas:
            current_revision = revision
        current = sum(1 for p in pods.values() if _revision(p) == current_revision)
        return {
            "observedGeneration": sts["metadata"].get("generation", 1),
            "replicas": len(pods),
            "readyReplicas": ready,
            "currentReplicas": current,
            "updatedReplicas": updated,
            "availableReplicas": ready,
            "currentRevision": current_revision,
            "updateRevision": revision,
            "collisionCount": 0,
        }


def _revision(pod: Obj) -> str:
    return labels_of(pod).get(REVISION_HASH_LABEL, "")
