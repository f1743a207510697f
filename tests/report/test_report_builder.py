"""A run's journal becomes its verification report, written at every pause and at the end of the run."""

from __future__ import annotations

import json
import stat
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from runbook_engine.engine.connect import Connector, fixed_connector
from runbook_engine.engine.journal import RunRecord, RunStatus, RunStore, Stage
from runbook_engine.engine.modules import catalog
from runbook_engine.engine.report_builder import (
    Platform,
    PlatformScope,
    ReportContext,
    build_report,
    flow_rows,
    last_phase_status,
    load_context,
    mesh_wide_mtls,
    observe_platform,
    observed_flows,
    phase_status,
    save_platform,
    saved_platform,
    stale_checks,
    workload_rows,
)
from runbook_engine.engine.report_files import AutoReports, report_dir
from runbook_engine.engine.run_model import RunOptions, RunResult
from runbook_engine.engine.runner import Engine
from runbook_engine.errors import ClusterError
from runbook_engine.files import write_atomic
from runbook_engine.kube.flow import Flow
from runbook_engine.kube.memory import MemoryCluster
from runbook_engine.mesh import MeshView
from runbook_engine.report.jsonout import load_schema
from runbook_engine.report.model import Membership
from runbook_engine.report.render import Format, render
from runbook_engine.report.verdict import Status, Verdict
from runbook_engine.spec.inventory import load_inventory
from runbook_engine.spec.loader import load_playbook

from .helpers import PLANTED, ROLLOUT, rollout_cluster, rollout_specs

FILES = ("report.md", "report.html", "report.json", "report.junit.xml")
GATE = "PAUSED before workers / ingress / STRICT"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RunStore]:
    s = RunStore(tmp_path / ".runbook")
    yield s
    s.close()


@pytest.fixture
def cluster() -> MemoryCluster:
    return rollout_cluster()


@pytest.fixture
def written() -> list[Path]:
    return []


def reporting_engine(store: RunStore, cluster: MemoryCluster, written: list[Path], errors: list[str]) -> Engine:
    reports = AutoReports(store, fixed_connector({"lab": cluster}), on_written=written.append, on_error=errors.append)
    return Engine(store, connect=reports.connect, sink=reports)


@pytest.fixture
def engine(store: RunStore, cluster: MemoryCluster, written: list[Path]) -> Iterator[Engine]:
    errors: list[str] = []
    yield reporting_engine(store, cluster, written, errors)
    assert errors == []


def run(engine: Engine, **extra: str) -> RunResult:
    playbook, inventory = rollout_specs()
    [result] = engine.run(playbook, inventory, RunOptions(extra_vars=extra))
    return result


def read(store: RunStore, run_id: str, name: str) -> str:
    assert store.directory is not None
    return (report_dir(store.directory, run_id) / name).read_text()


def phases_table(markdown: str) -> dict[str, str]:
    section = markdown.split("## Phases", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1:3] for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    return {name.strip(): status.strip() for name, status in rows[1:]}


# -- end to end: a run that pauses, rolls back, completes --------------------------------------------------
def test_a_paused_run_writes_four_reports_atomically(engine: Engine, store: RunStore, written: list[Path]) -> None:
    result = run(engine)
    assert result.status is RunStatus.PAUSED
    assert store.directory is not None
    directory = report_dir(store.directory, result.run_id)
    assert written == [directory]
    assert sorted(p.name for p in directory.iterdir()) == sorted(FILES)  # no temporary files left behind
    for name in FILES:
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_markdown_reads_like_a_verification_document(engine: Engine, store: RunStore) -> None:
    md = read(store, run(engine).run_id, "report.md")
    assert md.startswith("# Istio sidecar rollout (PERMISSIVE)\n")
    assert "- **Cluster:** lab (in-memory)" in md and "- **Window:** 2026-11-23 22:00 to 23:59 UTC" in md
    assert ("**STATE:** PAUSED: mTLS PERMISSIVE; 1 workload meshed, 1 excluded, 1 not meshed yet; no outages "
            "(2 flows as expected); paused before phase workers; remaining: workers, strict") in md
    assert f"> Paused: {GATE}" in md
    assert phases_table(md) == {"preflight": "completed", "enrol": "completed", "workers": "paused",
                                "strict": "pending"}
    assert "| enrol | completed | 2 |" in md  # the namespace label and the Secret
    sections = [line for line in md.splitlines() if line.startswith("## ")]
    assert sections == ["## Phases", "## Platform", "## Foundation", "## Identity", "## Reachability", "## Hygiene",
                        "## Honest assessment"]
    assessment = md.split("## Honest assessment", 1)[1]
    assert "### Working\n\n- istiod ready: istiod 1.24.2 ready\n- flows reachable:" in assessment
    assert "### Flagged or clarified (correct, but worth knowing)\n\n- shared identities:" in assessment
    assert "### Pre-existing, not caused by the rollout\n\n- pods healthy: sre/report-worker" in assessment
    assert "### Deliberately not done yet\n\n- phase workers\n- phase strict" in assessment


