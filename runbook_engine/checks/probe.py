"""Probe pods: the one side effect a check may have, to observe traffic from inside the cluster.

A probe is a short-lived Pod named ``runbook-probe-<hash>``, labelled
``app.kubernetes.io/managed-by=runbook-engine`` and ``runbook.dev/probe=<batch>``, with
``restartPolicy: Never``, running one ``probe`` container (``curl`` or ``openssl s_client``) in the
caller's namespace under the caller's service account. Its mesh enrolment mirrors the caller's:
a meshed caller's probe is injected the same way (Istio probes hold the application until the proxy
is ready), an unmeshed caller's probe opts out of every mesh.

``run_probes`` creates every probe of a batch first, then polls them together with one list call per
poll until each ``probe`` container has terminated (a classic sidecar keeps the pod Running, so the
container state is what counts), reads the logs and deletes the pods, also on error or timeout. Polls
read past a ``CachingCluster``'s per-phase cache; writes go through it, so its cache stays right.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from runbook_engine.errors import ClusterError
from runbook_engine.kube.caching import CachingCluster
from runbook_engine.kube.cluster import Cluster, Obj
from runbook_engine.kube.refs import ObjectRef
from runbook_engine.mesh import Enrolment, Mesh

MANAGED_BY = "runbook-engine"
PROBE_LABEL = "runbook.dev/probe"
CONTAINER = "probe"
CURL_IMAGE = "curlimages/curl:8.11.1"
OPENSSL_IMAGE = "alpine/openssl:3.3.2"
DEFAULT_TIMEOUT = 90.0

#: Pod-template labels and annotations that decide mesh enrolment, copied from a meshed caller.
ENROLMENT_LABELS = ("sidecar.istio.io/inject", "istio.io/rev", "istio.io/dataplane-mode")
ENROLMENT_ANNOTATIONS = ("linkerd.io/inject", "sidecar.istio.io/inject", "config.linkerd.io/default-inbound-policy")
NOT_MESHED_LABELS = {"sidecar.istio.io/inject": "false", "istio.io/dataplane-mode": "none"}
NOT_MESHED_ANNOTATIONS = {"linkerd.io/inject": "disabled"}
HOLD_FOR_PROXY = {"proxy.istio.io/config": '{"holdApplicationUntilProxyStarts": true}'}
#: https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted
POD_SECURITY = {"runAsNonRoot": True, "runAsUser": 65534, "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                      "capabilities": {"drop": ["ALL"]}}
RESOURCES = {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "32Mi"}}


@dataclass(frozen=True)
class Enrol:
    """The labels and annotations a probe pod carries so that it joins the mesh like its caller."""

    labels: Mapping[str, str] = field(default_factory=lambda: dict(NOT_MESHED_LABELS))
    annotations: Mapping[str, str] = field(default_factory=lambda: dict(NOT_MESHED_ANNOTATIONS))

    @classmethod
    def like(cls, enrolment: Enrolment, labels: Mapping[str, str], annotations: Mapping[str, str]) -> Enrol:
        """Mirror a caller: its enrolment markers when meshed, an explicit opt-out when not."""
        if not enrolment.meshed:
            return cls()
        lbl = {k: labels[k] for k in ENROLMENT_LABELS if k in labels}
        ann = {k: annotations[k] for k in ENROLMENT_ANNOTATIONS if k in annotations}
        if enrolment.mesh is Mesh.ISTIO_SIDECAR:
            ann.update(HOLD_FOR_PROXY)
        return cls(lbl, ann)


@dataclass(frozen=True)
class ProbeSpec:
    """One probe: where it runs, as whom, and the command of its container."""

    key: str  # identifies the probe to its check (e.g. a flow id)
    namespace: str
    image: str
    command: tuple[str, ...]
    service_account: str | None = None
    enrol: Enrol = field(default_factory=Enrol)

    def human_command(self, name: str = "runbook-probe") -> str:
        """The ``kubectl run`` a human could paste to make the same call."""
        overrides = f" --overrides='{json.dumps({'spec': {'serviceAccountName': self.service_account}})}'" \
            if self.service_account else ""
        labels = ",".join(f"{k}={v}" for k, v in self.enrol.labels.items())
        label_flag = f" --labels={labels}" if labels else ""
        notes = "".join(f" --annotations={shlex.quote(f'{k}={v}')}" for k, v in self.enrol.annotations.items())
        return (f"kubectl run {name} -n {self.namespace} --rm -i --restart=Never --image={self.image}"
                f"{label_flag}{notes}{overrides} --command -- {shlex.join(self.command)}")


@dataclass(frozen=True)
class ProbeResult:
    """What a probe pod printed and exited with; ``exit_code`` is None when it did not finish."""

    spec: ProbeSpec
    pod: str
    exit_code: int | None
    log: str = ""
    error: str = ""

    @property
    def finished(self) -> bool:
        return self.exit_code is not None


def pod_name(batch: str, key: str) -> str:
    return "runbook-probe-" + hashlib.sha256(f"{batch}/{key}".encode()).hexdigest()[:10]


def probe_pod(spec: ProbeSpec, name: str, batch: str) -> Obj:
    """The probe's Pod: admissible under the ``restricted`` Pod Security Standard and small resource quotas."""
    container = {"name": CONTAINER, "image": spec.image, "command": list(spec.command),
                 "securityContext": CONTAINER_SECURITY, "resources": RESOURCES}
    pod_spec: Obj = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 0,
        "automountServiceAccountToken": False,
        "securityContext": POD_SECURITY,
        "containers": [container],
    }
    if spec.service_account:
        pod_spec["serviceAccountName"] = spec.service_account
    labels = {**spec.enrol.labels, "app.kubernetes.io/managed-by": MANAGED_BY, PROBE_LABEL: batch}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": spec.namespace, "labels": labels,
                         "annotations": dict(spec.enrol.annotations)},
            "spec": pod_spec}


