"""The ``runbook`` command: run, resume, roll back and inspect phased mesh rollouts.

Exit codes (also in ``runbook --help`` and docs/cli.md):

  0  the run completed (or the playbook is valid, for ``check``)
  1  the run failed (an API error, an engine fault, an unrecoverable task failure)
  2  the run paused (operator gate, failing checkpoint, failed task, drift): resume it
  3  the run rolled back a phase
  4  invalid input: a playbook/inventory/command-line mistake, or a request the run's state does
     not allow; nothing was changed
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from runbook_engine.cli.console import ConsoleRenderer
from runbook_engine.cli.plan_cmd import plan
from runbook_engine.cli.render_cmd import render
from runbook_engine.cli.report_cmd import report
from runbook_engine.cli.sandbox_cmd import sandbox
from runbook_engine.engine.connect import Connector
from runbook_engine.engine.journal import RunRecord, RunStatus, RunStore
from runbook_engine.engine.modules import catalog
from runbook_engine.engine.phases import target_clusters
from runbook_engine.engine.planner import PlanGate
from runbook_engine.engine.report_files import AutoReports
from runbook_engine.engine.run_model import PhaseGate, RunOptions, RunResult
from runbook_engine.engine.runner import Engine
from runbook_engine.engine.team_store import Replicator, StoreMode, bring_home, check_store_settings, cluster_runs
from runbook_engine.errors import Location, RunbookError, RunStateError, UserInputError, UserInputErrors
from runbook_engine.kube.redact import redact_text
from runbook_engine.spec.filters import plain
from runbook_engine.spec.inventory import load_inventory
from runbook_engine.spec.loader import load_playbook
from runbook_engine.spec.model import InventorySpec, PlaybookSpec
from runbook_engine.spec.static_check import check_playbook
from runbook_engine.spec.yamlpos import load_yaml_file, load_yaml_text

EXIT_OK, EXIT_FAILED, EXIT_PAUSED, EXIT_ROLLED_BACK, EXIT_INVALID = 0, 1, 2, 3, 4
EXIT_CODES_HELP = (
    "\b\nExit codes:\n  0  completed\n  1  failed\n  2  paused (resume it with `runbook resume RUN_ID`)\n"
    "  3  rolled back\n  4  invalid input (nothing was changed)"
)
_STATUS_EXIT = {RunStatus.COMPLETED: EXIT_OK, RunStatus.PAUSED: EXIT_PAUSED, RunStatus.ROLLED_BACK: EXIT_ROLLED_BACK,
                RunStatus.FAILED: EXIT_FAILED, RunStatus.RUNNING: EXIT_FAILED}
_SEVERITY = (EXIT_FAILED, EXIT_ROLLED_BACK, EXIT_PAUSED, EXIT_OK)


def exit_code(results: Sequence[RunResult]) -> int:
    """The most severe outcome of several runs (failed > rolled back > paused > completed)."""
    codes = {_STATUS_EXIT[r.status] for r in results}
    return next((c for c in _SEVERITY if c in codes), EXIT_OK)


def parse_extra_vars(values: Sequence[str]) -> dict[str, Any]:
    """``-e`` values: ``k=v`` pairs (strings), ``@file.yml`` or an inline YAML/JSON mapping; later wins."""
    merged: dict[str, Any] = {}
    for value in values:
        merged.update(_extra_vars_one(value))
    return merged


def _extra_vars_one(value: str) -> dict[str, Any]:
    """One ``-e`` value: ``@file.yml``, an inline YAML mapping, or ``key=value`` pairs."""
    if value.startswith("@"):
        path = Path(value[1:])
        loaded = load_yaml_file(path, what="extra vars file")
        return _extra_vars_mapping(loaded, Location(str(path), 1, 1))
    if value.lstrip().startswith("{"):
        return _extra_vars_mapping(load_yaml_text(value, "-e"), Location("-e"))
    pairs = [p.partition("=") for p in value.split()]
    if any(not sep or not key for key, sep, _ in pairs):
        raise UserInputError(f"invalid extra vars {value!r}", hint="use -e key=value, -e @file.yml or -e '{k: v}'")
    return {key: val for key, _, val in pairs}


def _extra_vars_mapping(loaded: Any, where: Location) -> dict[str, Any]:
    if not isinstance(loaded, dict):
        raise UserInputError("extra vars must be a mapping", where, hint="write key: value lines")
    return plain(loaded)  # type: ignore[no-any-return]


def _split(values: Sequence[str]) -> frozenset[str]:
    return frozenset(t.strip() for v in values for t in v.split(",") if t.strip())


class _Context:
    """Shared by every command: where runs are kept, and the console."""

    def __init__(self, state_dir: Path, verbosity: int) -> None:
        self.state_dir = state_dir
        self.verbosity = verbosity
        # Piped output (logs, CI) is not wrapped at 80 columns: tables and diffs stay one line per row.
        self.console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
        self.errors = Console(stderr=True, highlight=False, soft_wrap=True)

    def store(self) -> RunStore:
        return RunStore(self.state_dir)

    def engine(self, store: RunStore, renderer: ConsoleRenderer, gate: PhaseGate | None = None) -> Engine:
        replicator = Replicator(store, Connector(self.state_dir), renderer)  # the team store (--store cluster)
        reports = AutoReports(store, replicator.connect, replicator,  # the report at every pause and end of a run
                              on_written=lambda d: renderer.line(f"REPORT: {d / 'report.md'}", "bold"),
                              on_error=lambda reason: renderer.line(f"WARNING: {reason}", "yellow"))
        return Engine(store, connect=reports.connect, sink=reports, phase_gate=gate)

    def renderer(self) -> ConsoleRenderer:
        return ConsoleRenderer(self.console, self.verbosity)


pass_context = click.make_pass_decorator(_Context)
_INVENTORY = click.option("-i", "--inventory", "inventory", required=True, type=click.Path(exists=True, path_type=Path),
                          help="Inventory directory or hosts.yml.")
_EXTRA = click.option("-e", "--extra-vars", "extra_vars", multiple=True, metavar="K=V|@FILE",
                      help="Extra variables (highest precedence): key=value, @file.yml, or a YAML mapping.")
_TAGS = click.option("-t", "--tags", "tags", multiple=True, help="Only run tasks with these tags (comma-separated).")
_SKIP = click.option("--skip-tags", "skip_tags", multiple=True, help="Skip tasks with these tags.")
_LIMIT = click.option("-l", "--limit", default=None, help="Only run on these clusters/groups (a hosts pattern).")
_VERBOSE = click.option("-v", "--verbose", "verbose", count=True, help="Show every task's message.")
_FROM_INVENTORY = click.option(
    "-i", "--inventory", "inventory", default=None, type=click.Path(exists=True, path_type=Path),
    help="Fetch the run from this inventory's cluster when it is not in the local journal (team store).")
_PLAYBOOK = click.argument("playbook", type=click.Path(exists=True, dir_okay=False, path_type=Path))


@click.group(epilog=EXIT_CODES_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--state-dir", type=click.Path(path_type=Path), default=None, envvar="RUNBOOK_STATE_DIR",
              help="Where the run journal lives (default .runbook, or $RUNBOOK_STATE_DIR).")
@click.option("-v", "--verbose", "verbosity", count=True, help="Show every task's message.")
@click.pass_context
def cli(ctx: click.Context, state_dir: Path | None, verbosity: int) -> None:
    """Phased, verified service-mesh rollouts for Kubernetes, shaped like ansible-playbook."""
    ctx.obj = _Context(state_dir or Path(".runbook"), verbosity)


def _load(playbook: Path, inventory: Path, extra: dict[str, Any], options: RunOptions
          ) -> tuple[PlaybookSpec, InventorySpec]:
    """Load and statically check the playbook against the inventory; every mistake is raised together."""
    modules = catalog()
    inv = load_inventory(inventory, extra_vars=extra)
    book = load_playbook(playbook, catalog=modules)
    errors = check_playbook(book, inv, catalog=modules, extra_vars=extra, tags=sorted(options.tags),
                            skip_tags=sorted(options.skip_tags), limit=options.limit)
    if errors:
        raise errors[0] if len(errors) == 1 else UserInputErrors(errors)
    return book, inv


@cli.command(epilog=EXIT_CODES_HELP)
@_PLAYBOOK
@_INVENTORY
@click.option("-C", "--check", is_flag=True, help="Plan only: show what would change, write nothing.")
@click.option("-D", "--diff", is_flag=True, help="Show a unified diff of every object changed.")
@_TAGS
@_SKIP
@click.option("--start-at-phase", default=None, metavar="PHASE", help="Start at this phase.")
@_EXTRA
@_LIMIT
@click.option("--lock-namespace", default="default", show_default=True,
              help="Namespace of the Lease that keeps two runs off one cluster.")
@click.option("--store", "store_mode", type=click.Choice([m.value for m in StoreMode]), default=None,
              help="cluster: also replicate the run into its cluster, so any machine can resume or roll it back "
                   "(default: the inventory var runbook_store, else local).")
@click.option("--accept-risk", "accept_risk", multiple=True, metavar="FLOW",
              help="Proceed although the planner predicts this flow (its id, `from -> to`) breaks; before each "
                   "phase the run re-plans it and pauses on any other predicted break.")
@_VERBOSE
@pass_context
def run(ctx: _Context, playbook: Path, inventory: Path, check: bool, diff: bool, tags: tuple[str, ...],
        skip_tags: tuple[str, ...], start_at_phase: str | None, extra_vars: tuple[str, ...], limit: str | None,
        lock_namespace: str, store_mode: str | None, accept_risk: tuple[str, ...], verbose: int) -> int:
    """Run PLAYBOOK on the inventory's clusters, phase by phase, with checkpoints."""
    ctx.verbosity += verbose
    extra = parse_extra_vars(extra_vars)
    options = RunOptions(check=check, diff=diff, tags=_split(tags), skip_tags=_split(skip_tags),
                         start_at_phase=start_at_phase, extra_vars=extra, limit=limit, lock_namespace=lock_namespace,
                         store=StoreMode(store_mode) if store_mode else None, accept_risk=frozenset(accept_risk))
    book, inv = _load(playbook, inventory, extra, options)
    check_store_settings(inv, target_clusters(book, inv, limit), store_mode)
    store = RunStore.in_memory() if check else ctx.store()
    renderer = ctx.renderer()
    try:
        results = ctx.engine(store, renderer, None if check else PlanGate(inv, options)).run(book, inv, options)
    finally:
        store.close()
    renderer.recap(results)
    return exit_code(results)


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("run_id")
@click.option("--at-phase", default=None, metavar="PHASE", help="Resume at the start of this phase instead.")
@click.option("--accept-drift", "--force", "accept_drift", is_flag=True,
              help="Continue although the cluster (or the playbook) changed since the pause.")