def test_platform_picture_classifies_workloads_and_labels_predicted_flows(engine: Engine, store: RunStore) -> None:
    data = json.loads(read(store, run(engine).run_id, "report.json"))
    membership = {f"{w['namespace']}/{w['name']}": (w["membership"], w["form"]) for w in data["workloads"]}
    assert membership == {
        "sre/api": ("meshed", "native sidecar"),
        "sre/postgres": ("excluded", "no proxy"),
        "sre/worker": ("not-meshed", "no proxy (restart pending)"),  # the namespace is labelled, the pod is old
        "keycloak/keycloak": ("outside", "no proxy"),
    }
    flows = {f["id"]: f for f in data["flows"]}
    assert flows["keycloak/keycloak -> sre/api:8080"]["reasons"] == [
        "observed ok by probe pod (HTTP 200) in check 'flows reachable' of phase enrol"]
    predicted = flows["sre/worker -> sre/postgres:5432"]
    assert predicted["outcome"] == "ok" and predicted["reasons"][0].startswith("predicted")


def test_json_validates_and_junit_shows_each_checkpoint(engine: Engine, store: RunStore) -> None:
    run_id = run(engine).run_id
    data = json.loads(read(store, run_id, "report.json"))
    jsonschema.validate(data, load_schema())
    assert data["status"] == "paused" and data["paused_reason"] == GATE
    root = ET.fromstring(read(store, run_id, "report.junit.xml"))
    assert {s.get("name"): s.get("tests") for s in root.iter("testsuite")} == {
        "preflight": "2", "enrol": "2", "workers": "0", "strict": "0"}
    assert "Istio sidecar rollout" in read(store, run_id, "report.html")


def test_a_rolled_back_phase_is_reported_with_its_failure(engine: Engine, store: RunStore) -> None:
    result = run(engine, flows_status="fail", flows_outcome="reset")
    assert result.status is RunStatus.ROLLED_BACK
    md = read(store, result.run_id, "report.md")
    assert phases_table(md) == {"preflight": "completed", "enrol": "rolled_back", "workers": "pending",
                                "strict": "pending"}
    assert "2 changes reverted" in md
    # the checkpoint saw the reset; the rollback changed the cluster since, so the picture predicts anew
    assert ("**STATE:** ROLLED BACK: mTLS PERMISSIVE; 1 workload meshed, 1 excluded, 1 not meshed yet; no outages "
            "(2 flows as expected); rolled back: enrol; remaining: workers, strict") in md
    assert ("predicted from the live objects, which changed since it was observed reset by probe pod in check "
            "'flows reachable' of phase enrol") in md
    assert "### Not working\n\n- flows reachable: keycloak/keycloak -> sre/api:8080 reset" in md


def test_the_report_is_rewritten_when_the_resumed_run_completes(engine: Engine, store: RunStore) -> None:
    run_id = run(engine).run_id
    result = engine.resume(run_id)
    assert result.status is RunStatus.COMPLETED
    md = read(store, run_id, "report.md")
    assert md.startswith("# Istio sidecar rollout (STRICT)\n")
    assert set(phases_table(md).values()) == {"completed"}
    # keycloak has no proxy: under STRICT the meshed api refuses it (predicted, the cluster changed since enrol)
    assert "1 outage (keycloak/keycloak -> sre/api:8080 reset); no phase remaining" in md
    assert "### Deliberately not done yet\n\n- (none)" in md


def test_a_planted_secret_value_is_absent_from_every_format(engine: Engine, store: RunStore) -> None:
    # the check's evidence prints the seeded Secret's value; the `enrol` phase applies another Secret
    run_id = run(engine, evidence_output=f"password={PLANTED[0]}").run_id
    assert "password=***" in read(store, run_id, "report.md")  # masked, not dropped: the evidence stays readable
    for name in FILES:
        text = read(store, run_id, name)
        for value in PLANTED:
            assert value not in text, f"{value} leaked into {name}"


class NoMeshPolicies(MemoryCluster):
    """A cluster whose API refuses to list PeerAuthentications (the report reads them; the run does not)."""

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None) -> list[dict[str, Any]]:
        if kind == "PeerAuthentication":
            raise ClusterError("peerauthentications.security.istio.io is forbidden", status=403)
        return super().list(api_version, kind, namespace, label_selector)


def test_a_report_that_cannot_be_written_never_changes_how_the_run_ended(store: RunStore) -> None:
    errors: list[str] = []
    cluster = NoMeshPolicies(yaml.safe_load((ROLLOUT / "cluster.yaml").read_text()), name="lab")
    result = run(reporting_engine(store, cluster, [], errors))
    assert result.status is RunStatus.PAUSED
    assert errors == [f"the report of run {result.run_id} was not written: "
                      "peerauthentications.security.istio.io is forbidden"]


