"""Invalid task arguments are refused by each action's model with a message naming the mistake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from runbook_engine.actions.base import ACTIONS
from runbook_engine.errors import UserInputError

CASES: list[dict[str, Any]] = yaml.safe_load((Path(__file__).parent / "cases" / "invalid_args.yaml").read_text())


@pytest.mark.parametrize("case", CASES, ids=[f"{c['action']}-{i}" for i, c in enumerate(CASES)])
def test_invalid_args_are_refused_clearly(case: dict[str, Any]) -> None:
    args_model = ACTIONS[case["action"]].Args
    with pytest.raises((ValidationError, UserInputError)) as err:
        args_model.model_validate(case["args"])
    assert case["error"] in str(err.value)


def test_every_builtin_action_is_registered() -> None:
    expected = {"k8s_apply", "k8s_patch", "k8s_label", "k8s_delete", "rollout_restart", "wait_for", "assert",
                "set_fact", "pause", "ansible"}
    assert expected <= set(ACTIONS)
