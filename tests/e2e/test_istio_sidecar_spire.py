"""Acceptance: the Istio sidecar + SPIRE rollout on the demo platform, and rehearsals of known failures.

Each test drives the ``runbook`` CLI end to end against the embedded sandbox and then looks at the
cluster through the kubernetes client.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .support import E2E, Platform, demo_variant, exists, printed, proxies, resource, verdicts

pytestmark = pytest.mark.slow

PLAYBOOK = "istio-sidecar-spire.yml"
GATE = "PAUSED before workers / ingress / STRICT"
PA = ("security.istio.io/v1", "PeerAuthentication")


def test_main_command_stops_at_the_gate_and_resume_completes_to_strict(demo: Platform) -> None:
    demo.settle()

    paused = demo.run(PLAYBOOK)

    assert paused.code == 2, paused.output[-3000:]
    assert GATE in paused.output
    assert f"runbook resume {paused.run_id}" in paused.output
    status = demo.status(paused.run_id)
    assert (status["status"], status["current_phase"]) == ("paused", "workers")
    assert printed(paused.output, "every declared flow keeps its expected outcome") == "PASS"
    assert printed(paused.output, "the enrolled workloads are meshed, in the expected proxy form") == "PASS"
    assert printed(paused.output, "no pod is stuck in Init or crash-looping since the phase began") == "PREEXISTING"

    done = demo.runbook("resume", paused.run_id)

    assert done.code == 0, done.output[-3000:]
    final = demo.status(paused.run_id)
    assert final["status"] == "completed"
    assert verdicts(final)["every declared flow keeps its expected outcome without the retired exceptions"][
        "status"] == "pass"
    with demo.open() as cluster:
        mesh_wide = resource(cluster, *PA).get(name="default", namespace="istio-system")
        assert mesh_wide.spec.mtls.mode == "STRICT"
        assert exists(cluster, *PA, "sre", "vault-external-secrets")  # ESO still has no sidecar
        assert not exists(cluster, *PA, "sre", "portal-ingress-migration")  # the ingress is meshed now
        assert exists(cluster, *PA, "ingress-nginx", "ingress-nginx-edge")


def test_strict_without_the_vault_exception_is_gated_then_rolls_back_to_permissive(demo: Platform) -> None:
    demo.settle()
    paused = demo.run(PLAYBOOK, "-e", f"@{E2E / 'vars' / 'no-vault-exception.yml'}")
    assert paused.code == 2, paused.output[-3000:]

    # The planner predicts the break before STRICT writes anything and pauses with the plan as the reason.
    gated = demo.runbook("resume", paused.run_id)
    assert gated.code == 2, gated.output[-3000:]
    assert "external-secrets/external-secrets -> sre/vault:8200" in gated.output
    with demo.open() as cluster:
        assert not exists(cluster, *PA, "istio-system", "default")  # nothing was written

    # Resuming at the gated phase is the deliberate decision: STRICT goes on, its checkpoint catches the
    # broken flow, and the phase rolls back by itself.
    rolled_back = demo.runbook("resume", paused.run_id)

    assert rolled_back.code == 3, rolled_back.output[-3000:]
    status = demo.status(paused.run_id)
    assert (status["status"], status["current_phase"]) == ("rolled_back", "strict")
    flows = verdicts(status)["every declared flow keeps its expected outcome under STRICT"]
    assert flows["status"] == "fail"
    assert "external-secrets/external-secrets -> sre/vault:8200" in flows["summary"]
    with demo.open() as cluster:
        assert not exists(cluster, *PA, "istio-system", "default")  # back to PERMISSIVE


def test_init_container_needing_the_network_pauses_the_inject_checkpoint(tmp_path: Path) -> None:
    scenario = E2E / "scenarios" / "init-needs-network.yaml"
    platform = Platform(demo_variant(tmp_path, scenario), tmp_path / "state", scenario)
    platform.settle()

    paused = platform.run(PLAYBOOK, "-e", f"@{E2E / 'vars' / 'init-needs-network.yml'}")

    assert paused.code == 2, paused.output[-3000:]
    status = platform.status(paused.run_id)
    assert (status["status"], status["current_phase"], status["stage"]) == ("paused", "inject", "checkpoint")
    stuck = verdicts(status)["no pod is stuck in Init or crash-looping since the phase began"]
    assert stuck["status"] == "fail"
    assert "billing-sync" in stuck["summary"]
    assert "Init" in stuck["summary"]


def test_workload_that_breaks_when_meshed_is_rolled_back_without_its_proxy(tmp_path: Path) -> None:
    scenario = E2E / "scenarios" / "breaks-when-meshed.yaml"
    platform = Platform(demo_variant(tmp_path, scenario), tmp_path / "state", scenario)
    platform.settle()

    rolled_back = platform.run(PLAYBOOK, "-e", f"@{E2E / 'vars' / 'breaks-when-meshed.yml'}")

    assert rolled_back.code == 3, rolled_back.output[-3000:]
    assert "status-page" in rolled_back.output and "CrashLoopBackOff" in rolled_back.output
    status = platform.status()
    assert (status["status"], status["current_phase"]) == ("rolled_back", "inject")
    with platform.open() as cluster:
        namespace = resource(cluster, "v1", "Namespace").get(name="sre")
        assert "istio-injection" not in (namespace.metadata.labels or {})
        pods = proxies(cluster, "sre", "app=status-page")
        assert pods and all(found == [] for found in pods)

