"""Ambient enrolment: what istio-cni's node agent does when a pod lands on a node.

A pod is enrolled (annotation ``ambient.istio.io/redirection: enabled``) when its namespace or the
pod itself carries ``istio.io/dataplane-mode=ambient``, the pod does not opt out with the pod label
``istio.io/dataplane-mode=none``, it has no sidecar, and a ztunnel runs on its node
(https://istio.io/latest/docs/ambient/usage/add-workloads/).

Enrolment happens at two moments, as in https://istio.io/latest/docs/ambient/architecture/traffic-redirection/:

- A new pod is enrolled *before its containers start*: istio-cni's chained CNI plugin runs when the
  container runtime sets up the pod's network and hands the pod to the node agent, which installs
  the redirection first. Here that is ``admit`` (a ``Store.admission`` hook, for a pod created
  with its node already known) and ``enrol_at_start`` (called by the pod runtime before it runs a
  container of a pod that has not started, once the scheduler has picked the node).
- A pod already running is enrolled live, without a restart, when its namespace (or the pod) is
  labelled later: the node agent also watches the API server. That is ``AmbientEnroller``'s
  background reconcile, which also un-enrols pods whose label is removed.

A pod enrolled while ztunnel ran keeps its redirection when ztunnel disappears — and loses traffic.
"""

from __future__ import annotations

import threading

from runbook_engine.errors import ConflictError, NotFoundError
from runbook_engine.sandbox.physics import objects as o
from runbook_engine.sandbox.physics.control_plane import ControlPlane
from runbook_engine.sandbox.store import Store, json_copy


def wants_ambient(pod: o.Obj, namespace: o.Obj | None) -> bool:
    pod_mode = o.labels(pod).get(o.DATAPLANE_MODE_LABEL)
    if pod_mode is not None:
        return pod_mode == "ambient"
    return o.labels(namespace).get(o.DATAPLANE_MODE_LABEL) == "ambient"


def should_enrol(pod: o.Obj, namespace: o.Obj | None, cp: ControlPlane) -> bool | None:
    """True to enrol, False to un-enrol, None to leave the pod as it is (no ztunnel to ask)."""
    if o.namespace_of(pod) in o.SYSTEM_NAMESPACES | {o.ISTIO_NAMESPACE} or o.spec(pod).get("hostNetwork"):
        return False
    if o.has_container(pod, o.ISTIO_PROXY) or not wants_ambient(pod, namespace):
        return False
    if not cp.ztunnel_on(o.node_of(pod)):
        return None
    return True


def is_enrolled(pod: o.Obj) -> bool:
    return o.annotations_of(pod).get(o.AMBIENT_REDIRECTION) == "enabled"


def set_redirection(pod: o.Obj, enrol: bool) -> None:
    """Add or remove the redirection annotation on ``pod`` itself."""
    ann = pod.setdefault("metadata", {}).setdefault("annotations", {})
    if enrol:
        ann[o.AMBIENT_REDIRECTION] = "enabled"
    else:
        ann.pop(o.AMBIENT_REDIRECTION, None)


def enrol_new_pod(store: Store, pod: o.Obj, cp: ControlPlane) -> bool:
    """Enrol a pod that is about to start (in place) when the rules say so; says whether it did.

    A pod whose node is not known yet, or whose node runs no ztunnel, is left as it is: the
    background enroller takes it up once a ztunnel runs there.
    """
    if is_enrolled(pod):
        return False
    namespace = store.peek("v1", "Namespace", "", o.namespace_of(pod))
    if should_enrol(pod, namespace, cp) is not True:
        return False
    set_redirection(pod, True)
    return True


def enrol_at_start(store: Store, pod: o.Obj, cp: ControlPlane) -> bool:
    """The CNI ADD: enrol a scheduled pod whose containers have not started yet (in place).

    Called by the pod runtime before it runs a container. A pod that has started (its status has a
    ``startTime``) is left to the background enroller, as the real plugin only runs at sandbox
    creation. The caller's copy of the pod carries the annotation into the status write that
    records the containers starting, so no observer sees a started container of an unenrolled pod.
    """
    if (pod.get("status") or {}).get("startTime"):
        return False
    return enrol_new_pod(store, pod, cp)


class AmbientEnroller:
    """Keeps the redirection annotation of every pod in line with the rules above.

    ``admit`` enrols pods created onto a known node. ``on_event`` is a ``Store`` listener that only
    marks work; ``reconcile`` does it for pods already stored (enrolled live, or un-enrolled), either
    from the background thread (``start``/``stop``) or synchronously.
    """

    def __init__(self, store: Store, control_plane: ControlPlane) -> None:
        self.store = store
        self.cp = control_plane
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def admit(self, store: Store, obj: o.Obj) -> None:
        """``Store.admission`` hook: a pod created onto a known node is enrolled as it is created.

        Registered after the sidecar injectors, so a pod that just got a sidecar stays out.
        """
        if obj.get("apiVersion") == "v1" and obj.get("kind") == "Pod" and o.node_of(obj):
            enrol_new_pod(store, obj, self.cp)

    def on_event(self, event: str, obj: o.Obj) -> None:
        """Mark work only for events that can change an enrolment (cheap: runs on every store write)."""
        if obj.get("apiVersion") != "v1" or obj.get("kind") not in ("Namespace", "Pod"):
            return
        if obj["kind"] == "Namespace" or self._concerns_ambient(obj):
            self._dirty.set()

    def _concerns_ambient(self, pod: o.Obj) -> bool:
        if o.DATAPLANE_MODE_LABEL in o.labels(pod) or o.AMBIENT_REDIRECTION in o.annotations_of(pod):
            return True
        if o.namespace_of(pod) == o.ISTIO_NAMESPACE:
            return True  # ztunnel pods come and go
        namespace = self.store.peek("v1", "Namespace", "", o.namespace_of(pod))
        return wants_ambient(pod, namespace)

    def reconcile(self) -> int:
        """Enrol or un-enrol pods as needed; returns how many pods changed."""
        namespaces = {o.name_of(ns): ns for ns in self.store.scan("v1", "Namespace")}
        changed = 0
        for pod in self.store.scan("v1", "Pod"):  # read-only: ``_set`` writes a copy
            decision = should_enrol(pod, namespaces.get(o.namespace_of(pod)), self.cp)
            if decision is None or decision == is_enrolled(pod):
                continue
            changed += self._set(pod, decision)
        return changed

    def _set(self, stored: o.Obj, enrol: bool) -> int:
        pod = json_copy(stored)
        set_redirection(pod, enrol)
        try:
            self.store.update(pod, expect_rv=str(pod["metadata"].get("resourceVersion") or "") or None,
                              copy_result=False)
        except (ConflictError, NotFoundError):
            self._dirty.set()  # the pod moved on; look again on the next round
            return 0
        return 1

    def start(self) -> None:
        if self._thread is None:
            self._dirty.set()
            self._thread = threading.Thread(target=self._loop, name="ambient-enroller", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._dirty.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._dirty.wait()
            if self._stop.is_set():
                return
            self._dirty.clear()
            self.reconcile()
            self._stop.wait(0.05)  # let a burst of events settle into one pass
