"""The ``Cluster`` protocol: everything the engine, actions and checks may ask of a cluster.

Two implementations: ``KubeCluster`` (the official ``kubernetes`` client; production and the
sandbox over HTTPS) and ``MemoryCluster`` (an in-memory store the planner simulates phases on).
Objects are plain ``dict`` manifests. ``get`` returns ``None`` for a missing object; every other
failure is a ``ClusterError`` subclass from ``runbook_engine.errors``.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from runbook_engine.kube.refs import ObjectRef

Obj = dict[str, Any]

FIELD_MANAGER = "runbook-engine"


class PatchType(StrEnum):
    MERGE = "application/merge-patch+json"
    JSON = "application/json-patch+json"
    STRATEGIC = "application/strategic-merge-patch+json"
    APPLY = "application/apply-patch+yaml"


class Propagation(StrEnum):
    FOREGROUND = "Foreground"
    BACKGROUND = "Background"
    ORPHAN = "Orphan"


@runtime_checkable
class Cluster(Protocol):
    """A Kubernetes API, reached through one client path."""

    @property
    def name(self) -> str:
        """Human name of the cluster (inventory host name or kube context)."""
        ...

    def get(self, ref: ObjectRef) -> Obj | None:
        """The object, or None when it does not exist."""
        ...

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[Obj]:
        """All objects of a kind (in one namespace, or all namespaces when None) matching the selector."""
        ...

    def apply(
        self,
        obj: Mapping[str, Any],
        *,
        field_manager: str = FIELD_MANAGER,
        dry_run: bool = False,
        force: bool = True,
    ) -> Obj:
        """Server-side apply; returns the object as the server stores (or would store) it."""
        ...

    def patch(
        self,
        ref: ObjectRef,
        patch: Any,
        *,
        patch_type: PatchType = PatchType.MERGE,
        dry_run: bool = False,
        field_manager: str = FIELD_MANAGER,
    ) -> Obj:
        """Patch an existing object; returns the patched object."""
        ...

    def delete(
        self,
        ref: ObjectRef,
        *,
        dry_run: bool = False,
        propagation: Propagation = Propagation.BACKGROUND,
    ) -> Obj | None:
        """Delete an object; returns the last state seen, or None if it was already gone."""
        ...

    def pod_logs(self, namespace: str, name: str, container: str | None = None, tail_lines: int | None = None) -> str:
        """The log of a pod's container."""
        ...
