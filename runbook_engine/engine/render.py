"""Rendering a plan's manifests to files, for teams that deploy through GitOps.

Each created or updated object of a phase is written as ``<phase>/<namespace>/<kind>-<name>.yaml``
(``_cluster`` for cluster-scoped objects; with several clusters, under ``<cluster>/`` first): the
object as the phase leaves it, without server-populated fields or ``status``, keys sorted. The
output depends only on the playbook, the inventory and the cluster's objects — no timestamps — so
two renders of the same inputs are byte-identical. Secret values are masked: Secrets belong in a
secret store, not in a repository.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import yaml

from runbook_engine.engine.plan_model import ObjectPlan, Plan
from runbook_engine.kube.change import ChangeKind
from runbook_engine.kube.redact import redact_object

CLUSTER_SCOPED = "_cluster"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str) -> str:
    """``text`` as one path component (runs of anything but letters, digits, ``.``, ``_``, ``-`` → ``-``)."""
    return _UNSAFE.sub("-", text).strip("-") or "unnamed"


def manifest_path(phase: str, obj: ObjectPlan) -> Path | None:
    after = obj.after or {}
    meta = after.get("metadata") or {}
    if not meta.get("name"):
        return None
    namespace = str(meta.get("namespace") or CLUSTER_SCOPED)
    file = f"{safe_name(str(after.get('kind', 'Object'))).lower()}-{safe_name(str(meta['name']))}.yaml"
    return Path(safe_name(phase)) / safe_name(namespace) / file


def manifest_text(obj: ObjectPlan) -> str:
    return yaml.safe_dump(redact_object(obj.after or {}), sort_keys=True, default_flow_style=False)


def render_plans(plans: Sequence[Plan], directory: Path) -> list[Path]:
    """Write every phase's created and updated objects under ``directory``; returns the files, sorted."""
    written: list[Path] = []
    for plan in plans:
        base = directory / safe_name(plan.cluster) if len(plans) > 1 else directory
        for phase in plan.phases:
            for obj in phase.objects:
                relative = manifest_path(phase.name, obj)
                if obj.change not in (ChangeKind.CREATE, ChangeKind.UPDATE) or relative is None:
                    continue
                path = base / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(manifest_text(obj), encoding="utf-8")
                written.append(path)
    return sorted(written)