@_FROM_INVENTORY
@_LIMIT
@_VERBOSE
@pass_context
def resume(ctx: _Context, run_id: str, at_phase: str | None, accept_drift: bool, inventory: Path | None,
           limit: str | None, verbose: int) -> int:
    """Resume a paused, failed or interrupted run: re-verify the last checkpoint, then continue."""
    ctx.verbosity += verbose
    store = ctx.store()
    renderer = ctx.renderer()
    try:
        run_id = bring_home(store, run_id, inventory, limit, Connector(ctx.state_dir))
        gate = PlanGate.for_run(store.get_run(run_id))
        result = ctx.engine(store, renderer, gate).resume(run_id, at_phase=at_phase, accept_drift=accept_drift)
    finally:
        store.close()
    renderer.recap([result])
    return exit_code([result])


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("run_id")
@click.option("--phase", default=None, metavar="PHASE", help="Roll back from the last phase down to this one.")
@_FROM_INVENTORY
@_LIMIT
@pass_context
def rollback(ctx: _Context, run_id: str, phase: str | None, inventory: Path | None, limit: str | None) -> int:
    """Undo a run's phases exactly, from its journal (all phases, newest first, unless --phase)."""
    store = ctx.store()
    renderer = ctx.renderer()
    try:
        run_id = bring_home(store, run_id, inventory, limit, Connector(ctx.state_dir))
        result = ctx.engine(store, renderer).rollback(run_id, phase=phase)
    finally:
        store.close()
    renderer.recap([result])
    return exit_code([result])


