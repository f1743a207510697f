"""``runbook run`` re-plans each phase before it runs: a predicted break pauses it, ``--accept-risk`` lets it go."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runbook_engine.cli.main import EXIT_OK, EXIT_PAUSED, main
from runbook_engine.engine.connect import Connector
from runbook_engine.kube.refs import ObjectRef
from runbook_engine.spec.inventory import load_inventory

from .conftest import CASES, write_demo_inventory

ISTIO_SYSTEM = ObjectRef("v1", "Namespace", "", "istio-system")
SRE = ObjectRef("v1", "Namespace", "", "sre")
STRICT = ObjectRef("security.istio.io/v1", "PeerAuthentication", "istio-system", "default")


@pytest.mark.slow
def test_run_pauses_before_a_breaking_phase_and_proceeds_when_the_plan_is_accepted(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = write_demo_inventory(tmp_path / "inventory")
    state = tmp_path / "state"
    spec = load_inventory(inventory).clusters["demo"]
    common = [str(CASES / "strict_rollout.yml"), "-i", str(inventory)]

    # meshing the apps makes their sidecars sniff server-first datastore ports: the run stops before it
    assert main(["--state-dir", str(state), "run", *common]) == EXIT_PAUSED
    assert "phase 'enrol' is predicted to break" in capsys.readouterr().out
    with Connector(state)(spec) as cluster:
        assert cluster.get(ISTIO_SYSTEM) is not None  # the phase before ran...
        assert "istio-injection" not in ((cluster.get(SRE) or {})["metadata"].get("labels") or {})  # ...not this

    assert main(["--state-dir", str(state), "plan", *common, "--format", "json"]) == EXIT_PAUSED
    breaking = json.loads(capsys.readouterr().out)["breaking"]
    assert "external-secrets/external-secrets -> sre/vault:8200" in breaking
    accepted = [arg for flow in breaking for arg in ("--accept-risk", flow)]
    assert main(["--state-dir", str(state), "run", *common, *accepted]) == EXIT_OK
    with Connector(state)(spec) as cluster:
        assert cluster.get(STRICT) is not None
