"""The sandbox's composition root: a ``SandboxServer`` with the mesh physics wired in.

``build_sandbox`` creates the store, the mesh physics (injection webhook as an admission hook,
ambient enrolment as a store listener, the mesh-aware pod runtime, the CA whose keys live under
``<state>/mesh-ca``, and the traffic metrics served at ``/metrics``) and hands them to the server.
The scenario's flows drive the metrics and its mesh faults (see ``sandbox.physics.faults``) are
active from the start.
"""

from __future__ import annotations

from pathlib import Path

from runbook_engine.kube.flow import Flow
from runbook_engine.sandbox.physics import MeshFaults, MeshPhysics
from runbook_engine.sandbox.scenario import load_scenario
from runbook_engine.sandbox.server import SandboxServer
from runbook_engine.sandbox.store import Store

CA_DIR = "mesh-ca"


class MeshSandbox(SandboxServer):
    """A ``SandboxServer`` whose mesh physics runs while the server does."""

    def __init__(self, state_dir: Path, *, scenario: Path | None, port: int, physics: MeshPhysics) -> None:
        super().__init__(
            state_dir,
            scenario=scenario,
            port=port,
            runtime=physics.runtime,
            metrics=physics.metrics_text,
            store=physics.store,
        )
        self.physics = physics

    def start(self) -> MeshSandbox:
        super().start()
        self.physics.start()
        return self

    def stop(self) -> None:
        self.physics.stop()
        super().stop()


def build_sandbox(state_dir: Path, scenario: Path | None, port: int = 0, *, request_rate: float = 1.0) -> MeshSandbox:
    """A sandbox server for ``state_dir`` seeded from ``scenario``, with mesh behaviour."""
    flows: list[Flow] = []
    faults = MeshFaults()
    if scenario is not None:
        loaded = load_scenario(Path(scenario))
        flows = list(loaded.flows)
        faults = MeshFaults.from_scenario(loaded.faults)
    store = Store()
    physics = MeshPhysics(store, flows=flows, faults=faults, ca_dir=Path(state_dir) / CA_DIR,
                          request_rate=request_rate)
    physics.install()
    return MeshSandbox(Path(state_dir), scenario=scenario, port=port, physics=physics)
