"""Every prediction checked against the sandbox: plan the rollout, execute it, exercise every flow after every phase.

The planner (``runbook_engine.mesh``) and the sandbox's physics (``runbook_engine.sandbox.physics``) are
independent implementations of the mesh's documented behaviour; for every flow of every phase, the
outcome the plan predicts after the phase must be the outcome the sandbox shows once the phase ran —
except where the two are known to disagree (``cases/known_disagreements.yaml`` says which side the
documentation supports and why); the mismatches observed must be exactly those.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from runbook_engine.engine.connect import Connector
from runbook_engine.engine.events import Event, EventKind
from runbook_engine.engine.journal import RunStatus, RunStore
from runbook_engine.engine.modules import catalog
from runbook_engine.engine.plan_model import PhaseStatus, Plan
from runbook_engine.engine.planner import Planner, PlanOptions
from runbook_engine.engine.run_model import RunOptions
from runbook_engine.engine.runner import Engine
from runbook_engine.kube.cluster import Cluster
from runbook_engine.kube.flow import Flow, Outcome
from runbook_engine.kube.kube_cluster import KubeCluster
from runbook_engine.sandbox.app import MeshSandbox, build_sandbox
from runbook_engine.sandbox.physics import ConnectionPhysics
from runbook_engine.sandbox.physics import objects as sandbox_objects
from runbook_engine.sandbox.physics.topology import NODE_IP, MeshView, Peer, PeerKind, Target, newest, pod_dataplane
from runbook_engine.spec.inventory import load_inventory
from runbook_engine.spec.loader import load_playbook
from runbook_engine.spec.model import ClusterSpec

from .conftest import CASES, write_demo_inventory


def _service_port(view: MeshView, flow: Flow) -> bool:
    svc = view.cp.store.get("v1", "Service", flow.dest_namespace or "", flow.dest_service)
    return svc is not None and any(int(p.get("port", 0)) == flow.port for p in svc["spec"].get("ports") or [])


def _kubelet_probe(server: MeshSandbox, flow: Flow) -> tuple[Outcome, list[str]]:
    """A kubelet probe of ``<ns>/<workload>:<port>`` as the sandbox's kubelet makes it: to a pod, not a Service."""
    view = MeshView.take(server.physics.control_plane)
    pod = newest(view.workload_pods(flow.dest_namespace or "", flow.dest_service))
    if pod is None:
        return Outcome.RESET, [f"no pod of {flow.dest_host}"]
    workload = sandbox_objects.workload_name(pod)
    target = Target(host=sandbox_objects.pod_ip(pod), port=flow.port, namespace=flow.dest_namespace or "",
                    target_port=flow.port, pod=pod, workload=workload, dataplane=pod_dataplane(pod), service=workload)
    result = ConnectionPhysics(view, server.physics.identities).connect(
        Peer(PeerKind.KUBELET, ip=NODE_IP), target, flow.protocol, flow.path)
    return result.outcome, result.reasons


def observe(server: MeshSandbox, flow: Flow) -> tuple[Outcome, list[str]]:
    """What the sandbox shows for ``flow``; kubelet probes named by workload (no such Service port) go to a pod."""
    if flow.source == "kubelet" and not _service_port(MeshView.take(server.physics.control_plane), flow):
        return _kubelet_probe(server, flow)
    result = server.physics.evaluate(flow)
    return result.outcome, result.reasons


@dataclass(frozen=True)
class Mismatch:
    phase: str
    flow: Flow
    predicted: Outcome
    observed: Outcome
    why_observed: tuple[str, ...]

    def __str__(self) -> str:
        return (f"{self.phase}: {self.flow.id} predicted {self.predicted.value}, observed {self.observed.value} "
                f"({'; '.join(self.why_observed)})")


SETTLE_SECONDS = 60.0
KNOWN = yaml.safe_load((CASES / "known_disagreements.yaml").read_text())


def known(mismatch: Mismatch) -> int | None:
    """The index of the documented disagreement ``mismatch`` is an instance of, if any."""
    for index, entry in enumerate(KNOWN):
        if (re.match(entry["to"], mismatch.flow.to) and entry["predicted"] == mismatch.predicted.value
                and entry["observed"] == mismatch.observed.value):
            return index
    return None


class Observer:
    """Runs the playbook on a sandbox and, after each phase, asks the sandbox's physics about each planned flow."""

    def __init__(self, state: Path, plan: Plan) -> None:
        self.state = state
        self.plan = plan
        self.server: MeshSandbox | None = None
        self.mismatches: list[Mismatch] = []
        self.observed: dict[tuple[str, str], Outcome] = {}
        self.done: set[str] = set()
        self.compared = 0

    @contextmanager
    def connect(self, spec: ClusterSpec) -> Iterator[Cluster]:
        assert spec.sandbox is not None
        self.server = build_sandbox(self.state / "sandbox" / spec.name, spec.sandbox, port=0).start()
        try:
            self.server.settle(timeout=SETTLE_SECONDS)  # as ``engine.connect`` does: pods in a steady state
            yield KubeCluster.from_kubeconfig(self.server.kubeconfig, None, spec.name)
        finally:
            self.server.stop()

    def __call__(self, event: Event) -> None:
        """Exercise the phase's flows once its tasks ran: at its checkpoint (before a rollback could undo
        the phase), or at its end when it has no checkpoint."""
        if event.kind not in (EventKind.CHECKPOINT_START, EventKind.PHASE_END) or self.server is None:
            return
        if event.phase in self.done or (event.kind is EventKind.CHECKPOINT_START and event.message == "preflight"):
            return
        self.done.add(event.phase)
        for flow in self.plan.phase(event.phase).flows:
            outcome, reasons = observe(self.server, flow.flow)
            self.compared += 1
            self.observed[(event.phase, flow.flow.id)] = outcome
            if outcome is not flow.after:
                self.mismatches.append(Mismatch(event.phase, flow.flow, flow.after, outcome, tuple(reasons)))


@pytest.mark.slow
def test_every_predicted_outcome_is_the_observed_one(tmp_path: Path) -> None:
    """The case rollout without its exceptions, so that STRICT's predicted breaks are exercised too."""
    inventory = load_inventory(write_demo_inventory(tmp_path / "inventory"), extra_vars={})
    playbook = load_playbook(CASES / "strict_rollout.yml", catalog=catalog())
    extra = {"with_exceptions": False}
    [plan] = Planner(Connector(tmp_path / "plan-state")).plan(playbook, inventory, PlanOptions(extra_vars=extra))

    observer = Observer(tmp_path / "run-state", plan)
    engine = Engine(RunStore(tmp_path / "run-state"), connect=observer.connect, sink=observer)
    [result] = engine.run(playbook, inventory, RunOptions(extra_vars=extra))

    assert result.status is RunStatus.COMPLETED, result.reason
    planned = [p for p in plan.phases if p.status is PhaseStatus.PLANNED]
    assert observer.compared == sum(len(p.flows) for p in planned) > 0
    unexplained = [str(m) for m in observer.mismatches if known(m) is None]
    assert unexplained == [], "\n".join(unexplained)
    assert {known(m) for m in observer.mismatches} == set(range(len(KNOWN)))  # each still observed
    for flow in plan.phase("strict").breaking:  # each predicted break really happens
        assert observer.observed[("strict", flow.flow.id)] is Outcome.RESET
