"""Running checks in tests: a ``MemoryCluster`` loaded with manifests, and one whose probe pods "run".

``ProbeCluster`` answers every probe pod at creation through a responder ``(pod) -> (exit code, log)``
and reports the probe container as terminated in later lists, as a kubelet would.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from runbook_engine.checks.base import Baseline, CheckContext
from runbook_engine.checks.builtin import CHECKS
from runbook_engine.checks.probe import CONTAINER, PROBE_LABEL
from runbook_engine.kube.cluster import FIELD_MANAGER, Cluster, Obj
from runbook_engine.kube.memory import MemoryCluster
from runbook_engine.report.verdict import Verdict

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
Responder = Callable[[Obj], tuple[int, str]]


def run_check(name: str, cluster: Cluster, args: Mapping[str, Any], *, baseline: Baseline | None = None,
              now: dt.datetime = NOW, prometheus_url: str | None = None) -> Verdict:
    check = CHECKS[name]()
    ctx = CheckContext(cluster=cluster, baseline=baseline, now=now, prometheus_url=prometheus_url, title=f"t-{name}")
    verdict = check.run(ctx, check.Args.model_validate(dict(args)))
    assert verdict.check == name and verdict.title == f"t-{name}"
    return verdict


class ProbeCluster(MemoryCluster):
    """A MemoryCluster in which probe pods finish as soon as they are created."""

    def __init__(self, objects: Iterable[Obj], responder: Responder) -> None:
        super().__init__(list(objects))
        self.responder = responder
        self.exits: dict[str, int] = {}
        self.created: list[Obj] = []

    def apply(self, obj: Mapping[str, Any], *, field_manager: str = FIELD_MANAGER, dry_run: bool = False,
              force: bool = True) -> Obj:
        out = super().apply(obj, field_manager=field_manager, dry_run=dry_run, force=force)
        if PROBE_LABEL in (out["metadata"].get("labels") or {}):
            code, log = self.responder(out)
            self.exits[out["metadata"]["name"]] = code
            self.set_pod_log(out["metadata"]["namespace"], out["metadata"]["name"], CONTAINER, log)
            self.created.append(out)
        return out

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None) -> list[Obj]:
        items = super().list(api_version, kind, namespace, label_selector)
        for item in items:
            code = self.exits.get(item["metadata"]["name"]) if kind == "Pod" else None
            if code is not None:
                item["status"] = {"phase": "Succeeded" if code == 0 else "Failed", "containerStatuses": [
                    {"name": CONTAINER, "state": {"terminated": {"exitCode": code}}}]}
        return items


def probe_url(pod: Obj) -> str:
    """The last argument of a probe's command: the URL or the openssl script."""
    return str(pod["spec"]["containers"][0]["command"][-1])
