"""The ReplicaSet controller: keeps ``spec.replicas`` pods from the template, reports their readiness."""

from __future__ import annotations

import contextlib
from typing import Any

from runbook_engine.errors import NotFoundError
from runbook_engine.sandbox.controllers.context import Context, pod_from_template
from runbook_engine.sandbox.controllers.util import (
    POD,
    TEMPLATE_HASH_LABEL,
    Wake,
    key_of,
    labels_of,
    pod_active,
    pod_ready,
    write_status,
)
from runbook_engine.sandbox.store import Key, Obj


class ReplicaSetController:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def reconcile(self, key: Key) -> Wake | None:
        rs = self.ctx.get(key)
        if rs is None:
            return None
        pods = [p for p in self.ctx.children(rs, POD) if pod_active(p)]
        want = int((rs.get("spec") or {}).get("replicas", 1))
        if len(pods) < want:
            pods += [self._create(rs) for _ in range(want - len(pods))]
        elif len(pods) > want:
            doomed = sorted(pods, key=_deletion_cost)[: len(pods) - want]
            for pod in doomed:
                with contextlib.suppress(NotFoundError):
                    self.ctx.store.delete(*key_of(pod))
            pods = [p for p in pods if p not in doomed]
        write_status(self.ctx.store, rs, _status(rs, pods))
        return None

    def _create(self, rs: Obj) -> Obj:
        template = (rs.get("spec") or {}).get("template") or {}
        extra = {TEMPLATE_HASH_LABEL: labels_of(rs).get(TEMPLATE_HASH_LABEL, "")}
        extra = {k: v for k, v in extra.items() if v}
        pod = pod_from_template(template, rs, str(rs["metadata"]["name"]), extra)
        return self.ctx.create_pod(pod, generate=True)


def _deletion_cost(pod: Obj) -> tuple[int, int, int]:
    """Scale-down order as the real controller: unscheduled, then not ready, then most restarted first."""
    status = pod.get("status") or {}
    restarts = sum(int(s.get("restartCount", 0)) for s in status.get("containerStatuses") or [])
    return (1 if (pod.get("spec") or {}).get("nodeName") else 0, 1 if pod_ready(pod) else 0, -restarts)


def _status(rs: Obj, pods: list[Obj]) -> dict[str, Any]:
    template_labels = ((rs.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {}
    ready = sum(1 for p in pods if pod_ready(p))
    labelled = sum(1 for p in pods if all(labels_of(p).get(k) == v for k, v in template_labels.items()))
    status: dict[str, Any] = {
        "replicas": len(pods),
        "fullyLabeledReplicas": labelled,
        "readyReplicas": ready,
        "availableReplicas": ready,
        "observedGeneration": rs["metadata"].get("generation", 1),
    }
    return {k: v for k, v in status.items() if v or k in ("replicas", "observedGeneration")}
