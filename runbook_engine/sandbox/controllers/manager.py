"""The controller manager: one background thread that reconciles what store events and timers ask for.

Store listeners (which run under the store's lock) only update the index and queue keys; the worker
thread takes keys off a de-duplicated FIFO queue and hands each to the controller for its kind.

Keys queued because *another* object changed — an owner whose pod changed, the Services selecting a
pod — only recompute status (replica counts, endpoints). They wait in a second queue that is served
when the first one is empty, or once they have waited ``_FOLLOW_UP_DELAY``: while a platform starts,
the many changes of a workload's pods then fold into one status write, as a real controller's
rate-limited work queue folds them.
Controllers return when they want to look again (``Wake``): transitional wake-ups — a pod about to
start or become ready, a first restart — keep ``settle()`` waiting; steady ones (periodic probes,
crash-loop back-off) do not, so a platform with a crash-looping workload still settles.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from runbook_engine.errors import ConflictError, NotFoundError
from runbook_engine.sandbox.controllers.context import Context, Timing
from runbook_engine.sandbox.controllers.crashloop import CrashLoop, CrashLoopRuntime, is_crashloop
from runbook_engine.sandbox.controllers.daemonset import DaemonSetController
from runbook_engine.sandbox.controllers.deployment import DeploymentController
from runbook_engine.sandbox.controllers.endpoints import EndpointsController
from runbook_engine.sandbox.controllers.index import KindKey, ObjectIndex
from runbook_engine.sandbox.controllers.job import JobController
from runbook_engine.sandbox.controllers.kubelet import Kubelet
from runbook_engine.sandbox.controllers.namespace import NamespaceController
from runbook_engine.sandbox.controllers.replicaset import ReplicaSetController
from runbook_engine.sandbox.controllers.statefulset import StatefulSetController
from runbook_engine.sandbox.controllers.util import (
    DAEMON_SET,
    DEPLOYMENT,
    ENDPOINTS,
    JOB,
    NAMESPACE,
    NODE,
    POD,
    REPLICA_SET,
    SERVICE,
    SERVICE_ACCOUNT,
    STATEFUL_SET,
    Wake,
    controller_uid,
    gc_paused,
    key_of,
    labels_of,
)
from runbook_engine.sandbox.runtime import PodRuntime
from runbook_engine.sandbox.store import Key, Obj, Store

log = logging.getLogger(__name__)

_BATCH = 500  # keys per pass before timers are looked at again
_FOLLOW_UP_DELAY = 1.0  # seconds a follow-up key waits at most while direct work is pending


class Controller(Protocol):
    def reconcile(self, key: Key) -> Wake | None:
        ...


class ControllerManager:
    """Runs the sandbox's controllers against a ``Store``, asking ``runtime`` what containers do.

    ``faults`` are scenario fault specs; the manager applies the ``crashloop`` ones and ignores the
    rest (API and mesh faults belong to the server and the physics). ``seed`` makes generated pod
    names reproducible.
    """

    def __init__(
        self,
        store: Store,
        runtime: PodRuntime,
        *,
        timing: Timing | None = None,
        faults: Sequence[Mapping[str, Any]] = (),
        seed: int | None = None,
    ) -> None:
        self.store = store
        self.runtime = CrashLoopRuntime(runtime)
        self.ctx = Context(store, ObjectIndex(), self.runtime, timing or Timing(), random.Random(seed))
        self.kubelet = Kubelet(self.ctx)
        self._controllers: dict[KindKey, Controller] = {
            POD: self.kubelet,
            REPLICA_SET: ReplicaSetController(self.ctx),
            DEPLOYMENT: DeploymentController(self.ctx),
            STATEFUL_SET: StatefulSetController(self.ctx),
            DAEMON_SET: DaemonSetController(self.ctx),
            JOB: JobController(self.ctx),
            SERVICE: EndpointsController(self.ctx),
            NAMESPACE: NamespaceController(self.ctx),
        }
        self._cond = threading.Condition()
        self._queue: deque[Key] = deque()  # FIFO of keys to reconcile ...
        self._queued: set[Key] = set()  # ... without duplicates
        self._follow: deque[Key] = deque()  # FIFO of follow-up keys (status only) ...
        self._follow_since: dict[Key, float] = {}  # ... and when each was queued (absent: no longer queued)
        self._timers: list[tuple[float, int, Key]] = []
        self._due: dict[Key, tuple[float, int, bool]] = {}
        self._seq = itertools.count()
        self._busy = False
        self._current: Key | None = None  # the key being reconciled, and by which thread
        self._worker_ident = 0
        self._synced = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._attach()
        for spec in faults:
            self.inject_fault(spec)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Reconcile in a background thread until ``stop()``."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._attach()
        if not self._synced:
            self.resync()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="sandbox-controllers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the background thread and stop listening to the store (``start()`` resyncs)."""
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._on_event in self.store.listeners:
            self.store.listeners.remove(self._on_event)
        self._synced = False

    def settle(self, timeout: float = 5.0) -> None:
        """Process until nothing is pending and every pod is in a steady state.

        Drives the controllers itself when the background thread is not running. Raises
        ``TimeoutError`` when the cluster is still changing after ``timeout`` seconds.
        """
        self._attach()
        if not self._synced:
            self.resync()
        with gc_paused():
            self._settle(timeout)

    def _settle(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._quiescent():
            if time.monotonic() > deadline:
                raise TimeoutError(f"sandbox controllers did not settle in {timeout:g}s: {self._pending()}")
            if self._thread is not None and self._thread.is_alive():
                with self._cond:
                    self._cond.wait(0.01)
            elif not self._drain(None):
                time.sleep(min(max(self._next_due() - time.monotonic(), 0.0), 0.05))

    def resync(self) -> None:
        """Rebuild the index from the store and queue every object the controllers own."""
        with self.store.lock:
            objects = self.store.scan_all()  # read-only; the index hands out copy-on-write views
            self.ctx.index.rebuild(objects)
        self.ctx.invalidate_nodes()
        for obj in objects:
            ip = (obj.get("status") or {}).get("podIP")
            if obj.get("kind") == "Pod" and ip:
                self.ctx.ips.observe(str(ip))
        self._enqueue([key_of(o) for o in objects if (o.get("apiVersion"), o.get("kind")) in self._controllers])
        self._synced = True

    # -- faults ------------------------------------------------------------------------------
    def inject_fault(self, spec: Mapping[str, Any]) -> bool:
        """Apply a ``crashloop`` fault spec (``ValueError`` if malformed); other types return False."""
        if not is_crashloop(spec):
            return False
        fault = CrashLoop.from_spec(spec)
        self.runtime.add(fault)
        self._requeue_workload_pods(fault.namespace)
        return True

    def remove_fault(self, spec: Mapping[str, Any]) -> bool:
        """Lift a ``crashloop`` fault: the workload's containers start normally at their next restart."""
        if not is_crashloop(spec):
            return False
        fault = CrashLoop.from_spec(spec)
        return self.runtime.remove(fault.namespace, fault.workload)

    def _requeue_workload_pods(self, namespace: str) -> None:
        self._enqueue([(*POD, ns, name) for ns, name in self.ctx.index.names(POD, namespace)])

    # -- events ------------------------------------------------------------------------------
    def _attach(self) -> None:
        if self._on_event not in self.store.listeners:
            self.store.listeners.append(self._on_event)

    def _on_event(self, event: str, obj: Obj) -> None:
        """Store listener: runs under the store lock, so it only indexes and queues."""
        key = key_of(obj)
        kind = (key[0], key[1])
        old_labels = self.ctx.index.pod_labels(key) if kind == POD else {}
        self.ctx.index.apply(event, obj)
        keys = [key] if kind in self._controllers and not self._own_write(key) else []
        follow_ups: list[Key] = []
        owner = controller_uid(obj)
        owner_key = self.ctx.index.key_for_uid(owner) if owner else None
        if owner_key is not None:
            follow_ups.append(owner_key)
        if kind == POD:
            follow_ups += self._services_of(key, obj, old_labels)
        else:
            keys += self._related(event, kind, key)
        self._enqueue(keys, follow_ups)

    def _own_write(self, key: Key) -> bool:
        """A controller's write to the object it is reconciling needs no second look at that object."""
        return self._current == key and threading.get_ident() == self._worker_ident

    def _services_of(self, key: Key, pod: Obj, old_labels: dict[str, str]) -> list[Key]:
        """The Services selecting a pod, before or after its change (their endpoints may change)."""
        index = self.ctx.index
        services = set(index.services_selecting(key[2], labels_of(pod)))
        if old_labels:
            services.update(index.services_selecting(key[2], old_labels))
        return sorted(services)

    def _related(self, event: str, kind: KindKey, key: Key) -> list[Key]:
        index = self.ctx.index
        if kind == NODE:
            self.ctx.invalidate_nodes()
            return [(*DAEMON_SET, ns, name) for ns, name in index.names(DAEMON_SET)] + index.unscheduled()
        if kind == ENDPOINTS and event == "DELETED":
            return [(*SERVICE, key[2], key[3])]
        if kind == SERVICE_ACCOUNT and event == "DELETED" and key[3] == "default":
            return [(*NAMESPACE, "", key[2])]
        return []

    def _enqueue(self, keys: Sequence[Key], follow_ups: Sequence[Key] = ()) -> None:
        if not keys and not follow_ups:
            return
        with self._cond:
            for key in keys:
                self._push(key)
            now = time.monotonic()
            for key in follow_ups:
                if key not in self._queued and key not in self._follow_since:
                    self._follow_since[key] = now
                    self._follow.append(key)
            self._cond.notify_all()

    def _push(self, key: Key) -> None:
        if key not in self._queued:
            self._follow_since.pop(key, None)  # the direct reconcile covers the follow-up
            self._queued.add(key)
            self._queue.append(key)

    def _pop(self, now: float) -> Key | None:
        """The next key: an overdue follow-up, else direct work, else any follow-up (under ``_cond``)."""
        while self._follow and self._follow[0] not in self._follow_since:
            self._follow.popleft()  # moved to the direct queue meanwhile
        if self._follow and (not self._queue or now - self._follow_since[self._follow[0]] >= _FOLLOW_UP_DELAY):
            key = self._follow.popleft()
            del self._follow_since[key]
            return key
        if self._queue:
            key = self._queue.popleft()
            self._queued.discard(key)
            return key
        return None

    # -- processing --------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stopping.is_set():
            if self._drain(_BATCH):
                continue
            with self._cond:
                self._cond.notify_all()  # wake settle() waiters: the queue just ran dry
                if not self._queue and not self._follow_since and not self._stopping.is_set():
                    self._cond.wait(min(max(self._next_due() - time.monotonic(), 0.001), 0.5))

    def _drain(self, limit: int | None) -> int:
        """Reconcile queued and due keys (at most ``limit``); returns how many were processed."""
        done = 0
        while limit is None or done < limit:
            with self._cond:
                now = time.monotonic()
                self._promote_due(now)
                key = self._pop(now)
                if key is None:
                    return done
                self._busy = True
                self._current, self._worker_ident = key, threading.get_ident()
            try:
                wake = self._reconcile(key)
            finally:
                with self._cond:
                    self._busy = False
                    self._current = None
            self._schedule(key, wake)
            done += 1
        return done

    def _reconcile(self, key: Key) -> Wake | None:
        controller = self._controllers[(key[0], key[1])]
        try:
            return controller.reconcile(key)
        except (ConflictError, NotFoundError):  # raced with a client write: look again shortly
            return Wake(self.ctx.timing.step, True)
        except Exception:  # a malformed object must not stop every other controller
            log.exception("reconciling %s %s/%s failed", key[1], key[2], key[3])
            return Wake(self.ctx.timing.probe_period, False)

    def _schedule(self, key: Key, wake: Wake | None) -> None:
        with self._cond:
            if wake is None:
                self._due.pop(key, None)
                return
            due, seq = time.monotonic() + wake.after, next(self._seq)
            self._due[key] = (due, seq, wake.transitional)
            heapq.heappush(self._timers, (due, seq, key))
            self._cond.notify_all()

    def _promote_due(self, now: float) -> None:
        while self._timers and self._timers[0][0] <= now:
            _, seq, key = heapq.heappop(self._timers)
            current = self._due.get(key)
            if current is not None and current[1] == seq:
                del self._due[key]
                self._push(key)

    def _next_due(self) -> float:
        with self._cond:
            return self._timers[0][0] if self._timers else time.monotonic() + 0.5

    def _quiescent(self) -> bool:
        with self._cond:
            if self._queue or self._follow_since or self._busy:
                return False
            return not any(transitional for _, _, transitional in self._due.values())

    def _pending(self) -> str:
        with self._cond:
            settling = sorted(k for k, (_, _, t) in self._due.items() if t)
        queued = len(self._queue) + len(self._follow_since)
        sample = ", ".join(f"{k[1]} {k[2]}/{k[3]}" for k in settling[:5])
        return f"{queued} queued, {len(settling)} settling ({sample})"
