"""The verification report reads like an engineer's document and its machine twins are valid."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from runbook_engine.report.jsonout import load_schema, report_to_dict
from runbook_engine.report.model import FlowRow, Membership, PhaseReport, PhaseStatus, RunReport, WorkloadRow
from runbook_engine.report.render import Format, render
from runbook_engine.report.verdict import Evidence, Section, Status, Verdict

ARTIFACTS = Path(os.environ.get("RUNBOOK_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))


def _v(check: str, title: str, status: Status, section: Section, summary: str) -> Verdict:
    return Verdict(
        check=check,
        title=title,
        status=status,
        summary=summary,
        hint="restart the pod" if status is Status.FAIL else "",
        section=section,
        purpose=f"prove {title.lower()}",
        evidence=(Evidence("kubectl -n istio-system get deploy istiod", "istiod   1/1   1   1   5m"),),
    )


@pytest.fixture()
def report() -> RunReport:
    preflight = PhaseReport(
        "preflight",
        PhaseStatus.COMPLETED,
        (_v("pods_healthy", "Pods healthy", Status.PREEXISTING, Section.HYGIENE, "sre/report-worker crash-looping"),),
    )
    control = PhaseReport(
        "control-plane",
        PhaseStatus.COMPLETED,
        (
            _v("istiod_ready", "istiod ready", Status.PASS, Section.FOUNDATION, "istiod 1.24.2 ready"),
            _v("shared_sa", "Shared identities", Status.FLAG, Section.IDENTITY, "2 workloads share sa default"),
            _v("flows", "ESO to Vault", Status.FAIL, Section.REACHABILITY, "reset <script>alert(1)</script>"),
        ),
        changes=4,
    )
    strict = PhaseReport("strict", PhaseStatus.PENDING)
    return RunReport(
        run_id="r-20261123-1",
        title="Istio + SPIRE rollout (PERMISSIVE)",
        playbook="playbooks/istio-sidecar-spire.yml",
        cluster="demo",
        status="paused",
        started_at="2026-11-23T15:00:00Z",
        paused_reason="PAUSED before workers / ingress / STRICT",
        phases=(preflight, control, strict),
        workloads=(
            WorkloadRow("sre", "api", membership=Membership.MESHED, form="native sidecar"),
            WorkloadRow("sre", "vault", "StatefulSet", Membership.EXCLUDED),
        ),
        flows=(
            FlowRow("external-secrets/eso -> sre/vault:8200", "external-secrets/eso", "sre/vault:8200", "http",
                    "reset", "ok", ("caller has no proxy", "sre/vault:8200 is STRICT")),
            FlowRow("sre/api -> sre/vault:8200", "sre/api", "sre/vault:8200", "http", "ok", "ok"),
        ),
    )


def test_markdown_has_sections_state_and_honest_assessment(report: RunReport) -> None:
    md = render(report, Format.MARKDOWN)
    assert md.startswith("# Istio + SPIRE rollout (PERMISSIVE)")
    assert "**STATE:** PAUSED: 1 workloads meshed, 1 excluded; 1 unexpected flow outcomes; remaining: strict" in md
    sections = [line for line in md.splitlines() if line.startswith("## ")]
    assert sections.index("## Foundation") < sections.index("## Identity") < sections.index("## Hygiene")
    assessment = md.split("## Honest assessment", 1)[1]
    assert "### Not working\n\n- ESO to Vault" in assessment
    assert "### Pre-existing, not caused by the rollout\n\n- Pods healthy: sre/report-worker" in assessment
    assert "### Flagged or clarified (correct, but worth knowing)\n\n- Shared identities" in assessment
    assert "### Deliberately not done yet\n\n- phase strict" in assessment
    assert "$ kubectl -n istio-system get deploy istiod" in md
    assert "*Fix:* restart the pod" in md


def test_json_validates_against_the_published_schema(report: RunReport) -> None:
    data = json.loads(render(report, Format.JSON))
    jsonschema.validate(data, load_schema())
    assert data["assessment"]["preexisting"] == ["Pods healthy: sre/report-worker crash-looping"]
    assert data["flows"][0]["as_expected"] is False


def test_schema_rejects_an_unknown_verdict_status(report: RunReport) -> None:
    data = report_to_dict(report)
    data["phases"][1]["verdicts"][0]["status"] = "greenish"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, load_schema())


def test_junit_makes_checkpoints_visible_in_ci(report: RunReport) -> None:
    root = ET.fromstring(render(report, Format.JUNIT))
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert suites["control-plane"].get("failures") == "1"
    assert suites["preflight"].get("skipped") == "1"
    failure = root.find(".//testcase[@name='ESO to Vault']/failure")
    assert failure is not None and "restart the pod" in (failure.text or "")


def test_html_escapes_output_and_embeds_the_platform_picture(report: RunReport) -> None:
    html = render(report, Format.HTML)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<svg" in html and 'stroke-dasharray="5,3"' in html  # the unexpected flow is dashed


@pytest.mark.chromium
def test_html_report_renders_in_headless_chromium(report: RunReport, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium is not installed (Debian package 'chromium'); .ci/run installs it")
    page = tmp_path / "report.html"
    page.write_text(render(report, Format.HTML))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1600", f"--screenshot={shot}"]
    subprocess.run([chromium, *flags, page.as_uri()], capture_output=True, timeout=120, check=False)
    assert shot.exists() and shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
