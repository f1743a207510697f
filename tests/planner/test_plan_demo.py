"""Planning the case rollout on the demo platform (a sandbox, over HTTPS): what breaks, what changes, what is sent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runbook_engine.engine.connect import Connector, connect
from runbook_engine.engine.modules import catalog
from runbook_engine.engine.plan_markdown import plan_markdown
from runbook_engine.engine.plan_model import SCHEMA, CheckBasis, DiffSource, PhaseStatus, Plan
from runbook_engine.engine.planner import Planner, PlanOptions
from runbook_engine.engine.simulation import snapshot_kinds
from runbook_engine.kube.change import ChangeKind
from runbook_engine.kube.refs import ObjectRef
from runbook_engine.report.verdict import Status
from runbook_engine.spec.inventory import load_inventory
from runbook_engine.spec.loader import load_playbook

from .conftest import CASES, write_demo_inventory

ESO_VAULT = "external-secrets/external-secrets -> sre/vault:8200"
INGRESS_PORTAL = "ingress-nginx/ingress-nginx-controller -> sre/portal:3000"
INGRESS_GATEWAY = "ingress-nginx/ingress-nginx-controller -> sre/api-gateway:8080"
PLANTED = "planted-ca-key-5f0e2b"


def _plan(tmp: Path, with_exceptions: bool) -> tuple[Plan, Path]:
    inventory = load_inventory(write_demo_inventory(tmp / "inventory"))
    playbook = load_playbook(CASES / "strict_rollout.yml", catalog=catalog())
    options = PlanOptions(extra_vars={"with_exceptions": with_exceptions, "plan_checks": True})
    [plan] = Planner(Connector(tmp / "state")).plan(playbook, inventory, options)
    return plan, tmp


@pytest.fixture(scope="module")
def without_exception(tmp_path_factory: pytest.TempPathFactory) -> tuple[Plan, Path]:
    return _plan(tmp_path_factory.mktemp("plain"), False)


@pytest.fixture(scope="module")
def with_exception(tmp_path_factory: pytest.TempPathFactory) -> tuple[Plan, Path]:
    return _plan(tmp_path_factory.mktemp("exceptions"), True)


def test_strict_without_the_exception_names_exactly_the_flows_that_break(
        without_exception: tuple[Plan, Path]) -> None:
    strict = without_exception[0].phase("strict")
    assert {f.flow.id for f in strict.breaking} == {ESO_VAULT, INGRESS_PORTAL, INGRESS_GATEWAY}
    eso = next(f for f in strict.breaking if f.flow.id == ESO_VAULT)
    assert eso.transition == "ok → reset"
    assert any("external-secrets/external-secrets has no proxy" in r for r in eso.reasons)
    assert any("sre/vault:8200" in r and "STRICT via PeerAuthentication istio-system/default" in r
               for r in eso.reasons)


def test_strict_with_the_exceptions_breaks_nothing(with_exception: tuple[Plan, Path]) -> None:
    plan = with_exception[0]
    assert plan.phase("strict").breaking == []
    exceptions = plan.phase("exceptions")
    assert exceptions.status is PhaseStatus.PLANNED
    assert [o.ref for o in exceptions.objects] == [
        f"PeerAuthentication/sre/{n}-permissive" for n in ("vault", "portal", "api-gateway")]


def test_phases_are_planned_on_the_state_earlier_phases_leave(without_exception: tuple[Plan, Path]) -> None:
    plan = without_exception[0]
    assert plan.phase("exceptions").status is PhaseStatus.SKIPPED
    enrol = plan.phase("enrol")
    assert {r.workload for r in enrol.restarts} >= {"sre/portal", "sre/vault"}
    assert all(r.pods >= 1 for r in enrol.restarts)
    assert {o.change for o in enrol.objects} == {ChangeKind.UPDATE, ChangeKind.RESTART}
    # the apps meshed in `enrol` sniff for first bytes a server-first datastore never sends
    hangs = {f.flow.id for f in enrol.changed_flows if f.after.value == "hang"}
    assert "sre/incident-api -> sre/postgres-incidents:5432" in hangs
    # STRICT rejects plaintext only at servers `enrol` meshed: the vault restart is what makes ESO break
    assert plan.phase("control-plane").breaking == []


def test_diffs_come_from_the_server_where_it_can_judge_and_mask_secrets(
        without_exception: tuple[Plan, Path]) -> None:
    plan = without_exception[0]
    control = {o.ref: o for o in plan.phase("control-plane").objects}
    assert control["Namespace/istio-system"].source is DiffSource.SERVER
    # the istio-system namespace exists only in the simulation: the server cannot dry-run objects in it
    assert control["Deployment/istio-system/istiod"].source is DiffSource.SIMULATED
    assert control["Namespace/istio-system"].diff.startswith("--- /dev/null\n+++ b/Namespace/istio-system\n")
    assert "   labels:\n+    istio-injection: enabled\n" in plan.phase("enrol").objects[0].diff
    assert "cacerts" in control["Secret/istio-system/cacerts"].diff
    rendered = json.dumps(plan.to_dict()) + plan_markdown([plan])
    assert PLANTED not in rendered


def test_the_plan_reads_once_per_kind_and_writes_nothing(without_exception: tuple[Plan, Path]) -> None:
    plan, tmp = without_exception
    verbs = {key.split(" ", 1)[0] for key in plan.requests}
    assert verbs <= {"list", "apply", "patch"}
    assert sum(n for k, n in plan.requests.items() if k.startswith("list ")) == len(snapshot_kinds())
    changed = sum(len(p.objects) for p in plan.phases)
    dry_runs = sum(n for k, n in plan.requests.items() if not k.startswith("list "))
    served = sum(1 for p in plan.phases for o in p.objects if o.source is DiffSource.SERVER)
    assert served <= dry_runs <= changed
    spec = load_inventory(tmp / "inventory").clusters["demo"]
    with connect(spec, tmp / "state") as live:
        assert live.get(ObjectRef("v1", "Namespace", "", "istio-system")) is None
        labels = (live.get(ObjectRef("v1", "Namespace", "", "sre")) or {})["metadata"].get("labels") or {}
        assert "istio-injection" not in labels


def test_json_and_markdown_shapes(without_exception: tuple[Plan, Path]) -> None:
    plan = without_exception[0]
    data = json.loads(json.dumps(plan.to_dict()))
    assert data["schema"] == SCHEMA and data["cluster"] == "demo"
    strict = next(p for p in data["phases"] if p["name"] == "strict")
    assert sorted(f["id"] for f in strict["flows"] if f["breaks"]) == sorted([ESO_VAULT, INGRESS_PORTAL,
                                                                            INGRESS_GATEWAY])
    assert set(data["breaking"]) >= {ESO_VAULT, INGRESS_PORTAL, INGRESS_GATEWAY}
    eso = next(f for f in strict["flows"] if f["id"] == ESO_VAULT)
    assert {k: eso[k] for k in ("before", "after", "transition", "breaks", "accepted", "origin")} == {
        "before": "ok", "after": "reset", "transition": "ok → reset", "breaks": True, "accepted": False,
        "origin": "inventory"}
    text = plan_markdown([plan])
    assert "### Phase 4: strict" in text and f"| {ESO_VAULT} | http | inventory | ok → reset | **BREAKS** |" in text


def test_checkpoint_outcomes_are_predicted_for_checks_that_need_live_traffic(
        without_exception: tuple[Plan, Path], with_exception: tuple[Plan, Path]) -> None:
    [failing] = without_exception[0].phase("strict").checks
    assert (failing.status, failing.basis) == (Status.FAIL, CheckBasis.PREDICTED)
    assert failing.summary == f"predicted: {ESO_VAULT} (reset, expected ok)"
    assert without_exception[0].phase("strict").decision == "pause"
    [passing] = with_exception[0].phase("strict").checks
    assert (passing.status, passing.basis) == (Status.PASS, CheckBasis.PREDICTED)
