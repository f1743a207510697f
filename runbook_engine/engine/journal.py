"""The run journal: a durable SQLite record of every run, written so a crash loses nothing.

One database (``.runbook/runs.db`` by default, mode 0600, WAL, ``synchronous=FULL``) holds runs,
their events, changes with pre-images, task results, variables, verdicts and baselines. Each step
is one transaction, and a change is recorded as ``planned`` (with its pre-image) *before* the
engine writes it and marked ``applied`` after, so ``kill -9`` at any instant leaves a journal from
which ``resume`` can tell exactly what was done.

Secret data: events and verdicts are masked before they reach the journal; pre-images, results and
variables that hold Secrets, and the ``-e`` extra vars, are sealed (encrypted) by ``secrets.Sealer``
— see that module for why.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from runbook_engine.engine.events import Event, TaskStatus
from runbook_engine.engine.secrets import Sealer, mask_secrets
from runbook_engine.errors import RunStateError
from runbook_engine.kube.change import Change, ChangeKind
from runbook_engine.kube.refs import ObjectRef
from runbook_engine.report.verdict import Verdict


class RunStatus(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    COMPLETED = "completed"


class ChangeState(StrEnum):
    PLANNED = "planned"  # journaled with its pre-image; the write may or may not have happened
    APPLIED = "applied"
    REVERTED = "reverted"  # undone by a rollback


class Stage(StrEnum):
    """Where in a phase a run stands, so resume knows what to do first."""

    BEFORE = "before"  # the phase has not started (pause_before gate, or not reached yet)
    TASKS = "tasks"  # inside the phase's tasks (a gate, a failed task, or a crash)
    CHECKPOINT = "checkpoint"  # tasks done; the checkpoint paused the run
    AFTER = "after"  # checkpoint passed; pause_after gate
    DONE = "done"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY, playbook TEXT NOT NULL, playbook_hash TEXT NOT NULL, inventory TEXT NOT NULL,
  cluster TEXT NOT NULL, status TEXT NOT NULL, phase_index INTEGER NOT NULL DEFAULT 0,
  current_phase TEXT NOT NULL DEFAULT '', stage TEXT NOT NULL DEFAULT 'before',
  paused_reason TEXT NOT NULL DEFAULT '', options TEXT NOT NULL DEFAULT '{}',
  fingerprint TEXT NOT NULL DEFAULT '{}', owner TEXT NOT NULL DEFAULT '',
  created TEXT NOT NULL, updated TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
  run_id TEXT NOT NULL, seq INTEGER PRIMARY KEY AUTOINCREMENT, ts TEXT NOT NULL, kind TEXT NOT NULL,
  phase TEXT NOT NULL, task TEXT NOT NULL, message TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS changes (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, phase_index INTEGER NOT NULL,
  phase TEXT NOT NULL, batch INTEGER NOT NULL, task_key TEXT NOT NULL, task TEXT NOT NULL,
  kind TEXT NOT NULL, api_version TEXT NOT NULL, obj_kind TEXT NOT NULL, namespace TEXT NOT NULL,
  name TEXT NOT NULL, before TEXT, after TEXT, reason TEXT NOT NULL, meta TEXT NOT NULL,
  state TEXT NOT NULL, undo_of INTEGER, ts TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS task_results (
  run_id TEXT NOT NULL, task_key TEXT NOT NULL, status TEXT NOT NULL, result TEXT NOT NULL,
  facts TEXT NOT NULL, ts TEXT NOT NULL, PRIMARY KEY (run_id, task_key));
CREATE TABLE IF NOT EXISTS task_plans (
  run_id TEXT NOT NULL, task_key TEXT NOT NULL, note TEXT NOT NULL, PRIMARY KEY (run_id, task_key));
CREATE TABLE IF NOT EXISTS run_vars (
  run_id TEXT NOT NULL, slot TEXT NOT NULL, vars TEXT NOT NULL, ts TEXT NOT NULL, PRIMARY KEY (run_id, slot));
CREATE TABLE IF NOT EXISTS verdicts (
  run_id TEXT NOT NULL, phase_index INTEGER NOT NULL, seq INTEGER NOT NULL, verdict TEXT NOT NULL,
  ts TEXT NOT NULL, PRIMARY KEY (run_id, phase_index, seq));
CREATE TABLE IF NOT EXISTS baselines (run_id TEXT PRIMARY KEY, baseline TEXT NOT NULL);
"""

