"""``runbook render``: write the manifests each phase would apply, one file per object, for GitOps.

The playbook is planned (simulated on a snapshot of the cluster, nothing written) and every created
or updated object is written as ``DIR/<phase>/<namespace>/<kind>-<name>.yaml``; see
``runbook_engine.engine.render``. Two renders of the same inputs are byte-identical.
"""

from __future__ import annotations

from pathlib import Path

import click

from runbook_engine.cli.plan_cmd import CliState, load_specs
from runbook_engine.engine.connect import Connector
from runbook_engine.engine.planner import Planner, PlanOptions
from runbook_engine.engine.render import render_plans


@click.command()
@click.argument("playbook", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-i", "--inventory", "inventory", required=True, type=click.Path(exists=True, path_type=Path),
              help="Inventory directory or hosts.yml.")
@click.option("--phase", default=None, metavar="PHASE", help="Render only this phase's manifests.")
@click.option("-o", "--output", "output", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory to write the manifests to.")
@click.option("-e", "--extra-vars", "extra_vars", multiple=True, metavar="K=V|@FILE",
              help="Extra variables (highest precedence).")
@click.option("-l", "--limit", default=None, help="Only render for these clusters/groups.")
@click.pass_obj
def render(state: CliState, playbook: Path, inventory: Path, phase: str | None, output: Path,
           extra_vars: tuple[str, ...], limit: str | None) -> int:
    """Write the manifests each phase of PLAYBOOK would apply to DIR, one file per object."""
    book, inv, options = load_specs(playbook, inventory, extra_vars, (), (), limit)
    options = PlanOptions(phase=phase, extra_vars=options.extra_vars, limit=limit, dry_run=False)
    plans = Planner(Connector(state.state_dir)).plan(book, inv, options)
    written = render_plans(plans, output)
    state.console.print(f"wrote {len(written)} manifests to {output}", markup=False, highlight=False)
    return 0
