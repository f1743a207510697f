"""``set_fact``: set variables for the rest of the play, like Ansible's ``set_fact``.

Every key becomes a fact (``Planned.facts``); values arrive already templated. Keys must be valid
variable names so later templates can use them.
"""

from __future__ import annotations

import keyword
from typing import Any

from pydantic import ConfigDict, model_validator

from runbook_engine.actions.base import Action, ActionArgs, ActionContext, Planned, register


class SetFactArgs(ActionArgs):
    """Any ``name: value`` pairs."""

    model_config = ConfigDict(extra="allow")

    @model_validator(mode="after")
    def _valid_names(self) -> SetFactArgs:
        facts = self.model_extra or {}
        if not facts:
            raise ValueError("give at least one 'name: value' to set")
        for name in facts:
            if not name.isidentifier() or keyword.iskeyword(name):
                raise ValueError(f"{name!r} is not a valid variable name (letters, digits and '_', not a digit first)")
        return self

    def facts(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


@register
class SetFact(Action[SetFactArgs]):
    name = "set_fact"
    Args = SetFactArgs

    def plan(self, ctx: ActionContext, args: SetFactArgs) -> Planned:
        facts = args.facts()
        return Planned(facts=facts, result={"changed": False, "ansible_facts": facts},
                       msg="set " + ", ".join(sorted(facts)))
