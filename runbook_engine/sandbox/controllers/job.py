"""The Job controller: runs pods until ``completions`` succeed, or gives up after ``backoffLimit``.

Pods are named ``<job>-<suffix>`` and labelled ``job-name`` / ``batch.kubernetes.io/job-name`` and
``controller-uid``; status carries ``active``, ``ready``, ``succeeded``, ``failed``, ``startTime``,
``completionTime`` and the ``SuccessCriteriaMet`` + ``Complete`` (or ``FailureTarget`` + ``Failed``)
conditions.
"""

from __future__ import annotations

import contextlib
from typing import Any

from runbook_engine.errors import NotFoundError
from runbook_engine.sandbox.controllers.context import Context, pod_from_template
from runbook_engine.sandbox.controllers.util import (
    POD,
    PodPhase,
    Wake,
    condition,
    key_of,
    pod_active,
    pod_phase,
    pod_ready,
    uid_of,
    write_status,
)
from runbook_engine.sandbox.store import Key, Obj, now_rfc3339

DEFAULT_BACKOFF_LIMIT = 6


class JobController:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def reconcile(self, key: Key) -> Wake | None:
        job = self.ctx.get(key)
        if job is None or _finished(job):
            return None
        spec = job.get("spec") or {}
        pods = self.ctx.children(job, POD)
        active = [p for p in pods if pod_active(p)]
        succeeded = sum(1 for p in pods if pod_phase(p) == PodPhase.SUCCEEDED.value)
        failed = sum(1 for p in pods if pod_phase(p) == PodPhase.FAILED.value)
        completions = int(spec.get("completions") or 1)
        status = dict(job.get("status") or {})
        status.setdefault("startTime", now_rfc3339())
        if failed > int(spec.get("backoffLimit", DEFAULT_BACKOFF_LIMIT)):
            for pod in active:
                with contextlib.suppress(NotFoundError):
                    self.ctx.store.delete(*key_of(pod))
            active = []
            status["conditions"] = _failed(status)
        elif succeeded >= completions:
            status["completionTime"] = now_rfc3339()
            status["conditions"] = _complete(status)
        elif not spec.get("suspend"):
            want = min(int(spec.get("parallelism", 1)), completions - succeeded) - len(active)
            active += [self._create(job) for _ in range(max(want, 0))]
        status.update(
            active=len(active), ready=sum(1 for p in active if pod_ready(p)), succeeded=succeeded, failed=failed,
            terminating=0, uncountedTerminatedPods={},
        )
        write_status(self.ctx.store, job, {k: v for k, v in status.items() if v or k == "ready"})
        return None

    def _create(self, job: Obj) -> Obj:
        name, uid = str(job["metadata"]["name"]), uid_of(job)
        labels = {
            "batch.kubernetes.io/controller-uid": uid,
            "batch.kubernetes.io/job-name": name,
            "controller-uid": uid,
            "job-name": name,
        }
        template = (job.get("spec") or {}).get("template") or {}
        pod = pod_from_template(template, job, name, labels)
        pod["spec"].setdefault("restartPolicy", "Never")
        return self.ctx.create_pod(pod, generate=True)


def _finished(job: Obj) -> bool:
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in conditions)


def _complete(status: dict[str, Any]) -> list[dict[str, Any]]:
    previous = status.get("conditions")
    return [
        condition("SuccessCriteriaMet", True, "CompletionsReached", "Reached expected number of succeeded pods",
                  previous),
        condition("Complete", True, "CompletionsReached", "Reached expected number of succeeded pods", previous),
    ]


def _failed(status: dict[str, Any]) -> list[dict[str, Any]]:
    previous = status.get("conditions")
    message = "Job has reached the specified backoff limit"
    return [
        condition("FailureTarget", True, "BackoffLimitExceeded", message, previous),
        condition("Failed", True, "BackoffLimitExceeded", message, previous),
    ]
