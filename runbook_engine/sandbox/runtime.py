"""The seam between the sandbox's controllers and its mesh physics.

Controllers drive pods through their lifecycle; *what happens inside a pod* — whether a container
starts, crashes, hangs on the network, and what it logs — is asked of a ``PodRuntime``. The default
runtime says everything runs fine; the mesh physics supplies one that knows about proxies, mTLS,
policies and probe images. Admission (injection at pod creation) is a ``Store.admission`` hook.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from runbook_engine.sandbox.store import Store

Obj = dict[str, Any]


class ContainerState(StrEnum):
    RUNNING = "running"  # long-running and healthy
    COMPLETED = "completed"  # exited 0 (Jobs, probe pods, init containers)
    FAILED = "failed"  # exited non-zero (crash: restarted per restartPolicy)
    HANGING = "hanging"  # never finishes (e.g. an init container waiting on the network)


@dataclass(frozen=True)
class ContainerOutcome:
    state: ContainerState
    exit_code: int = 0
    reason: str = ""  # e.g. "Error", "CrashLoopBackOff", "Completed"
    log: str = ""
    ready: bool = True  # readiness probe verdict while RUNNING


class PodRuntime(Protocol):
    """Decides what each container of a pod does once the pod is scheduled."""

    def run_init_container(self, store: Store, pod: Obj, container: Obj) -> ContainerOutcome:
        ...

    def run_container(self, store: Store, pod: Obj, container: Obj) -> ContainerOutcome:
        ...


class DefaultRuntime:
    """Every init container completes and every container runs and is ready."""

    def run_init_container(self, store: Store, pod: Obj, container: Obj) -> ContainerOutcome:
        if container.get("restartPolicy") == "Always":  # a native sidecar keeps running
            return ContainerOutcome(ContainerState.RUNNING)
        return ContainerOutcome(ContainerState.COMPLETED, reason="Completed")

    def run_container(self, store: Store, pod: Obj, container: Obj) -> ContainerOutcome:
        return ContainerOutcome(ContainerState.RUNNING)
