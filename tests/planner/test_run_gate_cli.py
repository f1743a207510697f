"""``runbook run`` re-plans each phase before it runs: a predicted break pauses it, ``--accept-risk`` lets it go."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbook_engine.cli.main import EXIT_OK, EXIT_PAUSED, main
from runbook_engine.kube.refs import ObjectRef
from runbook_engine.spec.inventory import load_inventory

from .conftest import CASES, SettledConnector, write_demo_inventory

FLOWS = ("external-secrets/external-secrets -> sre/vault:8200",
         "ingress-nginx/ingress-nginx-controller -> sre/portal:3000",
         "ingress-nginx/ingress-nginx-controller -> sre/api-gateway:8080")
STRICT = ObjectRef("security.istio.io/v1", "PeerAuthentication", "istio-system", "default")


@pytest.mark.slow
def test_run_pauses_before_the_breaking_phase_and_proceeds_with_the_risks_accepted(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = write_demo_inventory(tmp_path / "inventory")
    state = tmp_path / "state"
    spec = load_inventory(inventory).clusters["demo"]
    with SettledConnector(state)(spec):
        pass  # the sandbox's workloads run their pods before the first run reads them
    base = ["--state-dir", str(state), "run", str(CASES / "strict_rollout.yml"), "-i", str(inventory)]

    assert main(base) == EXIT_PAUSED
    assert "phase 'strict' is predicted to break 3 flow(s)" in capsys.readouterr().out
    with SettledConnector(state)(spec) as cluster:
        assert cluster.get(STRICT) is None  # paused before the phase wrote anything

    assert main([*base, *(a for f in FLOWS for a in ("--accept-risk", f))]) == EXIT_OK
    with SettledConnector(state)(spec) as cluster:
        assert cluster.get(STRICT) is not None