def test_rollback_by_run_id_rewrites_the_report(engine: Engine, store: RunStore, written: list[Path]) -> None:
    run_id = run(engine).run_id
    result = engine.rollback(run_id)
    assert result.status is RunStatus.ROLLED_BACK and len(written) == 2
    md = read(store, run_id, "report.md")
    assert phases_table(md)["enrol"] == "rolled_back"
    assert "| sre | worker | not-meshed | no proxy |" in md  # observed after the namespace label was removed


def test_a_dry_run_writes_no_report(engine: Engine, written: list[Path]) -> None:
    playbook, inventory = rollout_specs()
    engine.run(playbook, inventory, RunOptions(check=True))
    assert written == []


def test_rebuilding_from_the_journal_gives_the_same_report(engine: Engine, store: RunStore) -> None:
    run_id = run(engine).run_id
    rebuilt = json.loads(render(build_report(store, run_id, load_context(store.get_run(run_id))), Format.JSON))
    written = json.loads(read(store, run_id, "report.json"))
    assert {k: v for k, v in rebuilt.items() if k != "generated_at"} == {
        k: v for k, v in written.items() if k != "generated_at"}


# -- the parts ------------------------------------------------------------------------------------------------
PHASE_CASES = yaml.safe_load((ROLLOUT.parent / "phase_status.yaml").read_text())


def _record(run: dict[str, Any]) -> RunRecord:
    return RunRecord(id="r1", playbook="p.yml", playbook_hash="", inventory="inv", cluster="lab",
                     status=RunStatus(run["status"]), phase_index=run["phase_index"], current_phase="",
                     stage=Stage(run["stage"]), paused_reason=run.get("reason", ""), options={}, fingerprint={},
                     owner="", created="", updated="")


@pytest.mark.parametrize("case", PHASE_CASES["cases"], ids=lambda c: c["name"])
def test_phase_status_follows_the_run_and_its_events(case: dict[str, Any]) -> None:
    record = _record(case["run"])
    events = [{"kind": kind, "phase": phase, "message": ""} for kind, phase in case["events"]]
    found = last_phase_status(events)
    got = {name: phase_status(i, name, record, found) for i, name in enumerate(PHASE_CASES["phases"])}
    assert {name: status.value for name, (status, _) in got.items()} == case["expect"]
    for name, note in (case.get("notes") or {}).items():
        assert got[name][1] == note


def _view(*objects: dict[str, Any]) -> MeshView:
    return MeshView.build(objects)


ISTIOD = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "istiod", "namespace": "istio-system",
          "labels": {"app": "istiod"}}, "spec": {"template": {"spec": {"containers": [{"name": "discovery"}]}}}}


def _pa(mode: str, namespace: str = "istio-system", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
            "metadata": {"name": f"pa-{namespace}-{mode.lower()}", "namespace": namespace},
            "spec": {"mtls": {"mode": mode}, **spec}}


@pytest.mark.parametrize(("objects", "expected"), [
    ((), "none"),
    ((ISTIOD,), "PERMISSIVE"),
    ((ISTIOD, _pa("STRICT")), "STRICT"),
    ((ISTIOD, _pa("UNSET")), "PERMISSIVE"),
    ((ISTIOD, _pa("STRICT", "sre")), "PERMISSIVE"),  # a namespace policy is not mesh-wide
    ((ISTIOD, _pa("STRICT", selector={"matchLabels": {"app": "x"}})), "PERMISSIVE"),  # nor a workload one
], ids=["no mesh", "istio default", "strict", "unset inherits default", "namespace only", "selector ignored"])
def test_mesh_wide_mtls_mode(objects: tuple[dict[str, Any], ...], expected: str) -> None:
    assert mesh_wide_mtls(_view(*objects)) == expected


def _verdict(flows: list[dict[str, Any]], title: str = "flows") -> Verdict:
    return Verdict("flows_reachable", title, Status.PASS, "", data={"flows": flows})


def test_observed_flow_outcomes_win_over_predictions_and_the_latest_observation_counts() -> None:
    view = MeshView.build(yaml.safe_load((ROLLOUT / "cluster.yaml").read_text()))
    flow = Flow.model_validate({"from": "keycloak/keycloak", "to": "sre/api:8080", "expect": "ok"})
    earlier = _verdict([{"flow": flow.id, "how": "probe pod", "outcome": "ok", "http_code": "200"}])
    later = _verdict([{"flow": flow.id, "how": "probe pod", "outcome": "reset", "http_code": "000"}], "again")
    [row] = flow_rows(view, [flow], observed_flows([(earlier, "enrol"), (later, "strict")]))
    assert (row.outcome, row.as_expected) == ("reset", False)
    assert row.reasons == ("observed reset by probe pod in check 'again' of phase strict",)


