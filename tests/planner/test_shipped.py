"""The shipped Istio + SPIRE playbook on the demo platform: the STRICT phase breaks exactly what it should.

Without the Vault exception the plan of the STRICT phase names exactly the flow from External Secrets
(no sidecar) to Vault; with the inventory as shipped (the exception present; ingress-nginx meshed in
its own phase before STRICT) it names none. Every prediction of every shipped playbook is then
checked on the sandbox: the playbook is executed (resumed past its operator gate) and every flow of
every phase it executes is exercised once the phase's tasks ran.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from runbook_engine.engine.connect import Connector
from runbook_engine.engine.journal import RunStatus, RunStore
from runbook_engine.engine.modules import catalog
from runbook_engine.engine.plan_model import PhaseStatus, Plan
from runbook_engine.engine.planner import Planner, PlanOptions
from runbook_engine.engine.run_model import RunOptions
from runbook_engine.engine.runner import Engine
from runbook_engine.spec.inventory import load_inventory
from runbook_engine.spec.loader import load_playbook

from .conftest import ROOT
from .test_predicted_vs_observed import Observer, known

PLAYBOOK = ROOT / "playbooks" / "istio-sidecar-spire.yml"
INVENTORY = ROOT / "inventory" / "demo"
ESO_VAULT = "external-secrets/external-secrets -> sre/vault:8200"


def _without_vault_exception() -> dict[str, Any]:
    shipped = yaml.safe_load((INVENTORY / "group_vars" / "all" / "exceptions.yml").read_text())
    return {"mtls_exceptions": [e for e in shipped["mtls_exceptions"] if e["name"] != "vault-external-secrets"]}


def _plan(tmp_path: Path, extra: dict[str, Any]) -> Plan:
    inventory = load_inventory(INVENTORY, extra_vars=extra)
    playbook = load_playbook(PLAYBOOK, catalog=catalog())
    [plan] = Planner(Connector(tmp_path / "state")).plan(playbook, inventory, PlanOptions(extra_vars=extra))
    return plan


def test_strict_without_the_vault_exception_breaks_exactly_eso_to_vault(tmp_path: Path) -> None:
    strict = _plan(tmp_path, _without_vault_exception()).phase("strict")
    assert [f.flow.id for f in strict.breaking] == [ESO_VAULT]
    [eso] = strict.breaking
    assert eso.transition == "ok → reset"
    assert any("sre/vault:8200" in r and "STRICT via PeerAuthentication istio-system/default" in r
               for r in eso.reasons)
    assert strict.decision == "rollback"  # its checkpoint, judged from the prediction, would roll it back


def test_strict_as_shipped_breaks_nothing(tmp_path: Path) -> None:
    plan = _plan(tmp_path, {})
    assert plan.phase("strict").breaking == [] and plan.breaking == []
    assert all(p.status is PhaseStatus.PLANNED for p in plan.phases)


SHIPPED = [
    pytest.param("istio-sidecar-spire.yml", "demo", True, id="istio-sidecar-spire"),
    # the ambient run rolls back at default-deny: its probe pods see resets where both the planner and the
    # sandbox's physics predict ok; the predictions are still compared for every phase it executed
    pytest.param("istio-ambient.yml", "demo-ambient", False, id="istio-ambient"),
    pytest.param("linkerd.yml", "demo-linkerd", True, id="linkerd"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("book", "inventory_dir", "completes"), SHIPPED)
def test_every_prediction_of_a_shipped_playbook_is_observed_on_the_sandbox(
        tmp_path: Path, book: str, inventory_dir: str, completes: bool) -> None:
    inventory = load_inventory(ROOT / "inventory" / inventory_dir)
    playbook = load_playbook(ROOT / "playbooks" / book, catalog=catalog())
    [plan] = Planner(Connector(tmp_path / "plan")).plan(playbook, inventory, PlanOptions())
    observer = Observer(tmp_path / "run", plan)
    engine = Engine(RunStore(tmp_path / "run"), connect=observer.connect, sink=observer)
    [result] = engine.run(playbook, inventory, RunOptions())
    while result.status is RunStatus.PAUSED and "PAUSED before" in result.reason:  # the operator gate
        result = engine.resume(result.run_id, playbook=playbook, inventory=inventory)
    if completes:
        assert result.status is RunStatus.COMPLETED, result.reason
    executed = [p for p in plan.phases if p.name in observer.done]
    assert executed and observer.compared == sum(len(p.flows) for p in executed)
    unexplained = [str(m) for m in observer.mismatches if known(m) is None]
    assert unexplained == [], "\n".join(unexplained)
