"""``pause``: an operator gate, or a timed pause.

With ``prompt`` (the default), the run pauses at this task with the prompt as its reason
(``Planned.gate``) until an operator resumes it. With ``seconds``/``minutes`` it waits that long in
``settle`` instead and continues on its own.
"""

from __future__ import annotations

import time

from pydantic import Field, model_validator

from runbook_engine.actions.base import Action, ActionArgs, ActionContext, Planned, Settled, register
from runbook_engine.kube.change import Change


class PauseArgs(ActionArgs):
    prompt: str | None = Field(default=None, description="Operator-gate message; the run pauses until resumed.")
    seconds: float | None = Field(default=None, ge=0, le=86400, description="Wait this long, then continue.")
    minutes: float | None = Field(default=None, ge=0, le=1440, description="Wait this long, then continue.")

    @model_validator(mode="after")
    def _gate_or_timer(self) -> PauseArgs:
        if self.seconds is not None and self.minutes is not None:
            raise ValueError("give 'seconds' or 'minutes', not both")
        if self.prompt is not None and self.duration() is not None:
            raise ValueError("a timed pause continues on its own: give 'prompt' or a duration, not both")
        return self

    def duration(self) -> float | None:
        if self.minutes is not None:
            return self.minutes * 60
        return self.seconds


DEFAULT_PROMPT = "Paused by the playbook: review, then resume the run to continue"


@register
class Pause(Action[PauseArgs]):
    name = "pause"
    Args = PauseArgs

    def plan(self, ctx: ActionContext, args: PauseArgs) -> Planned:
        duration = args.duration()
        if duration is None:
            gate = args.prompt or DEFAULT_PROMPT
            return Planned(gate=gate, msg=f"operator gate: {gate}", result={"changed": False})
        return Planned(msg=f"pause for {duration:g}s", result={"changed": False})

    def settle(self, ctx: ActionContext, args: PauseArgs, applied: list[Change]) -> Settled:
        duration = args.duration()
        if duration:
            time.sleep(duration)
        return Settled(msg=f"paused {duration:g}s" if duration else "")
