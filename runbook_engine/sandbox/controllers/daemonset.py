"""The DaemonSet controller: one pod on every Node that matches the template's ``nodeSelector``.

Pods are bound straight to their node (``spec.nodeName``), labelled with the template's
``controller-revision-hash`` and ``pod-template-generation``; a template change replaces pods at most
``maxUnavailable`` (default 1) at a time.
"""

from __future__ import annotations

import contextlib
from typing import Any

from runbook_engine.errors import NotFoundError
from runbook_engine.sandbox.controllers.context import Context, NodeInfo, pod_from_template
from runbook_engine.sandbox.controllers.util import (
    POD,
    REVISION_HASH_LABEL,
    Wake,
    key_of,
    labels_of,
    pod_active,
    pod_ready,
    scaled_value,
    write_status,
)
from runbook_engine.sandbox.store import Key, Obj


class DaemonSetController:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def reconcile(self, key: Key) -> Wake | None:
        ds = self.ctx.get(key)
        if ds is None:
            return None
        template = (ds.get("spec") or {}).get("template") or {}
        revision = self.ctx.template_hash(ds)
        eligible = {n.name: n for n in self.ctx.nodes() if _fits(template, n)}
        by_node: dict[str, list[Obj]] = {}
        for pod in self.ctx.children(ds, POD):
            if pod_active(pod):
                by_node.setdefault(str(pod["spec"].get("nodeName", "")), []).append(pod)
        for node, pods in list(by_node.items()):
            keep = pods[:1] if node in eligible else []
            for pod in pods[len(keep):]:
                self._delete(pod)
            by_node[node] = keep
        for name in eligible:
            if not by_node.get(name):
                by_node[name] = [self._create(ds, name, revision)]
        pods = [p for ps in by_node.values() for p in ps]
        self._roll(ds, pods, revision, len(eligible))
        write_status(self.ctx.store, ds, self._status(ds, pods, revision, len(eligible)))
        return None

    def _roll(self, ds: Obj, pods: list[Obj], revision: str, desired: int) -> None:
        strategy = (ds.get("spec") or {}).get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") != "RollingUpdate":
            return
        rolling = strategy.get("rollingUpdate") or {}
        budget = max(scaled_value(rolling.get("maxUnavailable"), desired, round_up=False, default="1"), 1)
        unavailable = sum(1 for p in pods if not pod_ready(p))
        stale = [p for p in pods if labels_of(p).get(REVISION_HASH_LABEL) != revision and pod_ready(p)]
        for pod in stale[: max(budget - unavailable, 0)]:
            self._delete(pod)

    def _create(self, ds: Obj, node: str, revision: str) -> Obj:
        labels = {
            REVISION_HASH_LABEL: revision,
            "pod-template-generation": str(ds["metadata"].get("generation", 1)),
        }
        pod = pod_from_template((ds.get("spec") or {}).get("template") or {}, ds, ds["metadata"]["name"], labels)
        pod["spec"]["nodeName"] = node
        return self.ctx.create_pod(pod, generate=True)

    def _delete(self, pod: Obj) -> None:
        with contextlib.suppress(NotFoundError):
            self.ctx.store.delete(*key_of(pod))

    @staticmethod
    def _status(ds: Obj, pods: list[Obj], revision: str, desired: int) -> dict[str, Any]:
        ready = sum(1 for p in pods if pod_ready(p))
        return {
            "observedGeneration": ds["metadata"].get("generation", 1),
            "desiredNumberScheduled": desired,
            "currentNumberScheduled": len(pods),
            "numberMisscheduled": 0,
            "numberReady": ready,
            "numberAvailable": ready,
            "numberUnavailable": max(desired - ready, 0),
            "updatedNumberScheduled": sum(1 for p in pods if labels_of(p).get(REVISION_HASH_LABEL) == revision),
        }


def _fits(template: Obj, node: NodeInfo) -> bool:
    selector = (template.get("spec") or {}).get("nodeSelector") or {}
    return all(node.labels.get(k) == str(v) for k, v in selector.items())
