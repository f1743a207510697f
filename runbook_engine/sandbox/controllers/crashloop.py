"""The ``crashloop`` fault: every pod of one workload crashes on start, so it crash-loops.

A scenario declares it in its ``faults:`` list, in the same shape as the other faults::

    - crashloop: {namespace: sre, workload: report-worker, container: worker, exitCode: 1, log: "..."}

(``workload: sre/report-worker`` is the same; ``container``, ``exitCode`` and ``log`` are optional.)
It wraps whatever ``PodRuntime`` the sandbox runs, so the pods
show ``CrashLoopBackOff`` with a rising ``restartCount`` exactly as a broken release would, while
every other pod keeps the inner runtime's behaviour.

``CrashLoopFaults`` is the fault handler a server registers on its ``FaultBoard``: it holds the
active crash loops (declared or injected at run time) and applies them to the controllers while
they run; lifting one lets the workload's containers start normally at their next restart.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from runbook_engine.errors import UserInputError
from runbook_engine.sandbox.controllers.util import REPLICA_SET, controller_ref
from runbook_engine.sandbox.faults import describe
from runbook_engine.sandbox.runtime import ContainerOutcome, ContainerState, PodRuntime
from runbook_engine.sandbox.store import Obj, Store

FAULT_TYPE = "crashloop"
_PROXIES = frozenset({"istio-proxy", "linkerd-proxy"})  # injected sidecars are not the workload's own
_FIELDS = frozenset({"namespace", "workload", "container", "exitCode", "log"})


@dataclass(frozen=True)
class CrashLoop:
    """One crash-looping workload: ``<namespace>/<workload name>``, optionally one container of it."""

    namespace: str
    workload: str
    container: str | None = None
    exit_code: int = 1
    log: str = ""

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> CrashLoop:
        """Parse a ``faults:`` entry (``{crashloop: {...}}``); raises ``ValueError`` naming the bad field."""
        body = spec.get(FAULT_TYPE)
        if not isinstance(body, Mapping):
            raise ValueError("crashloop must be a mapping such as {namespace: sre, workload: report-worker}")
        return cls._from_body(body)

    @classmethod
    def _from_body(cls, spec: Mapping[str, Any]) -> CrashLoop:
        unknown = sorted(set(spec) - _FIELDS)
        if unknown:
            raise ValueError(f"unknown crashloop field {unknown[0]!r} (known: {', '.join(sorted(_FIELDS))})")
        workload = str(spec.get("workload", ""))
        namespace, _, name = workload.rpartition("/")
        namespace = str(spec.get("namespace") or namespace)
        if not (namespace and name):
            raise ValueError("crashloop needs namespace and workload (or workload: <namespace>/<name>)")
        exit_code = spec.get("exitCode", 1)
        if not isinstance(exit_code, int) or not 1 <= exit_code <= 255:
            raise ValueError("crashloop exitCode must be an integer from 1 to 255")
        container = spec.get("container")
        return cls(namespace, name, str(container) if container else None, exit_code, str(spec.get("log", "")))

    def outcome(self) -> ContainerOutcome:
        log = self.log or f"Error: {self.workload} failed to start (exit code {self.exit_code})\n"
        return ContainerOutcome(ContainerState.FAILED, exit_code=self.exit_code, reason="Error", log=log, ready=False)


def is_crashloop(spec: Mapping[str, Any]) -> bool:
    return FAULT_TYPE in spec


def workload_of(store: Store, pod: Obj) -> str:
    """The name of the workload a pod belongs to: its Deployment, StatefulSet, DaemonSet or Job (or itself)."""
    ref = controller_ref(pod)
    if ref is None:
        return str(pod["metadata"]["name"])
    if (ref.get("apiVersion"), ref.get("kind")) == REPLICA_SET:
        rs = store.peek(*REPLICA_SET, str(pod["metadata"].get("namespace", "")), str(ref.get("name")))
        parent = controller_ref(rs) if rs is not None else None
        if parent is not None:
            return str(parent.get("name"))
    return str(ref.get("name"))


class CrashLoopRuntime:
    """A ``PodRuntime`` that makes the faulted workloads' containers crash and defers to ``inner`` otherwise."""

    def __init__(self, inner: PodRuntime) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self._faults: list[CrashLoop] = []

    def add(self, fault: CrashLoop) -> None:
        with self._lock:
            if fault not in self._faults:
                self._faults.append(fault)

    def remove(self, namespace: str, workload: str) -> bool:
        with self._lock:
            before = len(self._faults)
            self._faults = [f for f in self._faults if (f.namespace, f.workload) != (namespace, workload)]
            return len(self._faults) != before

    @property
    def faults(self) -> list[CrashLoop]:
        with self._lock:
            return list(self._faults)

    def run_init_container(self, store: Store, pod: Obj, container: Obj) -> ContainerOutcome:
        return self.inner.run_init_container(store, pod, container)

    def run_container(self, store: Store, pod: Obj, container: Obj) -> ContainerOutcome:
        fault = self._match(store, pod, container)
        if fault is not None:
            return fault.outcome()
        return self.inner.run_container(store, pod, container)

    def _match(self, store: Store, pod: Obj, container: Obj) -> CrashLoop | None:
        namespace = str(pod["metadata"].get("namespace", ""))
        candidates = [f for f in self.faults if f.namespace == namespace]
        if not candidates:
            return None
        workload = workload_of(store, pod)
        names = [str(c.get("name")) for c in (pod.get("spec") or {}).get("containers") or []]
        first = next((n for n in names if n not in _PROXIES), "")
        for fault in candidates:
            target = fault.container or first
            if fault.workload == workload and container.get("name") == target:
                return fault
        return None


