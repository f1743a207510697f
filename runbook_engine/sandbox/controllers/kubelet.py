"""Pod lifecycle: the scheduler and the kubelet of the sandbox, on a fast clock.

A pod is scheduled onto a Node (round-robin over ready nodes matching its ``nodeSelector``, or its
``spec.nodeName``), then started: init containers in order, each asked of the ``PodRuntime`` (one with
``restartPolicy: Always`` is a native sidecar that keeps running), then the containers. Status is
written the way a real kubelet writes it — ``initContainerStatuses`` / ``containerStatuses`` with
``state``, ``lastState``, ``restartCount``, ``ready``, ``started``; the conditions
``PodReadyToStartContainers``, ``Initialized``, ``Ready``, ``ContainersReady``, ``PodScheduled`` — so
``kubectl get pods`` shows ``Init:0/2``, ``CrashLoopBackOff``, ``Running`` and ``Completed`` as it would.

Running containers are asked again every probe period: the answer's ``ready`` is the readiness probe
and a ``FAILED`` answer is a failed liveness probe (the container restarts). Crashed containers restart
per the pod's ``restartPolicy`` with doubling back-off and a rising ``restartCount``.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from runbook_engine.errors import NotFoundError
from runbook_engine.sandbox.controllers.context import Context, NodeInfo
from runbook_engine.sandbox.controllers.util import (
    TERMINAL_PHASES,
    PodPhase,
    Wake,
    condition,
    meta_of,
    pod_phase,
    write_status,
)
from runbook_engine.sandbox.runtime import ContainerOutcome, ContainerState
from runbook_engine.sandbox.store import Key, Obj, now_rfc3339


class RestartPolicy(StrEnum):
    ALWAYS = "Always"
    ON_FAILURE = "OnFailure"
    NEVER = "Never"


@dataclass
class _Backoff:
    until: float
    delay: float
    first: bool  # the first restart is part of settling; later ones are the steady crash loop


@dataclass
class _PodState:
    uid: str
    due: float = 0.0
    settling: bool = True  # the pending wake-up is part of starting, not a steady probe
    probe_at: float = 0.0
    first_ready: dict[str, bool] = field(default_factory=dict)
    backoff: dict[str, _Backoff] = field(default_factory=dict)


@dataclass(frozen=True)
class _Slot:
    """One container being synced: its spec, previous status and role."""

    container: dict[str, Any]
    old: dict[str, Any] | None
    init: bool

    @property
    def name(self) -> str:
        return str(self.container["name"])

    @property
    def sidecar(self) -> bool:
        return self.init and self.container.get("restartPolicy") == "Always"


class Kubelet:
    """Schedules, starts, probes and restarts pods; one instance serves every node."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._states: dict[Key, _PodState] = {}
        self._rr = 0
        self._nodes_seen: list[NodeInfo] | None = None
        self._by_selector: dict[frozenset[tuple[str, str]], list[NodeInfo]] = {}

    def reconcile(self, key: Key) -> Wake | None:
        pod = self.ctx.get(key)
        if pod is None or pod_phase(pod) in TERMINAL_PHASES:
            self._states.pop(key, None)
            return None
        st = self._state(key, pod)
        now = time.monotonic()
        if meta_of(pod).get("deletionTimestamp"):
            self._terminate(key)
            return None
        if st.due > now:
            return Wake(st.due - now, st.settling)
        if st.due == 0.0 and not (pod.get("status") or {}).get("startTime"):
            st.due, st.settling = now + self.ctx.timing.step, True  # a new pod starts one step later
            return Wake(self.ctx.timing.step, True)
        if not (pod.get("spec") or {}).get("nodeName") and not self._schedule(pod):
            return None  # retried when a Node changes
        if now >= st.probe_at and self._probes_unchanged(pod, st):
            return self._next_wake(pod, st, now, True)
        return self._sync(pod, st, now)

    def _probes_unchanged(self, pod: Obj, st: _PodState) -> bool:
        """A periodic probe of a pod whose containers all run, answered exactly as last time.

        Then the status the full sync would write is the one stored, so it is not rebuilt; most
        probes of a settled platform end here.
        """
        status = pod.get("status") or {}
        if st.first_ready or st.backoff or not status.get("startTime"):
            return False
        spec = pod["spec"]
        init_statuses = {s["name"]: s for s in status.get("initContainerStatuses") or []}
        main_statuses = {s["name"]: s for s in status.get("containerStatuses") or []}
        slots = []
        for c in spec.get("initContainers") or []:
            slot = _Slot(c, init_statuses.get(c["name"]), init=True)
            if slot.old is None or not (slot.sidecar or _init_done(slot, slot.old)):
                return False
            if slot.sidecar:
                slots.append(slot)
        slots += [_Slot(c, main_statuses.get(c["name"]), init=False) for c in spec.get("containers") or []]
        for slot in slots:
            if slot.old is None or "running" not in (slot.old.get("state") or {}):
                return False
            outcome = self._ask(pod, slot)
            if outcome.state is not ContainerState.RUNNING or bool(outcome.ready) != bool(slot.old.get("ready")):
                return False
        return True

    def _state(self, key: Key, pod: Obj) -> _PodState:
        uid = str(meta_of(pod).get("uid", ""))
        st = self._states.get(key)
        if st is None or st.uid != uid:
            st = self._states[key] = _PodState(uid)
        return st

    def _terminate(self, key: Key) -> None:
        """A pod marked for graceful deletion: its containers stop at once on the fast clock."""
        self._states.pop(key, None)
        with contextlib.suppress(NotFoundError):
            self.ctx.store.delete(*key)

    # -- scheduling --------------------------------------------------------------------------
    def _schedule(self, pod: Obj) -> bool:
        """Bind the pod to a node (in place; written with its first status), or mark it Unschedulable."""
        node = self._pick_node(pod)
        status = dict(pod.get("status") or {})
        previous = status.get("conditions")
        if node is None:
            total = len(self.ctx.nodes())
            message = f"0/{total} nodes are available: {total} node(s) didn't match Pod's node affinity/selector."
            unschedulable = condition("PodScheduled", False, "Unschedulable", message, previous)
            status.update(phase="Pending", conditions=[unschedulable])
            write_status(self.ctx.store, pod, status)
            return False
        pod["spec"]["nodeName"] = node.name
        status.update(phase="Pending", conditions=[condition("PodScheduled", True, "", "", previous)])
        pod["status"] = status
        return True

    def _pick_node(self, pod: Obj) -> NodeInfo | None:
        selector = (pod.get("spec") or {}).get("nodeSelector") or {}
        nodes = self._eligible(frozenset((str(k), str(v)) for k, v in selector.items()))
        if not nodes:
            return None
        self._rr += 1
        return nodes[self._rr % len(nodes)]

    def _eligible(self, selector: frozenset[tuple[str, str]]) -> list[NodeInfo]:
        """Ready, schedulable nodes matching a node selector; remembered until a Node changes."""
        current = self.ctx.nodes()
        if current is not self._nodes_seen:
            self._nodes_seen, self._by_selector = current, {}
        found = self._by_selector.get(selector)
        if found is None:
            found = self._by_selector[selector] = [
                n for n in current if n.ready and n.schedulable and all(n.labels.get(k) == v for k, v in selector)
            ]
        return found

    # -- the sync loop -----------------------------------------------------------------------
    def _sync(self, pod: Obj, st: _PodState, now: float) -> Wake | None:
        status = dict(pod.get("status") or {})
        probing = now >= st.probe_at
        if not status.get("startTime"):
            self._admit(pod, status)
        old_init = {s["name"]: s for s in status.get("initContainerStatuses") or []}
        old_main = {s["name"]: s for s in status.get("containerStatuses") or []}
        spec = pod["spec"]
        initialized, init_statuses = True, []
        for c in spec.get("initContainers") or []:
            slot = _Slot(c, old_init.get(c["name"]), init=True)
            if not initialized:
                init_statuses.append(_waiting(slot, "PodInitializing"))
                continue
            new = self._step(pod, slot, st, now, probing)
            init_statuses.append(new)
            initialized = _init_done(slot, new)
        main = [
            self._step(pod, _Slot(c, old_main.get(c["name"]), init=False), st, now, probing)
            if initialized
            else _waiting(_Slot(c, old_main.get(c["name"]), init=False), "PodInitializing")
            for c in spec.get("containers") or []
        ]
        if init_statuses:
            status["initContainerStatuses"] = init_statuses
        status["containerStatuses"] = main
        self._finish(pod, status, initialized)
        write_status(self.ctx.store, pod, status)
        return self._next_wake(pod, st, now, probing)

    def _admit(self, pod: Obj, status: dict[str, Any]) -> None:
        node = self.ctx.node(str(pod["spec"]["nodeName"]))
        host_ip = node.internal_ip if node else ""
        pod_ip = host_ip if pod["spec"].get("hostNetwork") else self.ctx.ips.allocate()
        status.update(
            startTime=now_rfc3339(),
            hostIP=host_ip,
            hostIPs=[{"ip": host_ip}] if host_ip else [],
            podIP=pod_ip,
            podIPs=[{"ip": pod_ip}],
        )

    def _step(self, pod: Obj, slot: _Slot, st: _PodState, now: float, probing: bool) -> dict[str, Any]:
        """Advance one container: start it, probe it, or restart it when its back-off has passed."""
        old = slot.old
        state = (old or {}).get("state") or {}
        if old is None or _waiting_reason(old) in ("PodInitializing", "ContainerCreating"):
            return self._run(pod, slot, st, now, restarts=int((old or {}).get("restartCount", 0)))
        if "running" in state:
            return self._probe(pod, slot, st, now) if probing else dict(old)
        if not self._restarts(pod, slot, old):
            return dict(old)
        backoff = st.backoff.get(slot.name)
        if backoff is not None and backoff.until > now:
            return dict(old)
        return self._run(pod, slot, st, now, restarts=int(old.get("restartCount", 0)) + 1)

    def _run(self, pod: Obj, slot: _Slot, st: _PodState, now: float, restarts: int) -> dict[str, Any]:
        """Start (or restart) a container and record what the runtime says it does."""
        outcome = self._ask(pod, slot)
        self.ctx.store.set_pod_log(pod["metadata"]["namespace"], pod["metadata"]["name"], slot.name, outcome.log)
        return self._apply(pod, slot, st, now, restarts, outcome)

    def _apply(
        self, pod: Obj, slot: _Slot, st: _PodState, now: float, restarts: int, outcome: ContainerOutcome
    ) -> dict[str, Any]:
        last = _last_terminated(slot.old)
        if outcome.state in (ContainerState.RUNNING, ContainerState.HANGING):
            st.first_ready[slot.name] = outcome.ready and outcome.state is ContainerState.RUNNING
            return _status(pod, slot, restarts, {"running": {"startedAt": now_rfc3339()}}, last, started=True)
        terminated = _terminated(outcome)
        if not self._restarts(pod, slot, {"state": {"terminated": terminated}}):
            return _status(pod, slot, restarts, {"terminated": terminated}, last, started=False)
        self._back_off(st, slot.name, now, first=restarts == 0)
        if restarts == 0:  # the first crash shows as "Error" until the kubelet restarts it
            return _status(pod, slot, restarts, {"terminated": terminated}, last, started=False)
        meta = pod["metadata"]
        waiting = {
            "reason": "CrashLoopBackOff",
            "message": f"back-off {_kubelet_backoff(restarts)} restarting failed container={slot.name} "
            f"pod={meta['name']}_{meta['namespace']}({meta.get('uid', '')})",
        }
        return _status(pod, slot, restarts, {"waiting": waiting}, {"terminated": terminated}, started=False)

    def _probe(self, pod: Obj, slot: _Slot, st: _PodState, now: float) -> dict[str, Any]:
        old = dict(slot.old or {})
        if slot.name in st.first_ready:
            old["ready"] = st.first_ready.pop(slot.name)
            return old
        outcome = self._ask(pod, slot)
        if outcome.state is ContainerState.FAILED or (
            outcome.state is ContainerState.COMPLETED and (slot.sidecar or not slot.init)
        ):  # a failed liveness probe, or the process exited
            return self._apply(pod, slot, st, now, int(old.get("restartCount", 0)), outcome)
        if slot.init and not slot.sidecar:
            if outcome.state is ContainerState.COMPLETED:
                return _status(pod, slot, int(old.get("restartCount", 0)), {"terminated": _terminated(outcome)},
                               _last_terminated(slot.old), started=False)
            return old
        old["ready"] = outcome.ready and outcome.state is ContainerState.RUNNING
        return old

    def _ask(self, pod: Obj, slot: _Slot) -> ContainerOutcome:
        if slot.init:
            return self.ctx.runtime.run_init_container(self.ctx.store, pod, slot.container)
        return self.ctx.runtime.run_container(self.ctx.store, pod, slot.container)

    def _back_off(self, st: _PodState, name: str, now: float, *, first: bool) -> None:
        timing = self.ctx.timing
        previous = st.backoff.get(name)
        if first:
            delay = timing.step
        elif previous is None or previous.first:
            delay = timing.backoff_base
        else:
            delay = min(previous.delay * 2, timing.backoff_cap)
        st.backoff[name] = _Backoff(now + delay, delay, first)

    def _restarts(self, pod: Obj, slot: _Slot, status: dict[str, Any]) -> bool:
        """Whether the kubelet restarts this exited container under the pod's restart policy."""
        if slot.sidecar:
            return True
        terminated = (status.get("state") or {}).get("terminated") or (status.get("lastState") or {}).get("terminated")
        exit_code = int((terminated or {}).get("exitCode", 0))
        policy = RestartPolicy(pod["spec"].get("restartPolicy", "Always"))
        if slot.init:
            return exit_code != 0 and policy is not RestartPolicy.NEVER
        return policy is RestartPolicy.ALWAYS or (policy is RestartPolicy.ON_FAILURE and exit_code != 0)

    # -- pod-level status --------------------------------------------------------------------
    def _finish(self, pod: Obj, status: dict[str, Any], initialized: bool) -> None:
        phase = self._phase(pod, status, initialized)
        statuses = list(status.get("containerStatuses") or [])
        sidecars = [
            s for s, c in zip(status.get("initContainerStatuses") or [], pod["spec"].get("initContainers") or [],
                              strict=False)
            if c.get("restartPolicy") == "Always"
        ]
        unready = [s["name"] for s in statuses + sidecars if not s.get("ready")]
        pending_init = [
            s["name"] for s in status.get("initContainerStatuses") or [] if not _init_finished(s, pod)
        ]
        prev = status.get("conditions")
        ready = phase == PodPhase.RUNNING and initialized and not unready
        ready_reason = "PodCompleted" if phase in TERMINAL_PHASES else "ContainersNotReady"
        ready_msg = f"containers with unready status: [{' '.join(unready)}]"
        if ready or phase in TERMINAL_PHASES:
            ready_msg = ""
        init_msg = f"containers with incomplete status: [{' '.join(pending_init)}]" if not initialized else ""
        status["phase"] = phase
        status["conditions"] = [
            condition("PodReadyToStartContainers", phase not in TERMINAL_PHASES, "", "", prev),
            condition("Initialized", initialized, "" if initialized else "ContainersNotInitialized", init_msg, prev),
            condition("Ready", ready, "" if ready else ready_reason, ready_msg, prev),
            condition("ContainersReady", ready, "" if ready else ready_reason, ready_msg, prev),
            condition("PodScheduled", True, "", "", prev),
        ]

    def _phase(self, pod: Obj, status: dict[str, Any], initialized: bool) -> str:
        if any(_failed_for_good(s, pod) for s in status.get("initContainerStatuses") or []):
            return PodPhase.FAILED.value
        if not initialized:
            return PodPhase.PENDING.value
        statuses = status.get("containerStatuses") or []
        finals = [
            s for s, c in zip(statuses, pod["spec"].get("containers") or [], strict=False)
            if "terminated" in (s.get("state") or {})
            and not self._restarts(pod, _Slot(c, s, init=False), s)
        ]
        if statuses and len(finals) == len(statuses):
            failed = any(int(s["state"]["terminated"].get("exitCode", 0)) != 0 for s in finals)
            return PodPhase.FAILED.value if failed else PodPhase.SUCCEEDED.value
        return PodPhase.RUNNING.value

    def _next_wake(self, pod: Obj, st: _PodState, now: float, probed: bool) -> Wake | None:
        if pod_phase(pod) in TERMINAL_PHASES:
            self._states.pop(_key(pod), None)
            return None
        timing = self.ctx.timing
        if st.first_ready:
            st.probe_at = now + timing.step
        elif probed:
            st.probe_at = now + timing.probe_period * (0.75 + self.ctx.rng.random() / 2)
        st.due = min([st.probe_at, *(b.until for b in st.backoff.values() if b.until > now)])
        st.settling = bool(st.first_ready) or any(b.first and b.until > now for b in st.backoff.values())
        return Wake(max(st.due - now, 0.0), st.settling)