_RUN_TABLES = ("runs", "events", "changes", "task_results", "task_plans", "run_vars", "verdicts", "baselines")
#: Columns written through ``RunStore._dump`` (may hold sealed Secret data); the rest are plain JSON/text.
_SEALED_COLUMNS: dict[str, tuple[str, ...]] = {
    "runs": ("options", "fingerprint"), "changes": ("before", "after", "meta"),
    "task_results": ("result", "facts"), "task_plans": ("note",), "run_vars": ("vars",),
}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class RunRecord:
    """A run's row: identity, status and the phase pointer resume starts from."""

    id: str
    playbook: str
    playbook_hash: str
    inventory: str
    cluster: str
    status: RunStatus
    phase_index: int
    current_phase: str
    stage: Stage
    paused_reason: str
    options: dict[str, Any]
    fingerprint: dict[str, Any]
    owner: str
    created: str
    updated: str

    def to_dict(self) -> dict[str, Any]:
        """The scriptable view (``runbook status --json``)."""
        return {
            "run_id": self.id, "status": self.status.value, "current_phase": self.current_phase,
            "paused_reason": self.paused_reason, "cluster": self.cluster, "playbook": self.playbook,
            "inventory": self.inventory, "stage": self.stage.value, "created": self.created,
            "updated": self.updated,
        }


@dataclass(frozen=True)
class ChangeRecord:
    """A journaled change: where it came from, its images and whether it was applied."""

    seq: int
    run_id: str
    phase_index: int
    phase: str
    batch: int
    task_key: str
    task: str
    change: Change
    state: ChangeState
    undo_of: int | None = None


@dataclass(frozen=True)
class TaskRecord:
    """A task that finished (in any status), so a resumed phase can replay its effect, not redo it."""

    task_key: str
    status: TaskStatus
    result: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChangeOrigin:
    """Where a batch of journaled changes comes from."""

    phase_index: int
    phase: str
    batch: int
    task_key: str
    task: str


