"""``runbook plan``: what each phase would change and break, without writing anything.

Formats: ``table`` (the terminal; ``--diff`` adds each object's unified diff), ``md`` (Markdown, for
reviews and the report) and ``json`` (for CI; the shape is documented in
``runbook_engine.engine.plan_model``). Exit code 0 when no phase is predicted to break a flow that
is not accepted, 2 when one is (a ``runbook run`` would pause before that phase), 4 on invalid input.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from runbook_engine.engine.connect import Connector
from runbook_engine.engine.plan_markdown import plan_markdown
from runbook_engine.engine.plan_model import FlowPlan, PhasePlan, PhaseStatus, Plan
from runbook_engine.engine.planner import DEFAULT_TELEMETRY_HOURS, Planner, PlanOptions
from runbook_engine.engine.run_model import RunOptions
from runbook_engine.spec.model import InventorySpec, PlaybookSpec

EXIT_OK, EXIT_BREAKS = 0, 2
_OUTCOME_STYLE = {"ok": "green", "reset": "red", "denied_403": "red", "tls_error": "red", "hang": "red"}


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    MD = "md"


class CliState(Protocol):
    """What the ``runbook`` group's context object offers a subcommand."""

    state_dir: Path
    console: Console


def load_specs(playbook: Path, inventory: Path, extra_vars: Sequence[str], tags: Sequence[str],
               skip_tags: Sequence[str], limit: str | None) -> tuple[PlaybookSpec, InventorySpec, PlanOptions]:
    """Load and statically check the playbook and inventory as ``runbook run`` does."""
    from runbook_engine.cli.main import _load, _split, parse_extra_vars  # the group module imports this one

    extra = parse_extra_vars(extra_vars)
    run_options = RunOptions(tags=_split(tags), skip_tags=_split(skip_tags), extra_vars=extra, limit=limit)
    book, inv = _load(playbook, inventory, extra, run_options)
    return book, inv, PlanOptions(tags=run_options.tags, skip_tags=run_options.skip_tags, extra_vars=extra,
                                  limit=limit)


# -- the terminal table ------------------------------------------------------------------------------------
def _outcome(value: str) -> str:
    return f"[{_OUTCOME_STYLE.get(value, 'white')}]{value}[/]"


def _flow_table(flows: Sequence[FlowPlan]) -> Table:
    table = Table(title="flows that change outcome", title_justify="left", show_lines=False)
    for column in ("flow", "proto", "from", "before", "after", "", "why"):
        table.add_column(column, overflow="fold")
    for flow in sorted(flows, key=lambda f: (not f.breaks, f.flow.id)):
        mark = "[bold red]BREAKS[/]" if flow.breaks and not flow.accepted else "accepted" if flow.breaks else ""
        table.add_row(escape(flow.flow.id), flow.flow.protocol.value, flow.origin.value, _outcome(flow.before.value),
                      _outcome(flow.after.value), mark, escape(" → ".join(flow.reasons[-2:])))
    return table


def _object_table(phase: PhasePlan) -> Table:
    table = Table(title="objects", title_justify="left")
    for column in ("change", "object", "diff from"):
        table.add_column(column)
    for obj in phase.objects:
        table.add_row(obj.change.value, escape(obj.ref), obj.source.value)
    return table


def _print_phase(console: Console, phase: PhasePlan, diff: bool) -> None:
    console.rule(Text(f"PHASE {phase.index + 1} [{phase.name}]"), align="left")
    if phase.status is not PhaseStatus.PLANNED:
        console.print(f"{phase.status.value.replace('_', ' ')}: {escape(phase.note)}", style="cyan")
        if phase.status is not PhaseStatus.STOPPED:
            return
    console.print(_object_table(phase) if phase.objects else "no object changes")
    if diff:
        for obj in phase.objects:
            console.print(obj.diff, markup=False, highlight=False, end="")
    if phase.restarts:
        pods = sum(r.pods for r in phase.restarts)
        console.print(f"restarts {len(phase.restarts)} workloads ({pods} pods): "
                      + ", ".join(f"{r.workload} ({r.pods})" for r in phase.restarts), markup=False)
    changed = phase.changed_flows
    console.print(_flow_table(changed) if changed else f"no flow changes outcome ({len(phase.flows)} evaluated)")
    for check in phase.checks:
        console.print(f"  check {escape(check.title)}: {check.status.value} ({check.basis.value}) "
                      f"{escape(check.summary)}")


