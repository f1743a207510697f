"""Imports every built-in action so that each registers itself in ``ACTIONS``."""

from __future__ import annotations

from runbook_engine.actions import (
    ansible,
    assert_,
    k8s_apply,
    k8s_delete,
    k8s_label,
    k8s_patch,
    pause,
    rollout_restart,
    set_fact,
    wait_for,
)
from runbook_engine.actions.base import ACTIONS

BUILTIN_MODULES = (ansible, assert_, k8s_apply, k8s_delete, k8s_label, k8s_patch, pause, rollout_restart, set_fact,
                   wait_for)

__all__ = ["ACTIONS", "BUILTIN_MODULES"]
