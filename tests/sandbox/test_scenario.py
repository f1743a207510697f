"""Scenario files: what loads, where a mistake is reported, and the demo platform as it settles."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from runbook_engine.errors import UserInputError, UserInputErrors
from runbook_engine.sandbox.controllers import ControllerManager, Timing
from runbook_engine.sandbox.runtime import DefaultRuntime
from runbook_engine.sandbox.scenario import load_scenario, parse_scenario
from runbook_engine.sandbox.store import Store

CASES = Path(__file__).parent / "cases"
ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "inventory" / "demo" / "scenario.yaml"
FAST = Timing(step=0.002, probe_period=0.5, backoff_base=0.02, backoff_cap=0.1)
ERROR_CASES = sorted((CASES / "scenario_errors").glob("*.yaml"))


def _expectation(path: Path) -> tuple[str, list[str]]:
    match = re.match(r"# expect: (\d+:\d+) (.*)", path.read_text().splitlines()[0])
    assert match, f"{path.name} needs a first line `# expect: <line>:<column> <text> | <text>`"
    return match.group(1), [part.strip() for part in match.group(2).split("|")]


@pytest.mark.parametrize("case", ERROR_CASES, ids=[p.stem for p in ERROR_CASES])
def test_a_mistake_is_reported_at_its_file_line_and_column(case: Path) -> None:
    where, fragments = _expectation(case)
    with pytest.raises(UserInputError) as caught:
        load_scenario(case)
    error = caught.value
    assert str(error.location) == f"{case}:{where}"
    assert error.hint
    for fragment in fragments:
        assert fragment in f"{error.message} {error.hint}"


def test_a_syntax_error_in_an_included_file_names_that_file() -> None:
    case = CASES / "scenarios" / "include_error"
    with pytest.raises(UserInputError) as caught:
        load_scenario(case / "scenario.yaml")
    assert caught.value.location is not None
    assert caught.value.location.file == str(case / "manifests.yaml")
    assert caught.value.location.line == 11


def test_every_mistake_is_reported_in_one_pass(tmp_path: Path) -> None:
    text = "name: two\nnodez: []\nflows:\n  - {from: sre/a, to: nowhere}\n"
    with pytest.raises(UserInputErrors) as caught:
        parse_scenario(text, tmp_path / "two.yaml")
    assert [(e.location.line, e.location.column) for e in caught.value.errors if e.location] == [(2, 1), (4, 23)]


def test_a_missing_scenario_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="cannot read scenario"):
        load_scenario(tmp_path / "absent.yaml")


def test_a_scenario_loads_inline_and_included_manifests_flows_and_faults() -> None:
    scenario = load_scenario(CASES / "scenarios" / "small" / "scenario.yaml")
    assert scenario.name == "small"
    assert [n.name for n in scenario.nodes] == ["node-a", "node-b"]
    kinds = Counter(m["kind"] for m in scenario.manifests)
    assert kinds == {"ConfigMap": 1, "Deployment": 3, "Service": 1}
    config = next(m for m in scenario.manifests if m["kind"] == "ConfigMap")
    assert config["data"]["restartedAt"] == "2026-01-01T00:00:00Z"  # timestamps stay strings
    assert [f.id for f in scenario.flows] == ["shop/web -> shop/api:8080", "shop/api -> external:db.example.com:5432"]
    assert scenario.faults[1] == {"api_error": {"status": 500, "verb": "patch", "probability": 0.3}}


def test_seeding_creates_nodes_namespaces_and_objects_and_keeps_existing_ones() -> None:
    scenario = load_scenario(CASES / "scenarios" / "small" / "scenario.yaml")
    store = Store()
    store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop"},
                  "data": {"mine": "yes"}})
    scenario.seed(store)
    scenario.seed(store)
    node = store.get("v1", "Node", "", "node-b")
    assert node is not None and node["metadata"]["labels"]["pool"] == "apps"
    assert node["status"]["nodeInfo"]["kubeletVersion"].startswith("v1.")
    assert store.get("v1", "Namespace", "", "shop") is not None  # implied by the manifests
    assert store.get("v1", "ConfigMap", "shop", "settings")["data"] == {"mine": "yes"}  # type: ignore[index]
    assert len(store.list("apps/v1", "Deployment", "shop")) == 3


def _settled_demo() -> tuple[Store, list[dict[str, Any]]]:
    scenario = load_scenario(DEMO)
    store = Store()
    manager = ControllerManager(store, DefaultRuntime(), timing=FAST, faults=scenario.faults)
    scenario.seed(store)
    manager.settle(timeout=30)
    manager.stop()
    return store, store.list("v1", "Pod")


def test_the_demo_platform_settles_with_its_workloads_and_the_crash_looping_worker() -> None:
    scenario = load_scenario(DEMO)
    assert len(scenario.nodes) == 6 and scenario.name == "demo"
    store, pods = _settled_demo()
    sre_services = {s["metadata"]["name"] for s in store.list("v1", "Service", "sre")}
    apps = {"portal", "api-gateway", "incident-api", "runbook-api", "alert-router", "oncall-scheduler",
            "postmortem-service", "status-page", "knowledge-graph"}
    assert apps | {"incident-api-canary", "vault", "neo4j", "redpanda", "redis", "postgres-incidents",
                   "postgres-runbooks", "postgres-temporal", "temporal"} <= sre_services
    vault = store.get("apps/v1", "StatefulSet", "sre", "vault")
    assert vault is not None and vault["status"]["readyReplicas"] == 3
    assert {p["containerPort"] for p in vault["spec"]["template"]["spec"]["containers"][0]["ports"]} >= {8200}
    accounts = Counter(
        d["spec"]["template"]["spec"].get("serviceAccountName") for d in store.list("apps/v1", "Deployment", "sre")
        if d["metadata"]["name"] in apps
    )
    assert accounts["default"] >= 2
    assert store.list("apps/v1", "Deployment", "istio-system") == []  # istiod is not installed yet
    eso = [p for p in pods if p["metadata"]["namespace"] == "external-secrets"]
    assert eso and all(p["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false" for p in eso)
    external = {f.to for f in scenario.flows if f.is_external_destination}
    assert external == {"external:db-postgresql.example.com:25060", "external:db-postgresql.example.com:25061"}

    unready = [p for p in pods if not any(c["type"] == "Ready" and c["status"] == "True"
                                          for c in p["status"]["conditions"])]
    assert [p["metadata"]["name"].rsplit("-", 2)[0] for p in unready] == ["report-worker"]
    worker = unready[0]["status"]["containerStatuses"][0]
    assert worker["state"]["waiting"]["reason"] == "CrashLoopBackOff" and worker["restartCount"] >= 1
    assert len({p["spec"]["nodeName"] for p in pods}) == 6
    proxies = [p for p in pods if p["metadata"]["name"].startswith("kube-proxy-")]
    assert len(proxies) == 6 and all(p["status"]["podIP"] == p["status"]["hostIP"] for p in proxies)
    endpoints = store.get("v1", "Endpoints", "sre", "portal")
    assert endpoints is not None and len(endpoints["subsets"][0]["addresses"]) == 3
