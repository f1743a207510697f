"""``runbook sandbox generate``: write a large synthetic platform as a sandbox scenario."""

from __future__ import annotations

from pathlib import Path

import click

from runbook_engine.sandbox.generate import generate_scenario, write_scenario


@click.command("generate")
@click.option("--namespaces", type=click.IntRange(min=1), default=10, show_default=True,
              help="How many namespaces to spread the workloads over.")
@click.option("--workloads", type=click.IntRange(min=0), default=100, show_default=True,
              help="Deployments and StatefulSets to create (each with a Service and usually a ServiceAccount).")
@click.option("--flows", type=click.IntRange(min=0), default=200, show_default=True,
              help="Traffic flows between the workloads (fewer if there are not enough distinct pairs).")
@click.option("--seed", type=int, default=0, show_default=True, help="The same seed gives the same platform.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The scenario file to write.")
def generate(namespaces: int, workloads: int, flows: int, seed: int, output: Path) -> None:
    """Generate a synthetic platform scenario for `runbook sandbox up --scenario`."""
    scenario = generate_scenario(namespaces, workloads, flows, seed)
    write_scenario(scenario, output)
    click.echo(
        f"wrote {output}: {len(scenario['nodes'])} nodes, {len(scenario['manifests'])} objects, "
        f"{len(scenario['flows'])} flows"
    )