def print_table(console: Console, plans: Sequence[Plan], diff: bool) -> None:
    for plan in plans:
        console.print(f"PLAN [{plan.playbook}] on {plan.cluster}: {plan.flows} flows, "
                      f"{sum(plan.requests.values())} API requests", style="bold", markup=False)
        for phase in plan.phases:
            _print_phase(console, phase, diff)
        breaking = plan.breaking
        if breaking:
            console.print(f"{len(breaking)} predicted break(s) not accepted: "
                          + ", ".join(f.flow.id for f in breaking), style="bold red", markup=False)
        else:
            console.print("no unaccepted predicted breaks", style="green")


def emit(console: Console, plans: Sequence[Plan], fmt: Format, diff: bool) -> None:
    if fmt is Format.JSON:
        payload = [p.to_dict() for p in plans]
        console.print_json(json.dumps(payload[0] if len(payload) == 1 else payload))
    elif fmt is Format.MD:
        console.print(plan_markdown(plans), markup=False, highlight=False, end="")
    else:
        print_table(console, plans, diff)


def _plan_with_status(planner: Planner, book: PlaybookSpec, inv: InventorySpec, options: PlanOptions) -> list[Plan]:
    """Plan, with the current step on a status line on a terminal's stderr (stdout stays the plan alone)."""
    status_console = Console(stderr=True)
    if not status_console.is_terminal:
        return planner.plan(book, inv, options)
    with status_console.status("planning") as status:
        return planner.plan(book, inv, replace(options, progress=lambda step: status.update(f"planning: {step}")))


@click.command()
@click.argument("playbook", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-i", "--inventory", "inventory", required=True, type=click.Path(exists=True, path_type=Path),
              help="Inventory directory or hosts.yml.")
@click.option("--phase", default=None, metavar="PHASE", help="Show only this phase (earlier ones are still "
              "simulated, so it is planned against the state they leave).")
@click.option("--format", "fmt", type=click.Choice([f.value for f in Format]), default=Format.TABLE.value,
              show_default=True, help="table (terminal), md (Markdown) or json (CI).")
@click.option("-D", "--diff", is_flag=True, help="Table format: print each object's unified diff.")
@click.option("-e", "--extra-vars", "extra_vars", multiple=True, metavar="K=V|@FILE",
              help="Extra variables (highest precedence).")
@click.option("-t", "--tags", "tags", multiple=True, help="Only plan tasks with these tags.")
@click.option("--skip-tags", "skip_tags", multiple=True, help="Skip tasks with these tags.")
@click.option("-l", "--limit", default=None, help="Only plan on these clusters/groups.")
@click.option("--accept-risk", "accept_risk", multiple=True, metavar="FLOW",
              help="Treat a predicted break of this flow (its id, `from -> to`) as accepted.")
@click.option("--telemetry-hours", default=DEFAULT_TELEMETRY_HOURS, show_default=True, type=click.IntRange(1),
              help="How far back to read flows from Prometheus, when the cluster has a prometheus_url.")
@click.option("--no-dry-run", "no_dry_run", is_flag=True,
              help="Diff against the simulation only; send no dryRun=All requests to the API server.")
@click.pass_obj
def plan(state: CliState, playbook: Path, inventory: Path, phase: str | None, fmt: str, diff: bool,
         extra_vars: tuple[str, ...], tags: tuple[str, ...], skip_tags: tuple[str, ...], limit: str | None,
         accept_risk: tuple[str, ...], telemetry_hours: int, no_dry_run: bool) -> int:
    """Show what each phase of PLAYBOOK would change and which traffic flows it would break; write nothing.

    Exit codes: 0 no unaccepted predicted break, 2 a phase would break a flow (a run would pause
    before it), 4 invalid input."""
    book, inv, options = load_specs(playbook, inventory, extra_vars, tags, skip_tags, limit)
    options = PlanOptions(phase=phase, tags=options.tags, skip_tags=options.skip_tags,
                          extra_vars=options.extra_vars, limit=limit, accept_risk=frozenset(accept_risk),
                          telemetry_hours=telemetry_hours, dry_run=not no_dry_run)
    plans = _plan_with_status(Planner(Connector(state.state_dir)), book, inv, options)
    emit(state.console, plans, Format(fmt), diff)
    return EXIT_BREAKS if any(p.breaking for p in plans) else EXIT_OK
