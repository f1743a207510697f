"""Writing a run's verification report to disk: at every pause and at the end of a run.

``AutoReports`` wraps the engine's connector and event sink: when a run pauses, completes, fails or
rolls back (the engine's ``run_end`` event), it observes the platform while the run's cluster is
still connected, keeps that picture in the journal (so ``runbook report`` reproduces it later), and
writes the four formats
to ``<state dir>/reports/<run_id>/`` — ``report.md``, ``report.html``, ``report.json`` and
``report.junit.xml``. Each file is written to a temporary file in the same directory, synced and
renamed over the old one, mode 0600: a reader never sees half a report.

Besides the masking every report gets (credentials, tokens and private keys by pattern, the values
of every Secret the run changed), reports written with the cluster connected mask every value of
the cluster's Secrets (see ``report_builder.MIN_MASKED_LENGTH``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from runbook_engine.engine.connect import ClusterConnector
from runbook_engine.engine.events import Event, EventKind, EventSink, discard
from runbook_engine.engine.journal import RunStore
from runbook_engine.engine.report_builder import (
    ReportContext,
    build_report,
    journal_observations,
    load_context,
    maskable,
    observe_platform,
    save_platform,
)
from runbook_engine.engine.taps import ConnectionTap
from runbook_engine.errors import ClusterError, RunbookError
from runbook_engine.files import write_atomic
from runbook_engine.kube.cluster import Cluster
from runbook_engine.kube.redact import redact_text, secret_values
from runbook_engine.report.model import RunReport
from runbook_engine.report.render import SUFFIX, Format, render
from runbook_engine.spec.model import ClusterSpec

REPORTS_DIR = "reports"


def report_dir(state_dir: Path, run_id: str) -> Path:
    """Where the reports of run ``run_id`` are kept."""
    return state_dir / REPORTS_DIR / run_id


def report_name(fmt: Format) -> str:
    return f"report{SUFFIX[fmt]}"


def write_reports(report: RunReport, directory: Path) -> dict[Format, Path]:
    """Every format of ``report`` into ``directory`` (created mode 0700); returns the files by format."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    return {fmt: write_atomic(directory / report_name(fmt), render(report, fmt)) for fmt in Format}


def cluster_secrets(cluster: Cluster) -> set[str]:
    """The cluster's Secret values worth masking by value; none when the API refuses to list Secrets."""
    try:
        secrets = cluster.list("v1", "Secret")
    except ClusterError:
        return set()
    found: set[str] = set()
    for secret in secrets:
        found |= secret_values({"apiVersion": "v1", "kind": "Secret", **secret})
    return maskable(found)


def write_run_reports(store: RunStore, run_id: str, context: ReportContext, cluster: Cluster | None) -> Path:
    """Observe the platform on ``cluster`` (when given), journal it, and write the run's four reports.

    Without a cluster the picture saved at the run's last stop is used. Returns the reports' directory.
    """
    if store.directory is None:
        raise RunbookError("reports are written beside a journal on disk, not for an in-memory journal")
    record = store.get_run(run_id)
    secrets: set[str] = set()
    if cluster is not None:
        observed = journal_observations(store, record, context)
        save_platform(store, record.id, observe_platform(cluster, context, observed))
        secrets = cluster_secrets(cluster)
    report = build_report(store, record.id, context, secrets=secrets)
    directory = report_dir(store.directory, record.id)
    write_reports(report, directory)
    return directory


def _ignore(_: object) -> None:
    """The default notification: nothing."""


class AutoReports(ConnectionTap):
    """Writes a run's reports whenever it pauses or ends: wrap the engine's connector, use it as the sink.

    ``Engine(store, connect=reports.connect, sink=reports)``. Events go on to ``sink`` unchanged; on
    each ``run_end`` (the journal already holds how the run stopped) the reports are written through
    the connection the engine holds, or a new one after ``rollback``, which disconnects first.
    ``on_written`` receives the reports' directory, ``on_error`` why a report could not be written:
    a report failure never changes how the run ended. Dry runs (``--check``, simulations) write nothing.
    """

    def __init__(self, store: RunStore, connect: ClusterConnector, sink: EventSink = discard, *,
                 on_written: Callable[[Path], None] = _ignore, on_error: Callable[[str], None] = _ignore) -> None:
        super().__init__(store, connect, sink)
        self.on_written = on_written
        self.on_error = on_error
        self.written: dict[str, Path] = {}

    def wants(self, event: Event) -> bool:
        return event.kind is EventKind.RUN_END

    def on_event(self, run_id: str, spec: ClusterSpec) -> None:
        self.write(run_id, spec)

    def write(self, run_id: str, spec: ClusterSpec) -> Path | None:
        """Write the reports of ``run_id`` (on ``spec``'s cluster); None when there is nothing to write."""
        if self.store.directory is None:
            return None
        try:
            directory = self._write(run_id, spec)
        except (RunbookError, OSError, ValueError) as exc:
            self.on_error(redact_text(f"the report of run {run_id} was not written: {exc}"))
            return None
        if directory is not None:
            self.written[run_id] = directory
            self.on_written(directory)
        return directory

    def _write(self, run_id: str, spec: ClusterSpec) -> Path | None:
        record = self.store.get_run(run_id)
        if record.options.get("check") or record.options.get("simulate"):
            return None  # nothing was done: a dry run's outcome is its plan, not a report
        context = load_context(record)
        with self.cluster_for(spec) as cluster:
            return write_run_reports(self.store, run_id, context, cluster)