class FaultTarget(Protocol):
    """What applies crash loops to running pods (the ``ControllerManager``)."""

    def inject_fault(self, spec: Mapping[str, Any]) -> bool: ...

    def remove_fault(self, spec: Mapping[str, Any]) -> bool: ...


class CrashLoopFaults:
    """The ``FaultHandler`` for ``crashloop`` faults; ``target`` is the running controllers, if any."""

    shapes = frozenset({FAULT_TYPE})

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._active: dict[str, Mapping[str, Any]] = {}
        self._target: FaultTarget | None = None

    def attach(self, target: FaultTarget | None) -> None:
        """Apply the active crash loops through ``target`` from now on (None: the controllers stopped).

        A new target is expected to have been built with ``specs()`` already applied.
        """
        with self._lock:
            self._target = target

    def specs(self) -> list[Mapping[str, Any]]:
        """The active crash loops as scenario entries (what a new ``ControllerManager`` is given)."""
        with self._lock:
            return list(self._active.values())

    def activate(self, fault_id: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        try:
            CrashLoop.from_spec(spec)
        except ValueError as exc:
            raise UserInputError(str(exc), hint="crashloop takes namespace, workload, container, exitCode and log") \
                from exc
        with self._lock:
            self._active[fault_id] = dict(spec)
            if self._target is not None:
                self._target.inject_fault(spec)
        return describe(fault_id, spec)

    def deactivate(self, fault_id: str) -> bool:
        with self._lock:
            spec = self._active.pop(fault_id, None)
            if spec is None:
                return False
            if self._target is not None:
                self._target.remove_fault(spec)  # lifts every crash loop of that workload ...
                lifted = CrashLoop.from_spec(spec)
                for other in self._active.values():  # ... so put back the ones still active
                    fault = CrashLoop.from_spec(other)
                    if (fault.namespace, fault.workload) == (lifted.namespace, lifted.workload):
                        self._target.inject_fault(other)
            return True

    def active(self) -> list[dict[str, Any]]:
        with self._lock:
            return [describe(fault_id, spec) for fault_id, spec in self._active.items()]