# -- container status builders ---------------------------------------------------------------
def _status(
    pod: Obj, slot: _Slot, restarts: int, state: dict[str, Any], last: dict[str, Any], *, started: bool
) -> dict[str, Any]:
    image = str(slot.container.get("image", ""))
    out: dict[str, Any] = {
        "name": slot.name,
        "image": image,
        "imageID": _image_id(image),
        "ready": False,
        "restartCount": restarts,
        "started": started,
        "state": state,
        "lastState": last,
    }
    if "waiting" not in state:
        seed = f"{pod['metadata'].get('uid', '')}/{slot.name}/{restarts}"
        out["containerID"] = "containerd://" + hashlib.sha256(seed.encode()).hexdigest()
    return out


def _waiting(slot: _Slot, reason: str) -> dict[str, Any]:
    image = str(slot.container.get("image", ""))
    return {
        "name": slot.name,
        "image": image,
        "imageID": "",
        "ready": False,
        "restartCount": int((slot.old or {}).get("restartCount", 0)),
        "started": False,
        "state": {"waiting": {"reason": reason}},
        "lastState": {},
    }


def _terminated(outcome: ContainerOutcome) -> dict[str, Any]:
    failed = outcome.state is ContainerState.FAILED
    exit_code = (outcome.exit_code or 1) if failed else 0
    reason = outcome.reason or ("Error" if failed else "Completed")
    stamp = now_rfc3339()
    return {"exitCode": exit_code, "reason": reason, "startedAt": stamp, "finishedAt": stamp}


