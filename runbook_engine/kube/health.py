"""Reading health from manifests: pod status as ``kubectl get pods`` shows it, workload rollout state.

Pure functions over plain ``dict`` objects, shared by the actions (waiting for rollouts, explaining
a timeout) and the checks (readiness, pod health, the run's baseline), which must not import each
other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

#: Workload kinds whose readiness is read from replica counts, not conditions.
WORKLOAD_KINDS: frozenset[str] = frozenset({"Deployment", "StatefulSet", "DaemonSet"})

#: Container waiting reasons that mean a pod is broken rather than starting.
BAD_WAITING_REASONS: frozenset[str] = frozenset(
    {"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError",
     "CreateContainerError", "InvalidImageName", "RunContainerError"}
)


def _status(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("status") or {}


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def condition(obj: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    """The status condition of a type, or None."""
    for cond in _status(obj).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


def pod_ready(pod: Mapping[str, Any]) -> bool:
    cond = condition(pod, "Ready")
    return cond is not None and cond.get("status") == "True"


def pod_restarts(pod: Mapping[str, Any]) -> int:
    """Restarts of all containers, init containers included (native sidecars restart there)."""
    status = _status(pod)
    statuses = (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or [])
    return sum(int(s.get("restartCount") or 0) for s in statuses)


def _init_state(pod: Mapping[str, Any]) -> str:
    """``Init:<reason>`` or ``Init:<done>/<total>`` while init containers have not finished, else ""."""
    statuses = _status(pod).get("initContainerStatuses") or []
    sidecars = {c.get("name") for c in _spec(pod).get("initContainers") or [] if c.get("restartPolicy") == "Always"}
    for done, st in enumerate(statuses):
        state = st.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting")
        if terminated and int(terminated.get("exitCode") or 0) == 0:
            continue
        if st.get("name") in sidecars and (state.get("running") or st.get("started")):
            continue
        if terminated:
            return f"Init:{terminated.get('reason') or 'ExitCode:' + str(terminated.get('exitCode'))}"
        if waiting and waiting.get("reason") not in (None, "", "PodInitializing"):
            return f"Init:{waiting['reason']}"
        return f"Init:{done}/{len(statuses)}"
    return ""


def _container_reason(pod: Mapping[str, Any]) -> str:
    for st in _status(pod).get("containerStatuses") or []:
        state = st.get("state") or {}
        waiting, terminated = state.get("waiting"), state.get("terminated")
        if waiting and waiting.get("reason"):
            return str(waiting["reason"])
        if terminated and terminated.get("reason"):
            return str(terminated["reason"])
    return ""


def pod_status_text(pod: Mapping[str, Any]) -> str:
    """The STATUS column of ``kubectl get pods``: Running, CrashLoopBackOff, Init:0/1, Completed…"""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    init = _init_state(pod)
    if init:
        return init
    return _container_reason(pod) or str(_status(pod).get("reason") or _status(pod).get("phase") or "Unknown")


def pod_problem(pod: Mapping[str, Any]) -> str:
    """Why a pod is broken (CrashLoopBackOff, Init:CrashLoopBackOff, Init:0/2, Failed…), or "" if it is not.

    Transient states (Pending, ContainerCreating, Running but not Ready yet) are not *problems*
    here; readiness is judged separately.
    """
    text = pod_status_text(pod)
    if text.startswith("Init:") or text in BAD_WAITING_REASONS:
        return text
    if _status(pod).get("phase") in ("Failed", "Unknown") or text == "Error":
        return text
    return ""


def pod_blocker(pod: Mapping[str, Any]) -> str:
    """What keeps a pod from running: its problem (see ``pod_problem``), or why it cannot be scheduled."""
    problem = pod_problem(pod)
    if problem:
        return problem
    scheduled = condition(pod, "PodScheduled")
    if scheduled is not None and scheduled.get("status") == "False":
        detail = scheduled.get("message") or ""
        return f"{scheduled.get('reason') or 'Unschedulable'}" + (f": {detail}" if detail else "")
    return ""


def pod_completed(pod: Mapping[str, Any]) -> bool:
    return _status(pod).get("phase") == "Succeeded"


@dataclass(frozen=True)
class RolloutState:
    """Whether a workload's rollout is complete, and if not, what it is waiting for."""

    done: bool
    detail: str


def rollout_state(workload: Mapping[str, Any]) -> RolloutState:
    """The rollout state of a Deployment, StatefulSet or DaemonSet, as ``kubectl rollout status`` judges it."""
    meta, status = workload.get("metadata") or {}, _status(workload)
    generation = int(meta.get("generation") or 0)
    observed = int(status.get("observedGeneration") or 0)
    if observed < generation:
        return RolloutState(False, f"waiting for the controller to observe generation {generation}")
    kind = workload.get("kind")
    if kind == "DaemonSet":
        return _daemonset_state(status)
    return _replicas_state(str(kind), _spec(workload), status)


def _count(status: Mapping[str, Any], key: str) -> int:
    return int(status.get(key) or 0)


def _replicas_state(kind: str, spec: Mapping[str, Any], status: Mapping[str, Any]) -> RolloutState:
    want = 1 if spec.get("replicas") is None else int(spec["replicas"])
    updated, ready = _count(status, "updatedReplicas"), _count(status, "readyReplicas")
    total = _count(status, "replicas")
    if updated < want:
        return RolloutState(False, f"{updated} of {want} replicas updated")
    if kind == "Deployment" and total > updated:
        return RolloutState(False, f"{total - updated} old replicas pending termination")
    if ready < want:
        return RolloutState(False, f"{ready} of {want} updated replicas ready")
    if kind == "StatefulSet" and status.get("currentRevision") != status.get("updateRevision"):
        return RolloutState(False, f"revision {status.get('updateRevision')} not yet current")
    return RolloutState(True, f"{ready}/{want} replicas updated and ready")


def _daemonset_state(status: Mapping[str, Any]) -> RolloutState:
    want = _count(status, "desiredNumberScheduled")
    updated, ready = _count(status, "updatedNumberScheduled"), _count(status, "numberReady")
    if updated < want:
        return RolloutState(False, f"{updated} of {want} pods updated")
    if ready < want:
        return RolloutState(False, f"{ready} of {want} updated pods ready")
    return RolloutState(True, f"{ready}/{want} pods updated and ready")


def controller_of(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(kind, name)`` of the controlling owner reference, or None."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    chosen = next((r for r in refs if r.get("controller")), refs[0] if refs else None)
    if chosen is None:
        return None
    return str(chosen.get("kind")), str(chosen.get("name"))
