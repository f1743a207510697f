"""Imports every built-in check so that each registers itself in ``CHECKS``."""

from __future__ import annotations

from runbook_engine.checks import (
    control_plane,
    dependencies,
    hygiene,
    identity,
    linkerd,
    membership,
    node_agents,
    object_ready,
    pods_healthy,
    reachability,
    telemetry,
)
from runbook_engine.checks.base import CHECKS

BUILTIN_MODULES = (
    object_ready,
    pods_healthy,
    control_plane,
    node_agents,
    linkerd,
    membership,
    identity,
    reachability,
    dependencies,
    hygiene,
    telemetry,
)

__all__ = ["BUILTIN_MODULES", "CHECKS"]
