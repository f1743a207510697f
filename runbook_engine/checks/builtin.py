"""Imports every built-in check so that each registers itself in ``CHECKS``."""

from __future__ import annotations

from runbook_engine.checks import object_ready, pods_healthy
from runbook_engine.checks.base import CHECKS

BUILTIN_MODULES = (object_ready, pods_healthy)

__all__ = ["BUILTIN_MODULES", "CHECKS"]
