"""``runbook run`` writes the report when it pauses; ``runbook report RUN_ID`` prints it in any format."""

from __future__ import annotations

import json
import re
import stat
import xml.etree.ElementTree as ET
from contextlib import AbstractContextManager
from pathlib import Path

import jsonschema
import pytest
from report.helpers import INVENTORY, PLANTED, PLAYBOOK, rollout_cluster

from runbook_engine.cli import main as cli_main
from runbook_engine.engine.connect import existing_cluster
from runbook_engine.kube.cluster import Cluster
from runbook_engine.report.jsonout import load_schema
from runbook_engine.spec.model import ClusterSpec

from .conftest import Invocation

EXIT_OK, EXIT_PAUSED, EXIT_INVALID = 0, 2, 4


@pytest.fixture
def paused_run(runbook: Invocation, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """Run the rollout case to its operator gate; returns (run id, what `runbook run` printed)."""
    memory = rollout_cluster()

    class _Connector:
        def __init__(self, state_dir: Path) -> None:
            self.state_dir = state_dir

        def __call__(self, spec: ClusterSpec) -> AbstractContextManager[Cluster]:
            return existing_cluster(memory)

    monkeypatch.setattr(cli_main, "Connector", _Connector)
    code, output = runbook("run", str(PLAYBOOK), "-i", str(INVENTORY), "-e", f"evidence_output={PLANTED[1]}")
    assert code == EXIT_PAUSED, output
    found = re.search(r"resume with: runbook resume (\S+)", output)
    assert found is not None, output
    return found.group(1), output


def test_run_prints_where_the_report_was_written(paused_run: tuple[str, str], runbook: Invocation) -> None:
    run_id, output = paused_run
    directory = runbook.state_dir / "reports" / run_id
    assert f"REPORT: {directory / 'report.md'}" in output
    assert stat.S_IMODE((directory / "report.md").stat().st_mode) == 0o600


def test_report_prints_valid_junit(paused_run: tuple[str, str], runbook: Invocation) -> None:
    code, output = runbook("report", paused_run[0], "--format", "junit")
    assert code == EXIT_OK
    root = ET.fromstring(output)
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert list(suites) == ["preflight", "enrol", "workers", "strict"]
    assert suites["preflight"].get("skipped") == "1"  # the pre-existing crash loop must not look green
    assert root.find(".//testcase[@name='istiod ready']") is not None


def test_report_writes_schema_valid_json_to_a_file(paused_run: tuple[str, str], runbook: Invocation,
                                                   tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.json"
    target.parent.mkdir()
    code, output = runbook("report", paused_run[0][:12], "-f", "json", "-o", str(target))  # a unique prefix
    assert code == EXIT_OK and f"written to {target}" in output
    data = json.loads(target.read_text())
    jsonschema.validate(data, load_schema())
    assert data["run_id"] == paused_run[0] and data["status"] == "paused"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_report_markdown_has_the_state_line_and_phases(paused_run: tuple[str, str], runbook: Invocation) -> None:
    code, output = runbook("report", paused_run[0])
    assert code == EXIT_OK
    assert "**STATE:** PAUSED: mTLS PERMISSIVE; 1 workload meshed," in output
    assert "| workers | paused | 0 | PAUSED before workers / ingress / STRICT |" in output
    assert "| strict | pending | 0 |  |" in output


@pytest.mark.parametrize("fmt", ["md", "html", "json", "junit"])
def test_no_format_shows_a_planted_secret_value(paused_run: tuple[str, str], runbook: Invocation,
                                                fmt: str) -> None:
    code, output = runbook("report", paused_run[0], "--format", fmt)
    assert code == EXIT_OK
    # the preflight check's evidence echoed the value of the Secret that the `enrol` phase applies
    assert "***" in output and PLANTED[1] not in output
    written = (runbook.state_dir / "reports" / paused_run[0]).iterdir()
    assert not [p.name for p in written if any(v in p.read_text() for v in PLANTED)]


def test_report_of_an_unknown_run_is_invalid_input(runbook: Invocation, tmp_path: Path) -> None:
    code, output = runbook("report", "no-such-run")
    assert code == EXIT_INVALID and "no run 'no-such-run'" in output


def test_report_to_a_missing_directory_names_it(paused_run: tuple[str, str], runbook: Invocation,
                                                tmp_path: Path) -> None:
    code, output = runbook("report", paused_run[0], "-o", str(tmp_path / "missing" / "r.md"))
    assert code == EXIT_INVALID and "does not exist" in output
