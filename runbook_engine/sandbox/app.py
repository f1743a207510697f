"""The sandbox's composition root: a ``SandboxServer`` with the mesh physics wired in.

``build_sandbox`` creates the store, the mesh physics (injection webhook as an admission hook,
ambient enrolment as a store listener, the mesh-aware pod runtime, the CA whose keys live under
``<state>/mesh-ca``, and the traffic metrics served at ``/metrics``) and hands them to the server.
The scenario's flows drive the metrics. Its mesh faults (see ``sandbox.physics.faults``) go through
the server's fault board like every other fault: the physics' ``MeshFaultHandler`` is registered
there, so they are active from the start and can be injected, listed and lifted at run time through
``/sandbox/admin/faults``.
"""

from __future__ import annotations

from pathlib import Path

from runbook_engine.kube.flow import Flow
from runbook_engine.sandbox.physics import MeshPhysics
from runbook_engine.sandbox.physics.faults import MeshFaultHandler
from runbook_engine.sandbox.scenario import Scenario, load_scenario
from runbook_engine.sandbox.server import SandboxServer
from runbook_engine.sandbox.store import Store

CA_DIR = "mesh-ca"


class MeshSandbox(SandboxServer):
    """A ``SandboxServer`` whose mesh physics runs while the server does."""

    def __init__(
        self,
        state_dir: Path,
        *,
        scenario: Path | None,
        port: int,
        physics: MeshPhysics,
        loaded: Scenario | None = None,
    ) -> None:
        super().__init__(
            state_dir,
            scenario=scenario,
            port=port,
            runtime=physics.runtime,
            metrics=physics.metrics_text,
            store=physics.store,
            loaded=loaded,
        )
        self.physics = physics
        self.register_faults(MeshFaultHandler(physics.faults))
        if loaded is not None:
            self._declare_faults(loaded)  # active from the start, before anything is seeded

    def start(self) -> MeshSandbox:
        super().start()
        self.physics.start()
        return self

    def stop(self) -> None:
        self.physics.stop()
        super().stop()


def build_sandbox(state_dir: Path, scenario: Path | None, port: int = 0, *, request_rate: float = 1.0) -> MeshSandbox:
    """A sandbox server for ``state_dir`` seeded from ``scenario``, with mesh behaviour."""
    loaded = load_scenario(Path(scenario)) if scenario is not None else None
    flows: list[Flow] = list(loaded.flows) if loaded is not None else []
    store = Store()
    physics = MeshPhysics(store, flows=flows, ca_dir=Path(state_dir) / CA_DIR, request_rate=request_rate)
    physics.install()
    return MeshSandbox(Path(state_dir), scenario=scenario, port=port, physics=physics, loaded=loaded)
