"""``runbook render`` writes exactly what ``runbook run`` then applies: every rendered object is found on
the cluster after the run, with every field the manifest sets holding the rendered value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from runbook_engine.cli.main import main
from runbook_engine.engine.journal import RunStore
from runbook_engine.kube.kube_cluster import KubeCluster
from runbook_engine.kube.refs import ObjectRef
from runbook_engine.sandbox.app import build_sandbox

from .conftest import CASES, DEMO_SCENARIO, write_demo_inventory

PLAYBOOK = str(CASES / "strict_rollout.yml")

pytestmark = pytest.mark.slow


def _missing(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Paths where ``actual`` lacks what ``expected`` sets (lists of named items match by name)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [path or "."]
        return [m for k, v in expected.items() for m in _missing(v, actual.get(k), f"{path}.{k}")]
    if isinstance(expected, list) and all(isinstance(i, dict) and "name" in i for i in expected):
        named = {i.get("name"): i for i in actual or [] if isinstance(i, dict)}
        return [m for i in expected for m in _missing(i, named.get(i["name"]), f"{path}[{i['name']}]")]
    return [] if expected == actual else [f"{path}: rendered {expected!r}, applied {actual!r}"]


def test_rendered_manifests_are_what_the_run_applied(tmp_path: Path) -> None:
    inventory = write_demo_inventory(tmp_path / "inventory")
    state, out = tmp_path / "state", tmp_path / "rendered"
    common = ["-i", str(inventory), "-e", "with_exceptions=true"]
    assert main(["--state-dir", str(state), "render", PLAYBOOK, *common, "-o", str(out)]) == 0
    code = main(["--state-dir", str(state), "run", PLAYBOOK, *common])
    # The gate pauses before phases it predicts to break flows (this case's datastore ports declare no
    # protocol); resuming at a gated phase is the operator's decision to proceed.
    for _ in range(4):
        if code != 2:
            break
        [record] = RunStore(state).list_runs()
        code = main(["--state-dir", str(state), "resume", record.id])
    assert code == 0

    rendered = [yaml.safe_load(f.read_text()) for f in sorted(out.rglob("*.yaml"))]
    assert len(rendered) > 10
    server = build_sandbox(state / "sandbox" / "demo", DEMO_SCENARIO).start()
    try:
        cluster = KubeCluster.from_kubeconfig(server.kubeconfig, None)
        problems: list[str] = []
        for obj in rendered:
            live = cluster.get(ObjectRef.of(obj))
            if live is None:
                problems.append(f"{ObjectRef.of(obj)} was rendered but not applied")
                continue
            if obj["kind"] == "Secret":  # rendered with masked values; compare everything else
                obj = {k: v for k, v in obj.items() if k not in ("data", "stringData")}
            problems += [f"{ObjectRef.of(obj)} {m}" for m in _missing(obj, live)]
    finally:
        server.stop()
    assert problems == []
