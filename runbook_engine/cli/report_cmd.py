"""``runbook report RUN_ID``: a run's verification report, in any format, from its journal.

The same report the engine writes to ``<state dir>/reports/<run_id>/`` at every pause and at the
end of a run, rebuilt from the journal alone (phases, changes, verdicts, and the platform picture
kept at the run's last stop), so it works on any machine that holds the journal and never touches
the cluster. Printed to stdout, or written atomically (mode 0600) with ``-o FILE``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import click

from runbook_engine.engine.journal import RunStore
from runbook_engine.engine.report_builder import build_report, load_context
from runbook_engine.errors import UserInputError
from runbook_engine.files import write_atomic
from runbook_engine.report.render import Format, render


class _StateDir(Protocol):
    """What this command needs from the ``runbook`` group's context object."""

    def store(self) -> RunStore: ...


@click.command("report")
@click.argument("run_id")
@click.option("-f", "--format", "fmt", type=click.Choice([f.value for f in Format]), default=Format.MARKDOWN.value,
              show_default=True, help="md (the document), html (self-contained page), json (schema'd), junit (CI).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the report to FILE instead of stdout.")
@click.pass_obj
def report(obj: _StateDir, run_id: str, fmt: str, output: Path | None) -> int:
    """Print the verification report of RUN_ID (a unique prefix will do)."""
    if output is not None and not output.parent.is_dir():
        raise UserInputError(f"cannot write {output}: directory {output.parent} does not exist",
                             hint="create the directory first, or omit -o to print the report")
    store = obj.store()
    try:
        record = store.get_run(run_id)
        text = render(build_report(store, record.id, load_context(record)), Format(fmt))
    finally:
        store.close()
    if output is None:
        click.echo(text, nl=False)
    else:
        write_atomic(output, text)
        click.echo(f"report of run {record.id} written to {output}", err=True)
    return 0
