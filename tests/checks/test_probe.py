"""Probe pods: created as a batch, polled together, read, and always removed; enrolled like their caller."""

from __future__ import annotations

from typing import Any

from runbook_engine.checks.probe import (
    CONTAINER,
    HOLD_FOR_PROXY,
    MANAGED_BY,
    NOT_MESHED_LABELS,
    Enrol,
    ProbeBatch,
    ProbeSpec,
    run_probes,
)
from runbook_engine.kube.caching import CachingCluster
from runbook_engine.kube.cluster import Obj
from runbook_engine.kube.memory import MemoryCluster
from runbook_engine.mesh import Enrolment, Mesh, ProxyForm

from .check_support import ProbeCluster


class Recording(ProbeCluster):
    """Records the order of pod writes and lists."""

    def __init__(self) -> None:
        super().__init__([], lambda pod: (0, "200"))
        self.calls: list[str] = []

    def apply(self, obj: Any, **kw: Any) -> Obj:
        self.calls.append("apply")
        return super().apply(obj, **kw)

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None) -> list[Obj]:
        self.calls.append("list")
        return super().list(api_version, kind, namespace, label_selector)


def spec(key: str, ns: str = "shop") -> ProbeSpec:
    return ProbeSpec(key, ns, "curlimages/curl:8.11.1", ("curl", "-s", "http://api.shop:8080/"), "web-sa")


def test_a_batch_creates_every_pod_before_polling_them_together_and_removes_them() -> None:
    cluster = Recording()
    results = run_probes(cluster, [spec("a"), spec("b", "ops"), spec("c")])
    assert cluster.calls == ["apply", "apply", "apply", "list"]
    assert [(r.spec.key, r.exit_code, r.log) for r in results] == [("a", 0, "200"), ("b", 0, "200"), ("c", 0, "200")]
    assert cluster.list("v1", "Pod") == []  # deleted afterwards
    pod = cluster.created[0]
    assert pod["metadata"]["name"].startswith("runbook-probe-") and len(pod["metadata"]["name"]) == 24
    assert pod["metadata"]["labels"]["app.kubernetes.io/managed-by"] == MANAGED_BY
    assert pod["spec"]["restartPolicy"] == "Never" and pod["spec"]["serviceAccountName"] == "web-sa"
    assert pod["spec"]["containers"][0]["name"] == CONTAINER
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True  # admissible in restricted namespaces
    assert pod["spec"]["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_a_probe_that_never_finishes_times_out_without_waiting_for_real_and_is_removed() -> None:
    cluster = MemoryCluster([])
    ticks = iter(range(0, 1000, 10))
    batch = ProbeBatch(cluster, timeout=30, clock=lambda: float(next(ticks)), sleep=lambda _: None)
    (result,) = batch.run([spec("stuck")])
    assert not result.finished and result.error == "probe did not finish within 30s"
    assert cluster.list("v1", "Pod") == []


def test_failed_probes_report_their_exit_code_and_log() -> None:
    cluster = ProbeCluster([], lambda pod: (56, "000"))
    (result,) = run_probes(cluster, [spec("reset")])
    assert result.finished and result.exit_code == 56 and result.log == "000"


def test_probe_enrolment_mirrors_the_caller() -> None:
    meshed = Enrolment(True, Mesh.ISTIO_SIDECAR, ProxyForm.NATIVE_SIDECAR)
    enrol = Enrol.like(meshed, {"istio.io/rev": "canary", "app": "web"}, {"linkerd.io/inject": "enabled"})
    assert enrol.labels == {"istio.io/rev": "canary"}
    assert enrol.annotations == {"linkerd.io/inject": "enabled", **HOLD_FOR_PROXY}
    outside = Enrol.like(Enrolment(False, Mesh.NONE, ProxyForm.NONE), {"istio.io/rev": "canary"}, {})
    assert outside.labels == NOT_MESHED_LABELS and outside.annotations == {"linkerd.io/inject": "disabled"}


def test_the_human_command_is_a_kubectl_run_with_the_same_identity_and_enrolment() -> None:
    command = spec("a").human_command()
    assert command == (
        "kubectl run runbook-probe -n shop --rm -i --restart=Never --image=curlimages/curl:8.11.1 "
        "--labels=sidecar.istio.io/inject=false,istio.io/dataplane-mode=none "
        "--annotations=linkerd.io/inject=disabled "
        "--overrides='{\"spec\": {\"serviceAccountName\": \"web-sa\"}}' --command -- curl -s http://api.shop:8080/")


class Slow(ProbeCluster):
    """Probe pods finish only after they were first listed as running."""

    def __init__(self) -> None:
        super().__init__([], lambda pod: (0, "200"))
        self.lists = 0

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None) -> list[Obj]:
        self.lists += 1
        items = super().list(api_version, kind, namespace, label_selector)
        return [{**p, "status": {"phase": "Running"}} for p in items] if self.lists == 1 else items


def test_polls_read_past_the_per_phase_list_cache() -> None:
    inner = Slow()
    batch = ProbeBatch(CachingCluster(inner), timeout=5, sleep=lambda _: None)
    (result,) = batch.run([spec("a")])
    assert result.finished and result.log == "200" and inner.lists == 2