@cli.command()
@click.argument("run_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON: run_id, status, current_phase, paused_reason.")
@pass_context
def status(ctx: _Context, run_id: str | None, as_json: bool) -> int:
    """Show one run (the latest when RUN_ID is omitted)."""
    store = ctx.store()
    try:
        if run_id is None:
            runs = store.list_runs()
            if not runs:
                raise RunStateError("no runs yet", hint="start one with `runbook run PLAYBOOK -i INVENTORY`")
            run_id = runs[0].id
        record = store.get_run(run_id)
        verdicts = [v.to_dict() for v in store.verdicts(record.id, record.phase_index)]
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps({**record.to_dict(), "verdicts": verdicts}, indent=2))
        return EXIT_OK
    _print_status(ctx.console, record, verdicts)
    return EXIT_OK


def _print_status(console: Console, record: RunRecord, verdicts: Sequence[dict[str, Any]]) -> None:
    rows = [("run", record.id), ("status", record.status.value), ("cluster", record.cluster),
            ("phase", f"{record.current_phase} ({record.stage.value})"), ("playbook", record.playbook),
            ("inventory", record.inventory), ("updated", record.updated)]
    if record.paused_reason:
        rows.append(("reason", record.paused_reason))
    for key, value in rows:
        console.print(f"{key:>10}: {redact_text(value)}", highlight=False, markup=False)
    for v in verdicts:
        console.print(f"{v['status'].upper():>10}  {v['title']}: {redact_text(v['summary'])}", highlight=False,
                      markup=False)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON: one object per run.")
