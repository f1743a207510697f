"""Rendering engine events on the terminal, shaped like ``ansible-playbook``'s output.

PLAY / PHASE / TASK / CHECKPOINT headers, one ``ok|changed|failed|skipping`` line per task, the
objects each task changed (with unified diffs under ``--diff``), check verdicts with their hints,
pauses with the command that resumes them, a progress bar for batches and waits, and a recap.
Event data reaches this module already masked by the engine; free text is masked once more here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from runbook_engine.engine.events import Event, EventKind, TaskStatus
from runbook_engine.engine.run_model import RunResult
from runbook_engine.kube.diff import diff_objects
from runbook_engine.kube.redact import redact_text

_STATUS_STYLE = {
    TaskStatus.OK.value: "green", TaskStatus.CHANGED.value: "yellow", TaskStatus.FAILED.value: "red",
    TaskStatus.SKIPPED.value: "cyan", TaskStatus.IGNORED.value: "magenta", TaskStatus.RESCUED.value: "magenta",
}
_VERDICT_STYLE = {"pass": "green", "flag": "yellow", "fail": "red", "preexisting": "magenta", "skip": "cyan",
                  "no_data": "yellow"}
_WIDTH = 100


def header(kind: str, name: str) -> str:
    title = f"{kind} [{name}] "
    return title + "*" * max(3, _WIDTH - len(title))


@dataclass
class ConsoleRenderer:
    """An ``EventSink`` printing events to a rich console."""

    console: Console
    verbosity: int = 0
    progress: Progress | None = None
    bars: dict[str, TaskID] = field(default_factory=dict)

    def __call__(self, event: Event) -> None:
        handler = self._handlers().get(event.kind)
        if handler is not None:
            handler(event)

    def _handlers(self) -> dict[EventKind, Callable[[Event], None]]:
        return {
            EventKind.RUN_START: self._run_start, EventKind.PLAY_START: self._play,
            EventKind.PHASE_START: self._phase, EventKind.PHASE_SKIPPED: self._phase_skipped,
            EventKind.PHASE_END: self._phase_end, EventKind.BATCH_START: self._batch,
            EventKind.TASK_START: self._task, EventKind.TASK_RESULT: self._task_result,
            EventKind.CHANGE: self._change, EventKind.DIFF: self._diff, EventKind.PROGRESS: self._progress,
            EventKind.LOG: self._log, EventKind.CHECKPOINT_START: self._checkpoint,
            EventKind.CHECK_RESULT: self._check, EventKind.CHECKPOINT_DECISION: self._decision,
            EventKind.DRIFT: self._drift, EventKind.PAUSED: self._paused,
            EventKind.ROLLBACK_START: self._rollback, EventKind.ROLLBACK_CHANGE: self._rollback_change,
        }

    def line(self, text: str, style: str = "") -> None:
        self.console.print(escape(redact_text(text)), style=style or None, highlight=False)

    # headers ----------------------------------------------------------------------------------
    def _run_start(self, event: Event) -> None:
        mode = " (check mode: nothing is written)" if event.data.get("check") else ""
        self.line(f"run {event.run_id} on {event.cluster}{mode}", "dim")

    def _play(self, event: Event) -> None:
        self.line("")
        self.line(header("PLAY", event.message), "bold")

    def _phase(self, event: Event) -> None:
        self.line("")
        self.line(header("PHASE", f"{event.phase} {event.data.get('index')}/{event.data.get('total')}"), "bold blue")

    def _phase_skipped(self, event: Event) -> None:
        self.line(f"skipping phase: {event.message}", "cyan")

    def _phase_end(self, event: Event) -> None:
        self._stop_bars(remove=True)

    def _task(self, event: Event) -> None:
        self.line("")
        self.line(header("TASK", event.task))

    def _checkpoint(self, event: Event) -> None:
        self.line("")
        self.line(header("CHECKPOINT" if event.message == "checkpoint" else "PREFLIGHT", event.phase), "bold")

    # results ----------------------------------------------------------------------------------
    def _task_result(self, event: Event) -> None:
        status = str(event.data.get("status", ""))
        label = "skipping" if status == TaskStatus.SKIPPED.value else status
        tail = f" => {event.message}" if event.message and (self.verbosity or status == "failed") else ""
        if event.data.get("replayed"):
            tail = " (done before the resume)"
        self.line(f"{label}: [{event.cluster}]{tail}", _STATUS_STYLE.get(status, ""))

    def _change(self, event: Event) -> None:
        note = "" if event.data.get("written", True) else " (found already applied)"
        self.line(f"  {event.message}{note}", "yellow")
        if "after" in event.data or "before" in event.data:
            self._print_diff(event.data)

    def _diff(self, event: Event) -> None:
        self.line(f"  would {event.message}", "yellow")
        if "after" in event.data or "before" in event.data:
            self._print_diff(event.data)

    def _print_diff(self, data: dict[str, Any]) -> None:
        text = diff_objects(data.get("before"), data.get("after"), ref_label=str(data.get("ref", "")))
        for row in text.splitlines():
            style = "green" if row.startswith("+") else "red" if row.startswith("-") else ""
            self.line("    " + row, style)

    def _check(self, event: Event) -> None:
        status = str(event.data.get("status", ""))
        self.line(f"{status.upper():>11}  {event.data.get('title', '')}: {event.message}",
                  _VERDICT_STYLE.get(status, ""))
        if event.data.get("hint") and status not in ("pass", "skip"):
            self.line(f"             hint: {event.data['hint']}", "dim")

    def _decision(self, event: Event) -> None:
        decision = str(event.data.get("decision", ""))
        style = {"continue": "green", "pause": "yellow", "rollback": "red"}.get(decision, "cyan")
        self.line(f"=> {decision}: {event.message}", style)

    def _drift(self, event: Event) -> None:
        accepted = " (accepted)" if event.data.get("accepted") else ""
        for item in event.data.get("drift", []):
            self.line(f"DRIFT{accepted}: {item}", "yellow")

    def _paused(self, event: Event) -> None:
        self.line("")
        self.line(f"PAUSED [{event.phase}]: {event.message}", "bold yellow")
        self.line(f"  resume with: runbook resume {event.run_id}", "yellow")

    def _rollback(self, event: Event) -> None:
        self.line("")
        self.line(header("ROLLBACK", event.phase), "bold red")

    def _rollback_change(self, event: Event) -> None:
        self.line(f"  {event.message}", "red")

    def _log(self, event: Event) -> None:
        self.line(f"  | {event.message}", "dim")  # an action's own report (e.g. Ansible's task events)

    # progress ---------------------------------------------------------------------------------
    def _batch(self, event: Event) -> None:
        self.line(f"BATCH {event.message}: {', '.join(event.data.get('items', []))}", "bold")
        self._bar(f"{event.phase} batches", int(event.data.get("done", 0)), int(event.data.get("total", 0)))

    def _progress(self, event: Event) -> None:
        self._bar(event.message, int(event.data.get("done", 0)), int(event.data.get("total", 0)))

    def _bar(self, what: str, done: int, total: int) -> None:
        if not self.console.is_terminal:
            return
        if self.progress is None:
            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), console=self.console, transient=True)
            self.progress.start()
        if what not in self.bars:
            self.bars[what] = self.progress.add_task(redact_text(what), total=total or None)
        self.progress.update(self.bars[what], completed=done, total=total or None)

    def _stop_bars(self, remove: bool = False) -> None:
        if self.progress is not None and (remove or self.bars):
            self.progress.stop()
            self.progress = None
            self.bars.clear()

    # recap ------------------------------------------------------------------------------------
    def recap(self, results: Sequence[RunResult]) -> None:
        self._stop_bars(remove=True)
        self.line("")
        self.line(header("RECAP", ", ".join(r.cluster for r in results)), "bold")
        for r in results:
            counts = " ".join(f"{s.value}={r.counts.get(s, 0)}" for s in TaskStatus)
            self.line(f"{r.cluster:<20} {counts}")
            style = {"completed": "green", "paused": "yellow", "rolled_back": "red", "failed": "red"}
            where = f" at phase {r.phase!r}" if r.phase else ""
            self.line(f"{'':<20} run {r.run_id}: {r.status.value}{where}", style.get(r.status.value, ""))
            if r.reason:
                self.line(f"{'':<20} {r.reason}", "dim")