def test_an_observation_older_than_the_last_change_gives_way_to_a_prediction() -> None:
    events = [{"seq": 1, "kind": "check_result", "phase": "enrol", "task": "flows"},
              {"seq": 2, "kind": "change", "phase": "strict", "task": "mesh-wide STRICT"},
              {"seq": 3, "kind": "check_result", "phase": "strict", "task": "healthy"}]
    assert stale_checks(events) == {("enrol", "flows")}
    view = MeshView.build(yaml.safe_load((ROLLOUT / "cluster.yaml").read_text()))
    flow = Flow.model_validate({"from": "keycloak/keycloak", "to": "sre/api:8080", "expect": "ok"})
    seen = observed_flows([(_verdict([{"flow": flow.id, "how": "probe pod", "outcome": "reset"}]), "enrol")],
                          stale_checks(events))
    [predicted] = flow_rows(view, [flow], seen)
    assert predicted.outcome == "ok"  # PERMISSIVE: the live objects say the reset is gone
    assert predicted.reasons[0] == ("predicted from the live objects, which changed since it was observed reset "
                                    "by probe pod in check 'flows' of phase enrol")
    [shown] = flow_rows(None, [flow], seen)  # without the cluster, the old observation is all there is
    assert shown.outcome == "reset" and shown.reasons[0].endswith(", before later changes")


def test_a_check_that_only_predicted_a_flow_is_predicted_again_from_the_live_objects() -> None:
    view = MeshView.build(yaml.safe_load((ROLLOUT / "cluster.yaml").read_text()))
    flow = Flow.model_validate({"from": "kubelet", "to": "sre/api:8080", "path": "/healthz"})
    entry = {"flow": flow.id, "how": "predicted", "outcome": "ok"}
    [row] = flow_rows(view, [flow], observed_flows([(_verdict([entry]), "enrol")]))
    assert row.reasons[0] == "predicted from the live objects, not exercised"
    [bare] = flow_rows(None, [flow], observed_flows([(_verdict([entry]), "enrol")]))
    assert bare.reasons == ("predicted by check 'flows' of phase enrol, not exercised",)


def test_excluded_workloads_by_selector_and_by_name() -> None:
    objects = yaml.safe_load((ROLLOUT / "cluster.yaml").read_text())
    context = ReportContext(variables={"mesh_namespaces": ["sre"], "excluded_workloads": ["sre/worker"],
                                       "excluded_selector": "app=api"})
    rows = {w.name: w.membership for w in workload_rows(MeshView.build(objects), PlatformScope.from_context(context))}
    # api carries a proxy: meshed wins over a selector meaning "keep out"; the opted-out postgres is excluded
    assert rows == {"api": Membership.MESHED, "postgres": Membership.EXCLUDED, "worker": Membership.EXCLUDED}


def test_platform_round_trips_through_the_journal(store: RunStore, cluster: MemoryCluster) -> None:
    playbook, inventory = rollout_specs()
    platform = observe_platform(cluster, ReportContext.of(playbook, inventory, "lab"), {})
    record = store.create_run(playbook="p", playbook_hash="", inventory="i", cluster="lab", options={})
    save_platform(store, record.id, platform)
    assert saved_platform(store, record.id) == platform
    assert isinstance(platform, Platform) and platform.mtls == "PERMISSIVE"


def test_write_atomic_replaces_the_file_whole_with_mode_0600(tmp_path: Path) -> None:
    target = tmp_path / "report.md"
    target.write_text("old")
    target.chmod(0o644)
    write_atomic(target, "new report\n")
    assert target.read_text() == "new report\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


@pytest.mark.slow
def test_the_demo_rollout_on_the_sandbox_leaves_a_valid_report(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    state = tmp_path / ".runbook"
    store = RunStore(state)
    errors: list[str] = []
    reports = AutoReports(store, Connector(state), on_error=errors.append)
    playbook = load_playbook(repo / "playbooks" / "istio-sidecar-spire.yml", catalog=catalog())
    try:
        [result] = Engine(store, connect=reports.connect, sink=reports).run(
            playbook, load_inventory(repo / "inventory" / "demo"), RunOptions())
        data = json.loads(read(store, result.run_id, "report.json"))
    finally:
        store.close()
    assert errors == []
    jsonschema.validate(data, load_schema())
    assert data["status"] == result.status.value and data["cluster"].startswith("demo")
    assert data["state"].startswith(result.status.value.upper().replace("_", " ") + ": mTLS ")
    assert {w["name"] for w in data["workloads"] if w["membership"] == "excluded"} >= {"redis", "neo4j"}
    assert len(data["flows"]) == len(load_inventory(repo / "inventory" / "demo").flows_for("demo"))