@click.option("--cluster", "from_cluster", is_flag=True, help="List the runs kept in the cluster (needs -i).")
@_FROM_INVENTORY
@_LIMIT
@pass_context
def runs(ctx: _Context, as_json: bool, from_cluster: bool, inventory: Path | None, limit: str | None) -> int:
    """List runs, newest first (with --cluster: the team store of the inventory's cluster)."""
    if from_cluster:
        return _cluster_runs(ctx, as_json, inventory, limit)
    store = ctx.store()
    try:
        records = store.list_runs()
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in records], indent=2))
        return EXIT_OK
    table = Table(box=None)
    for column in ("run", "status", "cluster", "phase"):
        table.add_column(column, no_wrap=True, min_width=len(column))
    table.add_column("reason", overflow="ellipsis", no_wrap=True, max_width=80)
    for r in records:
        table.add_row(r.id, r.status.value, r.cluster, r.current_phase, redact_text(r.paused_reason))
    ctx.console.print(table)
    return EXIT_OK


def _cluster_runs(ctx: _Context, as_json: bool, inventory: Path | None, limit: str | None) -> int:
    if inventory is None:
        raise UserInputError("runs --cluster reads the team store of an inventory's cluster",
                             hint="add -i INVENTORY (and --limit CLUSTER when it has several)")
    summaries = cluster_runs(inventory, limit, Connector(ctx.state_dir))
    if as_json:
        click.echo(json.dumps([s.to_dict() for s in summaries], indent=2))
        return EXIT_OK
    table = Table(box=None)
    for column in ("run", "status", "cluster", "phase", "updated"):
        table.add_column(column, no_wrap=True, min_width=len(column))
    table.add_column("reason", overflow="ellipsis", no_wrap=True, max_width=80)
    for s in summaries:
        table.add_row(s.run_id, s.status, s.cluster, s.phase, s.updated, redact_text(s.paused_reason))
    ctx.console.print(table)
    return EXIT_OK


@cli.command(epilog=EXIT_CODES_HELP)
@_PLAYBOOK
@_INVENTORY
@_EXTRA
@_TAGS
@_SKIP
@_LIMIT
@pass_context
def check(ctx: _Context, playbook: Path, inventory: Path, extra_vars: tuple[str, ...], tags: tuple[str, ...],
          skip_tags: tuple[str, ...], limit: str | None) -> int:
    """Validate PLAYBOOK and the inventory without touching any cluster."""
    extra = parse_extra_vars(extra_vars)
    options = RunOptions(tags=_split(tags), skip_tags=_split(skip_tags), extra_vars=extra, limit=limit)
    book, inv = _load(playbook, inventory, extra, options)
    phases = sum(len(p.phases) for p in book.plays)
    ctx.console.print(f"ok: {playbook} is valid ({len(book.plays)} plays, {phases} phases, "
                      f"{len(inv.clusters)} clusters)", style="green", highlight=False, markup=False)
    return EXIT_OK


cli.add_command(sandbox)
cli.add_command(report)
cli.add_command(plan)
cli.add_command(render)


def report_error(exc: BaseException) -> int:
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    if isinstance(exc, click.exceptions.UsageError):
        exc.show()
        return EXIT_INVALID
    if isinstance(exc, UserInputError | RunStateError):
        errors.print(f"ERROR: {redact_text(str(exc))}", style="red", markup=False)
        return EXIT_INVALID
    errors.print(f"FAILED: {redact_text(str(exc))}", style="red", markup=False)
    return EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``runbook`` console script; returns (and exits with) the documented code."""
    try:
        rc = cli.main(args=list(argv) if argv is not None else None, prog_name="runbook", standalone_mode=False)
    except (click.exceptions.UsageError, RunbookError) as exc:
        rc = report_error(exc)
    except click.exceptions.Abort:
        rc = EXIT_FAILED
    code = rc if isinstance(rc, int) else EXIT_OK
    if argv is None:
        sys.exit(code)
    return code

