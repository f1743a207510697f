"""Fixtures for the action tests: a small platform in a MemoryCluster and a plan helper."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runbook_engine.actions.base import ACTIONS, ActionContext, Planned
from runbook_engine.actions.builtin import BUILTIN_MODULES
from runbook_engine.kube.memory import MemoryCluster

from .actions_support import Planner, deployment

assert BUILTIN_MODULES  # importing registers the built-in actions

HERE = Path(__file__).parent


@pytest.fixture
def cluster() -> MemoryCluster:
    return MemoryCluster(
        [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"team": "web"}}},
            deployment("api"),
            deployment("web", labels={"tier": "front"}),
            deployment("db", ns="data"),
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "shop"},
             "data": {"mode": "a"}},
        ]
    )


@pytest.fixture
def plan(cluster: MemoryCluster) -> Planner:
    """``plan(action, args, check_mode=False, base_dir=None, vars=None)`` against ``cluster``."""

    def run(action: str, args: dict[str, Any], *, check_mode: bool = False, base_dir: Path | None = None,
            variables: dict[str, Any] | None = None) -> Planned:
        module = ACTIONS[action]()
        ctx = ActionContext(cluster=cluster, check_mode=check_mode, base_dir=base_dir or HERE / "files",
                            vars=variables or {})
        return module.plan(ctx, module.Args.model_validate(args))

    return run
