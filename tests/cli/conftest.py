"""Fixtures for CLI tests: the ``runbook`` command run in-process against a MemoryCluster."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from click.testing import CliRunner
from engine.helpers import seed_objects

from runbook_engine.cli import main as cli_main
from runbook_engine.engine.connect import existing_cluster
from runbook_engine.kube.cluster import Cluster
from runbook_engine.kube.memory import MemoryCluster
from runbook_engine.spec.model import ClusterSpec


class Invocation:
    """Runs ``runbook`` with arguments; returns (exit code, stdout+stderr)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def __call__(self, *args: str) -> tuple[int, str]:
        runner = CliRunner()
        result = runner.invoke(cli_main.cli, ["--state-dir", str(self.state_dir), *args], standalone_mode=False,
                               catch_exceptions=True)
        if result.exception is not None:
            code = cli_main.report_error(result.exception)  # the same mapping ``main`` applies
            return code, result.output + str(result.exception)
        return int(result.return_value), result.output


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[MemoryCluster]:
    memory = MemoryCluster(seed_objects(), name="lab")

    class _Connector:
        def __init__(self, state_dir: Path) -> None:
            self.state_dir = state_dir

        def __call__(self, spec: ClusterSpec) -> AbstractContextManager[Cluster]:
            return existing_cluster(memory)

    monkeypatch.setattr(cli_main, "Connector", _Connector)
    yield memory


@pytest.fixture
def runbook(tmp_path: Path) -> Invocation:
    return Invocation(tmp_path / ".runbook")
