"""``runbook plan`` and ``runbook render`` from the command line, on the demo platform."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from rich.console import Console

from runbook_engine.cli.plan_cmd import EXIT_BREAKS, EXIT_OK, plan
from runbook_engine.cli.render_cmd import render

from .conftest import CASES, write_demo_inventory

ESO_VAULT = "external-secrets/external-secrets -> sre/vault:8200"
INGRESS = ("ingress-nginx/ingress-nginx-controller -> sre/portal:3000",
           "ingress-nginx/ingress-nginx-controller -> sre/api-gateway:8080")
PLAYBOOK = str(CASES / "strict_rollout.yml")


@dataclass
class State:
    """The ``runbook`` group's context object, as the commands see it."""

    state_dir: Path
    console: Console = field(default_factory=lambda: Console(width=200, highlight=False, soft_wrap=True))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, State]:
    """The demo inventory and a state directory for its sandbox."""
    tmp = tmp_path_factory.mktemp("cli")
    return write_demo_inventory(tmp / "inventory"), State(tmp / "state")


def _invoke(state: State, command: click.Command, args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(command, args, obj=state, standalone_mode=False, catch_exceptions=False)
    return int(result.return_value), result.output


def test_plan_json_names_the_breaks_and_exits_2(demo: tuple[Path, State]) -> None:
    inventory, state = demo
    code, output = _invoke(state, plan, [PLAYBOOK, "-i", str(inventory), "--phase", "strict", "--format", "json"])
    assert code == EXIT_BREAKS
    data = json.loads(output)
    assert [p["name"] for p in data["phases"]] == ["strict"]
    assert sorted(data["breaking"]) == sorted([ESO_VAULT, *INGRESS])


def test_plan_with_the_risks_accepted_exits_0_and_says_accepted(demo: tuple[Path, State]) -> None:
    inventory, state = demo
    accepts = [arg for flow in (ESO_VAULT, *INGRESS) for arg in ("--accept-risk", flow)]
    code, output = _invoke(state, plan, [PLAYBOOK, "-i", str(inventory), "--phase", "strict", "--format", "md",
                                         *accepts])
    assert code == EXIT_OK
    assert "No unaccepted predicted breaks." in output
    assert f"| {ESO_VAULT} | http | inventory | ok → reset | breaks (accepted) |" in output


def test_plan_table_shows_phases_objects_and_breaks(demo: tuple[Path, State]) -> None:
    inventory, state = demo
    code, output = _invoke(state, plan, [PLAYBOOK, "-i", str(inventory), "--no-dry-run"])
    assert code == EXIT_BREAKS
    for header in ("PHASE 1 [control-plane]", "PHASE 2 [enrol]", "PHASE 3 [exceptions]", "PHASE 4 [strict]"):
        assert header in output
    assert "skipped: exceptions: its `when` condition is false" in output
    assert "PeerAuthentication/istio-system/default" in output and "BREAKS" in output


def test_render_writes_one_file_per_object_byte_identical_across_runs(demo: tuple[Path, State],
                                                                       tmp_path: Path) -> None:
    inventory, state = demo
    trees: list[dict[str, bytes]] = []
    for name in ("first", "second"):
        out = tmp_path / name
        code, _ = _invoke(state, render, [PLAYBOOK, "-i", str(inventory), "-e", "with_exceptions=true", "-o", str(out)])
        assert code == 0
        trees.append({str(f.relative_to(out)): f.read_bytes() for f in sorted(out.rglob("*.yaml"))})
    assert trees[0] == trees[1]
    files = trees[0]
    assert "strict/istio-system/peerauthentication-default.yaml" in files
    assert "exceptions/sre/peerauthentication-vault-permissive.yaml" in files
    assert "control-plane/_cluster/mutatingwebhookconfiguration-istio-sidecar-injector.yaml" in files
    assert not any(path.startswith("enrol/sre/deployment-") for path in files)  # restarts are not manifests
    assert b"planted-ca-key-5f0e2b" not in files["control-plane/istio-system/secret-cacerts.yaml"]
    strict = files["strict/istio-system/peerauthentication-default.yaml"].decode()
    assert "resourceVersion" not in strict and "managedFields" not in strict and "mode: STRICT" in strict
