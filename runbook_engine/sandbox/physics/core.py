"""``MeshPhysics``: the mesh behaviour of one sandbox, composed from the physics modules."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from runbook_engine.kube.flow import Flow
from runbook_engine.sandbox.physics.ambient import AmbientEnroller
from runbook_engine.sandbox.physics.connection import ConnectionPhysics, FlowResult
from runbook_engine.sandbox.physics.control_plane import ControlPlane
from runbook_engine.sandbox.physics.faults import MeshFaults
from runbook_engine.sandbox.physics.identity import IdentityIssuer
from runbook_engine.sandbox.physics.injection import InjectionWebhook
from runbook_engine.sandbox.physics.runtime import MeshRuntime
from runbook_engine.sandbox.physics.svid import IdentityService
from runbook_engine.sandbox.physics.telemetry import TrafficMetrics
from runbook_engine.sandbox.physics.topology import MeshView
from runbook_engine.sandbox.store import Store


class MeshPhysics:
    """Injection webhook, ambient enroller, runtime, identities and telemetry over one store."""

    def __init__(
        self,
        store: Store,
        *,
        flows: Sequence[Flow] = (),
        faults: MeshFaults | None = None,
        ca_dir: Path | None = None,
        request_rate: float = 1.0,
    ) -> None:
        self.store = store
        self.faults = faults or MeshFaults()
        self.control_plane = ControlPlane(store, self.faults)
        self.identities = IdentityService(IdentityIssuer(ca_dir))
        self.webhook = InjectionWebhook(self.control_plane)
        self.enroller = AmbientEnroller(store, self.control_plane)
        self.runtime = MeshRuntime(self.control_plane, self.identities)
        self.metrics = TrafficMetrics(self.control_plane, flows, request_rate, identities=self.identities)

    def install(self) -> None:
        """Register the injection webhook, then ambient enrolment at creation, and the enroller's listener.

        The order matters: a pod the injector gave a sidecar is not enrolled in ambient.
        """
        if self.webhook not in self.store.admission:
            self.store.admission.append(self.webhook)
        if self.enroller.admit not in self.store.admission:
            self.store.admission.append(self.enroller.admit)
        if self.enroller.on_event not in self.store.listeners:
            self.store.listeners.append(self.enroller.on_event)

    def start(self) -> None:
        self.install()
        self.enroller.start()

    def stop(self) -> None:
        self.enroller.stop()

    def evaluate(self, flow: Flow) -> FlowResult:
        return ConnectionPhysics(MeshView.take(self.control_plane), self.identities).flow(flow)

    def metrics_text(self) -> str:
        return self.metrics.text()
