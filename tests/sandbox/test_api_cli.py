"""``runbook sandbox up --detach`` / ``down`` / ``reset``: a background sandbox whose state survives
a restart with the same ``--state``, seeded from its scenario (objects and API faults)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

SCENARIO = Path(__file__).parent / "api_cases" / "small_scenario.yaml"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    runbook = [sys.executable, "-c", "from runbook_engine.cli.main import main; main()"]
    return subprocess.run([*runbook, "sandbox", *args], capture_output=True, text=True, timeout=120, check=False)


def _core(state: Path) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(config_file=str(state / "kubeconfig")))


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "state"
    yield path
    if (path / "sandbox.pid").exists():
        _cli("down", "--state", str(path))


@pytest.mark.slow
def test_detached_sandbox_keeps_state_across_down_and_up(state: Path) -> None:
    started = _cli("up", "--scenario", str(SCENARIO), "--state", str(state), "--detach")
    assert started.returncode == 0, started.stderr
    assert "sandbox running in the background" in started.stdout
    core = _core(state)
    assert core.read_namespaced_config_map("settings", "sre").data == {"mode": "permissive"}
    with pytest.raises(ApiException) as fault:  # the scenario's API fault: the first delete fails
        core.delete_namespaced_config_map("settings", "sre")
    assert fault.value.status == 503
    core.create_namespaced_config_map("sre", {"metadata": {"name": "added"}, "data": {"k": "v"}})
    again = _cli("up", "--state", str(state), "--detach")
    assert again.returncode != 0 and "already running" in again.stderr

    stopped = _cli("down", "--state", str(state))
    assert stopped.returncode == 0, stopped.stderr
    assert not (state / "sandbox.pid").exists()
    assert _cli("up", "--scenario", str(SCENARIO), "--state", str(state), "--detach").returncode == 0
    core = _core(state)
    assert core.read_namespaced_config_map("added", "sre").data == {"k": "v"}
    assert _cli("down", "--state", str(state)).returncode == 0

    wiped = _cli("reset", "--state", str(state))
    assert wiped.returncode == 0 and not state.exists()


def test_down_without_a_running_sandbox_is_an_error(tmp_path: Path) -> None:
    result = _cli("down", "--state", str(tmp_path / "nothing"))
    assert result.returncode == 4 and "no sandbox is running" in result.stderr  # invalid input: nothing changed