class RunStore:
    """The SQLite journal. ``RunStore(Path(".runbook"))``, or ``RunStore.in_memory()`` for dry runs."""

    def __init__(self, directory: Path | None) -> None:
        if directory is None:
            self._db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            self._sealer = Sealer.ephemeral()
        else:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = directory / "runs.db"
            if not path.exists():
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._sealer = Sealer.for_directory(directory)
        self._db.row_factory = sqlite3.Row
        self._db.executescript(_SCHEMA)
        self.directory = directory

    @classmethod
    def in_memory(cls) -> RunStore:
        return cls(None)

    def close(self) -> None:
        self._db.close()

    def pragma(self, name: str) -> Any:
        """A SQLite setting of the open journal (``journal_mode``, ``synchronous``…)."""
        return self._db.execute(f"PRAGMA {name}").fetchone()[0]

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _dump(self, value: Any) -> str:
        return json.dumps(self._sealer.seal(value), sort_keys=True, default=str)

    def _load(self, text: str | None) -> Any:
        return None if text is None else self._sealer.unseal(json.loads(text))

    # runs -----------------------------------------------------------------------------------
    def create_run(
        self, *, playbook: str, playbook_hash: str, inventory: str, cluster: str, options: Mapping[str, Any]
    ) -> RunRecord:
        run_id = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        now = _now()
        with self._tx() as db:
            db.execute(
                "INSERT INTO runs (id, playbook, playbook_hash, inventory, cluster, status, options, owner,"
                " created, updated) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (run_id, playbook, playbook_hash, inventory, cluster, RunStatus.RUNNING.value,
                 self._dump(self._sealed_options(options)), owner_id(), now, now),
            )
        return self.get_run(run_id)

    def _sealed_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """Run options with the extra vars sealed whole: ``-e`` is how tokens reach a playbook."""
        out = dict(options)
        if out.get("extra_vars"):
            out["extra_vars"] = self._sealer.seal_whole(out["extra_vars"])
        return out

    def get_run(self, run_id: str) -> RunRecord:
        row = self._db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            rows = self._db.execute("SELECT * FROM runs WHERE id LIKE ?", (run_id + "%",)).fetchall()
            if len(rows) != 1:
                raise RunStateError(f"no run {run_id!r}", hint="list runs with `runbook runs`")
            row = rows[0]
        return self._run(row)

    def list_runs(self) -> list[RunRecord]:
        rows = self._db.execute("SELECT * FROM runs ORDER BY created DESC").fetchall()
        return [self._run(r) for r in rows]

    def _run(self, row: sqlite3.Row) -> RunRecord:
        return RunRecord(
            id=row["id"], playbook=row["playbook"], playbook_hash=row["playbook_hash"],
            inventory=row["inventory"], cluster=row["cluster"], status=RunStatus(row["status"]),
            phase_index=row["phase_index"], current_phase=row["current_phase"], stage=Stage(row["stage"]),
            paused_reason=row["paused_reason"], options=self._load(row["options"]),
            fingerprint=self._load(row["fingerprint"]), owner=row["owner"], created=row["created"],
            updated=row["updated"],
        )

    def set_position(self, run_id: str, phase_index: int, phase: str, stage: Stage) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE runs SET phase_index=?, current_phase=?, stage=?, updated=? WHERE id=?",
                (phase_index, phase, stage.value, _now(), run_id),
            )

    def set_status(
        self, run_id: str, status: RunStatus, *, reason: str = "", fingerprint: Mapping[str, Any] | None = None
    ) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE runs SET status=?, paused_reason=?, updated=?, owner=? WHERE id=?",
                (status.value, reason, _now(), owner_id(), run_id),
            )
            if fingerprint is not None:
                db.execute("UPDATE runs SET fingerprint=? WHERE id=?", (self._dump(dict(fingerprint)), run_id))

    # events ---------------------------------------------------------------------------------
    def add_event(self, event: Event) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO events (run_id, ts, kind, phase, task, message, data) VALUES (?,?,?,?,?,?,?)",
                (event.run_id, _now(), event.kind.value, event.phase, event.task, event.message,
                 json.dumps(mask_secrets(event.data), sort_keys=True, default=str)),
            )

    def events(self, run_id: str) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT * FROM events WHERE run_id=? ORDER BY seq", (run_id,)).fetchall()
        return [{**dict(r), "data": json.loads(r["data"])} for r in rows]

    # changes --------------------------------------------------------------------------------
    def plan_changes(
        self, run_id: str, origin: ChangeOrigin, changes: Sequence[Change], *, undo_of: Sequence[int] = (),
        note: Mapping[str, Any] | None = None,
    ) -> list[int]:
        """Journal ``changes`` as planned, with their pre-images, in one transaction; returns their seqs.

        ``note`` keeps what the task's plan said besides its changes (facts, result, message), so a
        task interrupted after this point is finished from the journal instead of planned again.
        """
        seqs: list[int] = []
        now = _now()
        with self._tx() as db:
            if note is not None:
                db.execute("INSERT OR REPLACE INTO task_plans (run_id, task_key, note) VALUES (?,?,?)",
                           (run_id, origin.task_key, self._dump(dict(note))))
            for i, ch in enumerate(changes):
                cur = db.execute(
                    "INSERT INTO changes (run_id, phase_index, phase, batch, task_key, task, kind, api_version,"
                    " obj_kind, namespace, name, before, after, reason, meta, state, undo_of, ts)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (run_id, origin.phase_index, origin.phase, origin.batch, origin.task_key, origin.task,
                     ch.kind.value, ch.ref.api_version, ch.ref.kind, ch.ref.namespace, ch.ref.name,
                     self._dump(ch.before) if ch.before is not None else None,
                     self._dump(ch.after) if ch.after is not None else None, ch.reason, self._dump(ch.meta),
                     ChangeState.PLANNED.value, undo_of[i] if undo_of else None, now),
                )
                seqs.append(int(cur.lastrowid or 0))
        return seqs

    def plan_note(self, run_id: str, task_key: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT note FROM task_plans WHERE run_id=? AND task_key=?",
                               (run_id, task_key)).fetchone()
        return dict(self._load(row["note"])) if row else None

    def mark(self, seqs: Sequence[int], state: ChangeState) -> None:
        with self._tx() as db:
            db.executemany("UPDATE changes SET state=?, ts=? WHERE seq=?", [(state.value, _now(), s) for s in seqs])

    def changes(
        self, run_id: str, *, phase_index: int | None = None, task_key: str | None = None,
        undo: bool | None = None,
    ) -> list[ChangeRecord]:
        """The run's journaled changes in order, optionally of one phase/task, originals or undos only."""
        sql, args = "SELECT * FROM changes WHERE run_id=?", list[Any]([run_id])
        if phase_index is not None:
            sql, args = sql + " AND phase_index=?", [*args, phase_index]
        if task_key is not None:
            sql, args = sql + " AND task_key=?", [*args, task_key]
        if undo is not None:
            sql += " AND undo_of IS NOT NULL" if undo else " AND undo_of IS NULL"
        rows = self._db.execute(sql + " ORDER BY seq", args).fetchall()
        return [self._change(r) for r in rows]

    def _change(self, row: sqlite3.Row) -> ChangeRecord:
        ref = ObjectRef(row["api_version"], row["obj_kind"], row["namespace"], row["name"])
        change = Change(
            ChangeKind(row["kind"]), ref, before=self._load(row["before"]), after=self._load(row["after"]),
            reason=row["reason"], meta=self._load(row["meta"]) or {},
        )
        return ChangeRecord(
            seq=row["seq"], run_id=row["run_id"], phase_index=row["phase_index"], phase=row["phase"],
            batch=row["batch"], task_key=row["task_key"], task=row["task"], change=change,
            state=ChangeState(row["state"]), undo_of=row["undo_of"],
        )

    # tasks and variables --------------------------------------------------------------------
    def record_task(self, run_id: str, record: TaskRecord) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO task_results (run_id, task_key, status, result, facts, ts)"
                " VALUES (?,?,?,?,?,?)",
                (run_id, record.task_key, record.status.value, self._dump(record.result),
                 self._dump(record.facts), _now()),
            )

    def task_records(self, run_id: str) -> dict[str, TaskRecord]:
        rows = self._db.execute("SELECT * FROM task_results WHERE run_id=?", (run_id,)).fetchall()
        return {
            r["task_key"]: TaskRecord(r["task_key"], TaskStatus(r["status"]), self._load(r["result"]),
                                      self._load(r["facts"]))
            for r in rows
        }

    def forget_tasks(self, run_id: str, prefix: str) -> None:
        """Drop task results under ``prefix`` (a phase re-run from its start must run its tasks again)."""
        with self._tx() as db:
            for table in ("task_results", "task_plans"):
                db.execute(f"DELETE FROM {table} WHERE run_id=? AND task_key LIKE ?", (run_id, prefix + "%"))

    def save_vars(self, run_id: str, slot: str, variables: Mapping[str, Any]) -> None:
        """Keep the run's facts and registered results at a point (``"<phase>:start"``, ``"<phase>:end"``)."""
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO run_vars (run_id, slot, vars, ts) VALUES (?,?,?,?)",
                (run_id, slot, self._dump(dict(variables)), _now()),
            )

    def load_vars(self, run_id: str, slot: str) -> dict[str, Any] | None:
        """The facts saved at ``slot``, or None when the run never reached that point."""
        row = self._db.execute("SELECT vars FROM run_vars WHERE run_id=? AND slot=?", (run_id, slot)).fetchone()
        return dict(self._load(row["vars"])) if row else None

    # verdicts and baseline ------------------------------------------------------------------
    def save_verdicts(self, run_id: str, phase_index: int, verdicts: Sequence[Verdict]) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM verdicts WHERE run_id=? AND phase_index=?", (run_id, phase_index))
            db.executemany(
                "INSERT INTO verdicts (run_id, phase_index, seq, verdict, ts) VALUES (?,?,?,?,?)",
                [(run_id, phase_index, i, json.dumps(mask_secrets(v.to_dict()), default=str), _now())
                 for i, v in enumerate(verdicts)],
            )

    def verdicts(self, run_id: str, phase_index: int | None = None) -> list[Verdict]:
        sql, args = "SELECT verdict FROM verdicts WHERE run_id=?", list[Any]([run_id])
        if phase_index is not None:
            sql, args = sql + " AND phase_index=?", [*args, phase_index]
        rows = self._db.execute(sql + " ORDER BY phase_index, seq", args).fetchall()
        return [Verdict.from_dict(json.loads(r["verdict"])) for r in rows]

    def save_baseline(self, run_id: str, baseline: Mapping[str, Any]) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO baselines (run_id, baseline) VALUES (?,?)",
                       (run_id, json.dumps(dict(baseline), default=str)))

    def baseline(self, run_id: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT baseline FROM baselines WHERE run_id=?", (run_id,)).fetchone()
        return dict(json.loads(row["baseline"])) if row else None

    # replication (engine.team_store) --------------------------------------------------------
    def sealing_key(self) -> bytes:
        """The key sealing this journal's Secret data (a replica carries it so another machine can read it)."""
        return self._sealer.key

    def export_run(self, run_id: str) -> dict[str, list[dict[str, Any]]]:
        """Every row of one run, table by table, exactly as stored: sealed values stay sealed."""
        record = self.get_run(run_id)
        rows: dict[str, list[dict[str, Any]]] = {}
        with self._tx() as db:  # one snapshot across the tables
            for table in _RUN_TABLES:
                key = "id" if table == "runs" else "run_id"
                rows[table] = [dict(r) for r in db.execute(f"SELECT * FROM {table} WHERE {key}=?", (record.id,))]
        return rows

    def import_run(self, rows: Mapping[str, Sequence[Mapping[str, Any]]], source: Sealer) -> RunRecord:
        """Replace this journal's copy of a run with ``rows`` from another journal's ``export_run``.

        Values ``source`` sealed are re-sealed with this journal's key; events and changes get new
        sequence numbers here, in their original order, with undo links renumbered to match.
        """
        runs = list(rows.get("runs") or ())
        if len(runs) != 1:
            raise RunStateError("a run's exported journal must hold exactly one run row")
        run_id = str(runs[0]["id"])
        with self._tx() as db:
            for table in _RUN_TABLES:
                db.execute(f"DELETE FROM {table} WHERE {'id' if table == 'runs' else 'run_id'}=?", (run_id,))
            renumbered: dict[int, int] = {}
            for table in _RUN_TABLES:
                ordered = sorted(rows.get(table) or (), key=lambda r: int(r.get("seq") or 0))
                for row in ordered:
                    values = self._imported_row(table, row, source, run_id)
                    if table == "changes":
                        values["undo_of"] = renumbered.get(int(row["undo_of"])) if row.get("undo_of") else None
                    cur = self._insert(db, table, values)
                    if table == "changes":
                        renumbered[int(row["seq"])] = int(cur.lastrowid or 0)
        return self.get_run(run_id)

    def _imported_row(self, table: str, row: Mapping[str, Any], source: Sealer, run_id: str) -> dict[str, Any]:
        columns = {r["name"] for r in self._db.execute(f"PRAGMA table_info({table})")}
        unknown = set(row) - columns
        if unknown:
            raise RunStateError(f"the exported journal has unknown {table} columns: {', '.join(sorted(unknown))}",
                                hint="import it with the runbook version that exported it")
        values = {k: v for k, v in row.items() if not (k == "seq" and table in ("events", "changes"))}
        if values.get("id" if table == "runs" else "run_id") != run_id:
            raise RunStateError(f"the exported journal of run {run_id} holds rows of another run")
        for column in _SEALED_COLUMNS.get(table, ()):
            if values.get(column) is not None:
                sealed = json.loads(values[column])
                values[column] = json.dumps(self._sealer.reseal(sealed, source), sort_keys=True, default=str)
        return values

    @staticmethod
    def _insert(db: sqlite3.Connection, table: str, values: Mapping[str, Any]) -> sqlite3.Cursor:
        names = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        return db.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", tuple(values.values()))


def _started(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot, from /proc), "" where /proc is absent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rpartition(")")[2].split()[19]


def owner_id() -> str:
    """``host:pid:start`` of this process: who is driving a run right now (start guards PID reuse)."""
    return f"{os.uname().nodename}:{os.getpid()}:{_started(os.getpid())}"


def owner_alive(owner: str) -> bool:
    """True when ``owner`` is another live process on this host (a run it drives must not be taken over)."""
    host, _, rest = owner.partition(":")
    pid_text, _, started = rest.partition(":")
    if host != os.uname().nodename or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not started or _started(pid) == started