def _last_terminated(old: dict[str, Any] | None) -> dict[str, Any]:
    if not old:
        return {}
    state = old.get("state") or {}
    if "terminated" in state:
        return {"terminated": state["terminated"]}
    return dict(old.get("lastState") or {})


def _image_id(image: str) -> str:
    if not image:
        return ""
    repo = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    return f"{repo}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


def _kubelet_backoff(restarts: int) -> str:
    """The back-off a real kubelet would report after ``restarts`` restarts (10 s doubling to 5 min)."""
    seconds = min(10 * 2 ** max(restarts - 1, 0), 300)
    minutes, rest = divmod(seconds, 60)
    return f"{minutes}m{rest}s" if minutes else f"{rest}s"


def _waiting_reason(status: dict[str, Any]) -> str:
    return str(((status.get("state") or {}).get("waiting") or {}).get("reason", ""))


def _init_done(slot: _Slot, status: dict[str, Any]) -> bool:
    state = status.get("state") or {}
    if slot.sidecar:
        return "running" in state
    return int((state.get("terminated") or {"exitCode": 1}).get("exitCode", 1)) == 0


def _init_finished(status: dict[str, Any], pod: Obj) -> bool:
    spec: dict[str, Any] = next(
        (c for c in pod["spec"].get("initContainers") or [] if c["name"] == status["name"]), {}
    )
    return _init_done(_Slot(spec, status, init=True), status)


def _failed_for_good(status: dict[str, Any], pod: Obj) -> bool:
    terminated = (status.get("state") or {}).get("terminated") or {}
    return bool(terminated) and int(terminated.get("exitCode", 0)) != 0 and pod["spec"].get("restartPolicy") == "Never"


def _key(pod: Obj) -> Key:
    meta = pod["metadata"]
    return ("v1", "Pod", str(meta.get("namespace", "")), str(meta["name"]))
