"""Helpers of the end-to-end acceptance tests: drive the ``runbook`` CLI as a user would.

Every test runs the installed ``runbook`` command in a subprocess with its own journal directory
(``--state-dir``), so the embedded sandbox of the inventory keeps its state under
``<state>/sandbox/<cluster>/`` and a later ``runbook resume`` in a new process finds the cluster as
the paused run left it. ``RUNBOOK_E2E_CLI`` overrides the command (e.g. ``"python -m ..."``).

After a run, ``Platform.open`` starts the sandbox again from that state (without running anything)
so a test can look at the cluster through the official ``kubernetes`` client.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.dynamic import DynamicClient

from runbook_engine.sandbox.server import SandboxServer

REPO = Path(__file__).resolve().parents[2]
E2E = Path(__file__).resolve().parent
PLAYBOOKS = REPO / "playbooks"
CLI_TIMEOUT_S = 400
RESUME_HINT = re.compile(r"runbook resume (\S+)")


def runbook_command() -> list[str]:
    override = os.environ.get("RUNBOOK_E2E_CLI")
    if override:
        return shlex.split(override)
    return [str(Path(sys.executable).parent / "runbook")]


@dataclass(frozen=True)
class Result:
    code: int
    output: str

    @property
    def run_id(self) -> str:
        found = RESUME_HINT.search(self.output)
        assert found, f"no `runbook resume RUN_ID` hint in the output:\n{self.output[-3000:]}"
        return found.group(1)


@dataclass(frozen=True)
class Platform:
    """One rehearsal: an inventory, the journal directory, and the cluster's scenario."""

    inventory: Path
    state: Path
    scenario: Path
    cluster: str = "demo"

    def runbook(self, *args: str) -> Result:
        proc = subprocess.run(
            [*runbook_command(), "--state-dir", str(self.state), *args],
            cwd=REPO, capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False,
        )
        return Result(proc.returncode, proc.stdout + proc.stderr)

    def run(self, playbook: str, *extra: str) -> Result:
        return self.runbook("run", str(PLAYBOOKS / playbook), "-i", str(self.inventory), *extra)

    def settle(self) -> None:
        """Let the freshly seeded platform reach its steady state before the rollout's baseline."""
        result = self.runbook("run", str(E2E / "playbooks" / "settle.yml"), "-i", str(self.inventory))
        assert result.code == 0, result.output[-3000:]

    def status(self, run_id: str | None = None) -> dict[str, Any]:
        """``runbook status --json`` of a run (the latest when ``run_id`` is None)."""
        result = self.runbook("status", *([run_id] if run_id else []), "--json")
        assert result.code == 0, result.output
        loaded: dict[str, Any] = json.loads(result.output)
        return loaded

    @contextmanager
    def open(self) -> Iterator[DynamicClient]:
        """The cluster as the runs left it, through the kubernetes dynamic client."""
        with SandboxServer(self.state / "sandbox" / self.cluster, scenario=self.scenario) as server:
            api = config.new_client_from_config(config_file=str(server.kubeconfig))  # type: ignore[no-untyped-call]
            try:
                yield DynamicClient(api)  # type: ignore[no-untyped-call]
            finally:
                api.close()


def printed(output: str, title: str) -> str:
    """The verdict the CLI printed for the check titled ``title`` (PASS, FLAG, PREEXISTING...)."""
    found = re.search(rf"^\s*([A-Z_]+)\s+{re.escape(title)}:", output, re.MULTILINE)
    assert found, f"no verdict printed for {title!r}"
    return found.group(1)


def verdicts(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The last checkpoint's verdicts of a run, by check title."""
    return {str(v["title"]): v for v in status.get("verdicts") or []}


def resource(dyn: DynamicClient, api_version: str, kind: str) -> Any:
    return dyn.resources.get(api_version=api_version, kind=kind)


def exists(dyn: DynamicClient, api_version: str, kind: str, namespace: str, name: str) -> bool:
    try:
        resource(dyn, api_version, kind).get(name=name, namespace=namespace)
    except client.exceptions.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def proxies(dyn: DynamicClient, namespace: str, selector: str) -> list[list[str]]:
    """For each pod the selector matches, the names of its mesh proxy containers (classic or native)."""
    pods = resource(dyn, "v1", "Pod").get(namespace=namespace, label_selector=selector).items
    out = []
    for pod in pods:
        spec = pod.to_dict()["spec"]
        names = [c["name"] for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])]
        out.append([n for n in names if n in ("istio-proxy", "linkerd-proxy")])
    return out


def demo_variant(tmp_path: Path, scenario: Path, source: Path = REPO / "inventory" / "demo",
                 group: str = "istio") -> Path:
    """A copy of an inventory's variables whose cluster (in ``group``) runs ``scenario`` in the sandbox."""
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    for part in ("group_vars", "host_vars"):
        if (source / part).is_dir():
            shutil.copytree(source / part, inventory / part)
    (inventory / "hosts.yml").write_text(
        f"all:\n  children:\n    {group}:\n      hosts:\n        demo:\n          sandbox: {scenario}\n"
    )
    return inventory