def fresh(cluster: Cluster) -> Cluster:
    """Where polls read: past a per-phase list cache, which would show the probes as first listed forever."""
    return cluster.uncached if isinstance(cluster, CachingCluster) else cluster


def probe_exit(pod: Mapping[str, Any]) -> int | None:
    """The probe container's exit code once it has terminated, else None."""
    status = pod.get("status") or {}
    for st in status.get("containerStatuses") or []:
        terminated = (st.get("state") or {}).get("terminated")
        if st.get("name") == CONTAINER and terminated:
            return int(terminated.get("exitCode") or 0)
    if status.get("phase") in ("Succeeded", "Failed"):
        return 0 if status.get("phase") == "Succeeded" else 1
    return None


@dataclass
class ProbeBatch:
    """Creates, polls, reads and removes a batch of probe pods."""

    cluster: Cluster
    timeout: float = DEFAULT_TIMEOUT
    interval: float = 0.25
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    batch: str = field(default_factory=lambda: secrets.token_hex(5))

    def run(self, specs: Sequence[ProbeSpec]) -> list[ProbeResult]:
        names = {spec.key: pod_name(self.batch, spec.key) for spec in specs}
        errors: dict[str, str] = {}
        try:
            for spec in specs:
                try:
                    self.cluster.apply(probe_pod(spec, names[spec.key], self.batch))
                except ClusterError as exc:
                    errors[spec.key] = f"probe pod not created: {exc}"
            exits = self._wait({names[s.key] for s in specs if s.key not in errors})
            return [self._result(spec, names[spec.key], exits, errors.get(spec.key, "")) for spec in specs]
        finally:
            self._delete([s for s in specs if s.key not in errors], names)

    def _wait(self, pending: set[str]) -> dict[str, int]:
        exits: dict[str, int] = {}
        deadline = self.clock() + self.timeout
        reader = fresh(self.cluster)
        while pending - exits.keys():
            for pod in reader.list("v1", "Pod", None, f"{PROBE_LABEL}={self.batch}"):
                code = probe_exit(pod)
                if code is not None:
                    exits[str(pod["metadata"]["name"])] = code
            if not pending - exits.keys() or self.clock() >= deadline:
                break
            self.sleep(self.interval)
        return exits

    def _result(self, spec: ProbeSpec, name: str, exits: Mapping[str, int], error: str) -> ProbeResult:
        if error:
            return ProbeResult(spec, name, None, error=error)
        if name not in exits:
            return ProbeResult(spec, name, None, self._log(spec, name),
                               error=f"probe did not finish within {self.timeout:g}s")
        return ProbeResult(spec, name, exits[name], self._log(spec, name))

    def _log(self, spec: ProbeSpec, name: str) -> str:
        try:
            return fresh(self.cluster).pod_logs(spec.namespace, name, CONTAINER)
        except ClusterError:
            return ""

    def _delete(self, specs: Sequence[ProbeSpec], names: Mapping[str, str]) -> None:
        for spec in specs:
            try:
                self.cluster.delete(ObjectRef("v1", "Pod", spec.namespace, names[spec.key]))
            except ClusterError:
                continue  # already gone, or the API is down: the label lets an operator clean up


def run_probes(cluster: Cluster, specs: Sequence[ProbeSpec], timeout: float = DEFAULT_TIMEOUT) -> list[ProbeResult]:
    """Run a batch of probes and return their results in the order of ``specs``."""
    return ProbeBatch(cluster, timeout=timeout).run(specs) if specs else []
