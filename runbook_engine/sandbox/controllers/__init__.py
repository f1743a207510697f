"""The sandbox's workload controllers and pod lifecycle (scheduler + kubelet), driven by store events.

``ControllerManager(store, runtime)`` runs them: Deployments → ReplicaSets → Pods, StatefulSets,
DaemonSets, Jobs, Endpoints for Services, a ``default`` ServiceAccount per namespace; pods move
Pending → Running → Ready on a fast clock, asking the ``PodRuntime`` what each container does.
"""

from runbook_engine.sandbox.controllers.context import Timing
from runbook_engine.sandbox.controllers.crashloop import CrashLoop, CrashLoopRuntime, workload_of
from runbook_engine.sandbox.controllers.manager import ControllerManager

__all__ = ["ControllerManager", "CrashLoop", "CrashLoopRuntime", "Timing", "workload_of"]
