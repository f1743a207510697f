"""``wait_for``: wait until objects meet a condition, like ``kubectl wait``.

The objects are named by ``name`` or ``selector``; the wait is for a status condition (``condition:
Ready`` or ``{type: Available, status: "True"}``), for a JSONPath value (``jsonpath`` + ``value``),
or, with neither, for the objects to exist. A selector must match at least one object. The task
plans no changes; it waits in ``settle``, polling every ``interval`` seconds up to ``timeout``, and
on timeout names each object that is not there yet with what it showed. In check mode nothing is
waited for; the plan says what would be.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from runbook_engine.actions import jsonpath
from runbook_engine.actions.base import Action, ActionContext, Planned, Settled, register
from runbook_engine.actions.objects import TargetArgs, find_targets
from runbook_engine.actions.waiting import Pending, describe_pending, interval_field, timeout_field, wait_until
from runbook_engine.kube.change import Change
from runbook_engine.kube.cluster import Obj
from runbook_engine.kube.health import condition
from runbook_engine.kube.refs import ObjectRef


class ConditionSpec(BaseModel):
    """A status condition to wait for: its ``type`` and the ``status`` it must have."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = Field(description="Condition type, e.g. Ready, Available, Established.")
    status: str = Field(default="True", description="Wanted status: True, False or Unknown.")

    @field_validator("status", mode="before")
    @classmethod
    def _bool_to_status(cls, value: Any) -> Any:
        return str(value).capitalize() if isinstance(value, bool) else value


class WaitForArgs(TargetArgs):
    condition: ConditionSpec | None = Field(
        default=None, description="A condition type (e.g. Ready) or {type, status} to wait for."
    )
    jsonpath: str | None = Field(default=None, description="A kubectl JSONPath, e.g. {.status.phase}.")
    value: str | int | float | bool | None = Field(
        default=None, description="The value the JSONPath must show; without it, any non-empty value."
    )
    timeout: float = timeout_field(300.0)
    interval: float = interval_field(2.0)

    @field_validator("condition", mode="before")
    @classmethod
    def _condition_shorthand(cls, value: Any) -> Any:
        return {"type": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_criterion(self) -> WaitForArgs:
        if self.condition is not None and self.jsonpath is not None:
            raise ValueError("give 'condition' or 'jsonpath', not both")
        if self.value is not None and self.jsonpath is None:
            raise ValueError("'value' needs a 'jsonpath'")
        if self.jsonpath is not None:
            jsonpath.parse(self.jsonpath)
        return self

    def describe(self) -> str:
        target = self.name if self.name is not None else f"selector {self.selector!r}"
        if self.condition is not None:
            what = f"condition {self.condition.type}={self.condition.status}"
        elif self.jsonpath is not None:
            what = f"{self.jsonpath}={jsonpath.render(self.value)}" if self.value is not None else self.jsonpath
        else:
            what = "existence"
        return f"{self.kind} {target}: {what}"


def unmet(obj: Obj, args: WaitForArgs) -> str:
    """Why ``obj`` does not meet the criterion yet, or "" when it does."""
    if args.condition is not None:
        cond = condition(obj, args.condition.type)
        if cond is None:
            return f"no {args.condition.type} condition"
        if cond.get("status") != args.condition.status:
            detail = cond.get("reason") or cond.get("message") or ""
            return f"{args.condition.type}={cond.get('status')}" + (f" ({detail})" if detail else "")
        return ""
    if args.jsonpath is not None:
        shown = [jsonpath.render(v) for v in jsonpath.find(obj, args.jsonpath)]
        if args.value is None:
            return "" if any(shown) else f"{args.jsonpath} is empty"
        wanted = jsonpath.render(args.value)
        return "" if shown and all(s == wanted for s in shown) else f"{args.jsonpath} is {' '.join(shown)!r}"
    return ""


def observe(ctx: ActionContext, args: WaitForArgs) -> Pending:
    _, objects, missing = find_targets(ctx.cluster, args)
    pending: Pending = {str(ref): "not found" for ref in missing}
    if args.selector is not None and not objects:
        pending[f"{args.kind} selector {args.selector!r}"] = "no object matches"
    for obj in objects:
        why = unmet(obj, args)
        if why:
            pending[str(ObjectRef.of(obj))] = why
    return pending


@register
class WaitFor(Action[WaitForArgs]):
    name = "wait_for"
    Args = WaitForArgs

    def plan(self, ctx: ActionContext, args: WaitForArgs) -> Planned:
        verb = "would wait" if ctx.check_mode else "will wait"
        return Planned(msg=f"{verb} up to {args.timeout:g}s for {args.describe()}",
                       result={"changed": False, "waiting_for": args.describe()})

    def settle(self, ctx: ActionContext, args: WaitForArgs, applied: list[Change]) -> Settled:
        outcome = wait_until(ctx, f"wait for {args.kind}", 1, lambda: observe(ctx, args), args.timeout, args.interval)
        result = {"elapsed": round(outcome.elapsed, 3), "pending": dict(outcome.pending)}
        if outcome.ok:
            return Settled(msg=f"{args.describe()} met after {outcome.elapsed:.1f}s", result=result)
        return Settled(ok=False, result=result,
                       msg=f"timed out after {args.timeout:g}s waiting for {args.describe()}: "
                       f"{describe_pending(outcome.pending)}")
