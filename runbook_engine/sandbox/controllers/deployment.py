"""The Deployment controller: one ReplicaSet per pod template, rolled with maxSurge/maxUnavailable.

As in kube-controller-manager: the ReplicaSet is named ``<deployment>-<pod-template-hash>`` and carries
the ``pod-template-hash`` label in its selector and template; any template change (including the
``kubectl.kubernetes.io/restartedAt`` annotation ``kubectl rollout restart`` sets) makes a new
ReplicaSet with the next ``deployment.kubernetes.io/revision``, scaled up while old ones scale down
within the surge/unavailability budget. Status carries what ``kubectl rollout status`` reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runbook_engine.errors import ConflictError
from runbook_engine.sandbox.controllers.context import Context
from runbook_engine.sandbox.controllers.util import (
    REPLICA_SET,
    REVISION_ANNOTATION,
    TEMPLATE_HASH_LABEL,
    Wake,
    annotate,
    condition,
    labels_of,
    owner_reference,
    scaled_value,
    write_status,
)
from runbook_engine.sandbox.store import Key, Obj, json_copy

DEFAULT_HISTORY_LIMIT = 10


@dataclass(frozen=True)
class Budget:
    """The rolling-update budget of one Deployment."""

    replicas: int
    max_surge: int
    max_unavailable: int

    @classmethod
    def of(cls, deploy: Obj) -> Budget:
        spec = deploy.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        strategy = spec.get("strategy") or {}
        if strategy.get("type") == "Recreate":
            return cls(replicas, 0, replicas)
        rolling = strategy.get("rollingUpdate") or {}
        surge = scaled_value(rolling.get("maxSurge"), replicas, round_up=True, default="25%")
        unavailable = scaled_value(rolling.get("maxUnavailable"), replicas, round_up=False, default="25%")
        if surge == 0 and unavailable == 0:
            unavailable = 1
        return cls(replicas, surge, unavailable)


def _spec_replicas(rs: Mapping[str, Any]) -> int:
    return int((rs.get("spec") or {}).get("replicas", 0))


def _available(rs: Mapping[str, Any]) -> int:
    """Available pods, never more than the ReplicaSet is scaled to (its status may lag a scale-down)."""
    return min(int((rs.get("status") or {}).get("availableReplicas", 0)), _spec_replicas(rs))


def _revision(rs: Mapping[str, Any]) -> int:
    annotations = (rs.get("metadata") or {}).get("annotations") or {}
    return int(annotations.get(REVISION_ANNOTATION, "0") or 0)


class DeploymentController:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def reconcile(self, key: Key) -> Wake | None:
        deploy = self.ctx.get(key)
        if deploy is None:
            return None
        sets = self.ctx.children(deploy, REPLICA_SET)
        spec = deploy.get("spec") or {}
        if spec.get("paused"):
            write_status(self.ctx.store, deploy, self._status(deploy, None, sets))
            return None
        new = self._new_replica_set(deploy, sets)
        old = [rs for rs in sets if rs["metadata"]["name"] != new["metadata"]["name"]]
        budget = Budget.of(deploy)
        if (spec.get("strategy") or {}).get("type") == "Recreate":
            self._recreate(new, old, budget)
        else:
            self._scale_up(new, old, budget)
            self._scale_down(new, old, budget)
        pruned = self._prune_history(deploy, old)
        sets = [new, *(rs for rs in old if rs["metadata"]["name"] not in pruned)]
        status = self._status(deploy, new, sets)
        # the revision annotation and the status go out in one write
        if annotate(deploy, REVISION_ANNOTATION, str(_revision(new))) or deploy.get("status") != status:
            deploy["status"] = status
            self.ctx.store.update(deploy, expect_rv=str(deploy["metadata"]["resourceVersion"]), copy_result=False)
        return None

    # -- the new ReplicaSet ------------------------------------------------------------------
    def _new_replica_set(self, deploy: Obj, sets: list[Obj]) -> Obj:
        template = (deploy.get("spec") or {}).get("template") or {}
        digest = self.ctx.template_hash(deploy, int((deploy.get("status") or {}).get("collisionCount", 0)))
        top = max((_revision(rs) for rs in sets), default=0)
        for rs in sets:
            if labels_of(rs).get(TEMPLATE_HASH_LABEL) == digest:
                if _revision(rs) < top:  # rolling back to an older template: it becomes the newest
                    annotate(rs, REVISION_ANNOTATION, str(top + 1))
                    return self.ctx.store.update(rs)
                return rs
        return self._create_replica_set(deploy, template, digest, top + 1, bool(sets))

    def _create_replica_set(self, deploy: Obj, template: Obj, digest: str, revision: int, rolling: bool) -> Obj:
        spec = deploy.get("spec") or {}
        budget = Budget.of(deploy)
        rs_template = json_copy(template)
        rs_template.setdefault("metadata", {}).setdefault("labels", {})[TEMPLATE_HASH_LABEL] = digest
        selector = json_copy(spec.get("selector") or {"matchLabels": dict(labels_of(rs_template))})
        selector.setdefault("matchLabels", {})[TEMPLATE_HASH_LABEL] = digest
        meta = deploy["metadata"]
        rs: Obj = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{meta['name']}-{digest}",
                "namespace": meta.get("namespace", ""),
                "labels": dict(rs_template["metadata"]["labels"]),
                "annotations": {
                    "deployment.kubernetes.io/desired-replicas": str(budget.replicas),
                    "deployment.kubernetes.io/max-replicas": str(budget.replicas + budget.max_surge),
                    REVISION_ANNOTATION: str(revision),
                },
                "ownerReferences": [owner_reference(deploy)],
            },
            "spec": {
                "replicas": 0 if rolling else budget.replicas,
                "minReadySeconds": int(spec.get("minReadySeconds", 0)),
                "selector": selector,
                "template": rs_template,
            },
        }
        try:
            return self.ctx.store.create(rs)
        except ConflictError:  # a foreign object holds the name: bump collisionCount, as the real one does
            status = dict(deploy.get("status") or {})
            status["collisionCount"] = int(status.get("collisionCount", 0)) + 1
            write_status(self.ctx.store, deploy, status)
            raise

    # -- scaling -----------------------------------------------------------------------------
    def _scale(self, rs: Obj, replicas: int) -> None:
        if _spec_replicas(rs) == replicas:
            return
        rs["spec"]["replicas"] = replicas
        stored = self.ctx.store.update(rs, expect_rv=str(rs["metadata"]["resourceVersion"]))
        rs["metadata"] = stored["metadata"]

    def _scale_up(self, new: Obj, old: list[Obj], budget: Budget) -> None:
        current = _spec_replicas(new)
        if current >= budget.replicas:
            if current > budget.replicas:
                self._scale(new, budget.replicas)
            return
        total = current + sum(_spec_replicas(rs) for rs in old)
        room = budget.replicas + budget.max_surge - total
        if room > 0:
            self._scale(new, min(budget.replicas, current + room))

    def _scale_down(self, new: Obj, old: list[Obj], budget: Budget) -> None:
        """Scale old ReplicaSets down while at least ``replicas - maxUnavailable`` pods stay available."""
        live = [rs for rs in old if _spec_replicas(rs) > 0]
        if not live:
            return
        total = _spec_replicas(new) + sum(_spec_replicas(rs) for rs in live)
        available = _available(new) + sum(_available(rs) for rs in live)
        min_available = budget.replicas - budget.max_unavailable
        new_unavailable = max(_spec_replicas(new) - _available(new), 0)
        # Unhealthy old pods first: removing them costs no availability.
        allowed = total - min_available - new_unavailable
        for rs in sorted(live, key=lambda r: _revision(r)):
            if allowed <= 0:
                break
            unhealthy = max(_spec_replicas(rs) - _available(rs), 0)
            cut = min(unhealthy, allowed)
            if cut:
                self._scale(rs, _spec_replicas(rs) - cut)
                allowed -= cut
        budget_left = available - min_available
        for rs in sorted(live, key=lambda r: _revision(r)):
            if budget_left <= 0:
                break
            cut = min(_spec_replicas(rs), budget_left)
            if cut:
                self._scale(rs, _spec_replicas(rs) - cut)
                budget_left -= cut

    def _recreate(self, new: Obj, old: list[Obj], budget: Budget) -> None:
        for rs in old:
            self._scale(rs, 0)
        if all(int((rs.get("status") or {}).get("replicas", 0)) == 0 for rs in old):
            self._scale(new, budget.replicas)

    def _prune_history(self, deploy: Obj, old: list[Obj]) -> set[str]:
        """Delete the oldest idle ReplicaSets beyond ``revisionHistoryLimit``; returns their names."""
        limit = int((deploy.get("spec") or {}).get("revisionHistoryLimit", DEFAULT_HISTORY_LIMIT))
        idle = [
            rs for rs in old
            if _spec_replicas(rs) == 0 and int((rs.get("status") or {}).get("replicas", 0)) == 0
        ]
        doomed = sorted(idle, key=_revision)[: max(len(idle) - limit, 0)]
        for rs in doomed:
            self.ctx.store.delete(*REPLICA_SET, rs["metadata"]["namespace"], rs["metadata"]["name"])
        return {rs["metadata"]["name"] for rs in doomed}

    # -- status ------------------------------------------------------------------------------
    def _status(self, deploy: Obj, new: Obj | None, sets: list[Obj]) -> dict[str, Any]:
        budget = Budget.of(deploy)
        status_of = [rs.get("status") or {} for rs in sets]
        replicas = sum(int(s.get("replicas", 0)) for s in status_of)
        ready = sum(int(s.get("readyReplicas", 0)) for s in status_of)
        available = sum(int(s.get("availableReplicas", 0)) for s in status_of)
        updated = int((new or {}).get("status", {}).get("replicas", 0)) if new else 0
        previous = dict(deploy.get("status") or {})
        complete = new is not None and updated == budget.replicas and available >= budget.replicas
        complete = complete and replicas == updated
        new_name = new["metadata"]["name"] if new else ""
        is_available = available >= budget.replicas - budget.max_unavailable
        status: dict[str, Any] = {
            "observedGeneration": deploy["metadata"].get("generation", 1),
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "unavailableReplicas": max(sum(_spec_replicas(rs) for rs in sets) - available, 0),
            "conditions": _conditions(is_available, complete, new_name, previous.get("conditions")),
        }
        if previous.get("collisionCount"):
            status["collisionCount"] = previous["collisionCount"]
        return {k: v for k, v in status.items() if v or k in ("observedGeneration", "replicas", "conditions")}


def _conditions(available: bool, complete: bool, new_name: str, previous: list[dict[str, Any]] | None) -> list[Obj]:
    """``Available`` and ``Progressing``, with the reasons ``kubectl rollout status`` and the client read."""
    if available:
        avail = condition("Available", True, "MinimumReplicasAvailable", "Deployment has minimum availability.",
                          previous)
    else:
        avail = condition("Available", False, "MinimumReplicasUnavailable",
                          "Deployment does not have minimum availability.", previous)
    if complete:
        progressing = condition("Progressing", True, "NewReplicaSetAvailable",
                                f'ReplicaSet "{new_name}" has successfully progressed.', previous)
    else:
        progressing = condition("Progressing", True, "ReplicaSetUpdated",
                                f'ReplicaSet "{new_name}" is progressing.', previous)
    return [avail, progressing]
