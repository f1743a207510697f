"""``build_sandbox`` wires the mesh physics into the API server: injection, runtime, faults, /metrics."""

from __future__ import annotations

import ssl
import urllib.request
from pathlib import Path

import yaml

from runbook_engine.sandbox.app import build_sandbox
from runbook_engine.sandbox.physics.runtime import MeshRuntime

SCENARIO = {
    "name": "wiring",
    "nodes": [{"name": "node-1"}],
    "manifests": [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "sre"}}],
    "flows": [{"from": "sre/web", "to": "sre/api:8080", "protocol": "http"}],
    "faults": [
        {"ztunnel_missing": {"node": "node-1"}},
        {"breaks_when_meshed": {"namespace": "sre", "workload": "legacy"}},
    ],
}


def test_build_sandbox_composes_physics_and_serves_metrics(tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(yaml.safe_dump(SCENARIO))
    server = build_sandbox(tmp_path / "state", scenario)
    physics = server.physics
    assert isinstance(server.runtime, MeshRuntime) and server.store is physics.store
    assert physics.webhook in server.store.admission
    assert physics.faults.ztunnel_missing == {"node-1"} and physics.faults.breaks("sre", "legacy")
    assert [f.id for f in physics.metrics.flows] == ["sre/web -> sre/api:8080"]
    context = ssl.create_default_context(cafile=None)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with server:
        with urllib.request.urlopen(f"{server.url}/metrics", context=context, timeout=5) as resp:
            body = resp.read().decode()
        assert "# TYPE istio_requests_total counter" in body
