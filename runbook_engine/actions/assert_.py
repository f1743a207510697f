"""``assert``: fail the task unless every condition holds.

``that`` is a condition or a list of conditions written as bare Jinja2 expressions, as in Ansible.
The engine evaluates them with its Templar before calling the action (``condition_args``), so the
action receives booleans; the failure message names the first false condition by its position.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from runbook_engine.actions.base import Action, ActionArgs, ActionContext, Planned, register


class AssertArgs(ActionArgs):
    that: list[bool] = Field(description="Conditions (bare Jinja2 expressions) that must all be true.")
    fail_msg: str | None = Field(default=None, description="Message when a condition is false.")
    success_msg: str | None = Field(default=None, description="Message when every condition is true.")

    @field_validator("that", mode="before")
    @classmethod
    def _evaluated(cls, value: Any) -> Any:
        items = value if isinstance(value, list) else [value]
        for item in items:
            if not isinstance(item, bool):
                raise ValueError(f"each 'that' entry must be a condition that evaluates to a boolean, got {item!r}")
        return items


@register
class Assert(Action[AssertArgs]):
    name = "assert"
    Args = AssertArgs
    condition_args = ("that",)

    def plan(self, ctx: ActionContext, args: AssertArgs) -> Planned:
        false = [i for i, ok in enumerate(args.that, start=1) if not ok]
        if false:
            default = f"Assertion failed: condition {false[0]} of {len(args.that)} is false"
            return Planned(failed=True, msg=args.fail_msg or default,
                           result={"changed": False, "failed_conditions": false})
        return Planned(msg=args.success_msg or "All assertions passed", result={"changed": False})
