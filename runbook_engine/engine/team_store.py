"""The team store: a replica of each run in its cluster, so another machine can resume or roll it back.

The local SQLite journal (``journal.RunStore``) stays the write-ahead log: every change is journaled
there before it is written, and that is what makes ``kill -9`` safe. The cluster holds a *replica*:
at every boundary another machine cares about — run start, the end of each phase, a pause, a
failure, a rollback and completion — the run's journal rows are exported, gzip-compressed and
written to the cluster the run drives. Another machine imports the replica into its own journal
and continues exactly as a local ``resume`` or ``rollback`` would, behind the same Lease
(``lease.ClusterLock``, which also names the process driving a run, so one run id cannot be driven
from two machines at once) and after the same drift re-verification.

What is written, in the namespace ``runbook-system`` (inventory var ``runbook_store_namespace``),
created when absent:

* **One Secret per run**, ``runbook-run-<run_id>``, labelled ``app.kubernetes.io/managed-by=
  runbook-engine``, ``runbook.dev/run-id`` and ``runbook.dev/status``. ``journal.json.gz`` holds
  the exported rows (gzip; a Secret's data is base64 on the wire) and ``journal.key`` the key that
  sealed the Secret pre-images and ``-e`` vars inside them. The key must travel with the rows, or
  the other machine cannot restore a Secret on rollback; so the replica is a Secret, not a
  ConfigMap. The trade-off: whoever may read Secrets in that namespace can unseal the pre-images,
  exactly as whoever may read ``.runbook/`` can locally. RBAC on the namespace is the access
  control: grant ``get/list/create/update/delete`` on its Secrets only to the operators who may
  run, resume and roll back. The payload holds only what the local journal holds: Secret data
  sealed, events and verdicts masked.
* A run larger than one object allows (1 MiB in etcd) is split: the first Secret holds part 0 and
  the number of parts, ``runbook-run-<run_id>-part-<n>`` the rest, and a SHA-256 over the whole
  payload catches a torn read. A run beyond ``MAX_PARTS`` parts is refused with a hint.
* **A ConfigMap index**, ``runbook-runs``: run id → status, phase, paused reason (masked), updated,
  so ``runbook runs --cluster`` lists runs without the right to read Secrets.

Selection: ``runbook run --store cluster`` (kept in the run's options, so a resumed run keeps
replicating), else the cluster's inventory var ``runbook_store: cluster``; the default is
``local``. ``Replicator`` is the hook: a connector wrapper plus an ``EventSink`` that replicates on
the events the engine emits *after* journaling a boundary; a replica that cannot be written is
reported as a warning and never stops the run (the local journal has everything; the next
boundary writes the whole run again).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from runbook_engine.engine.events import Event, EventKind
from runbook_engine.engine.journal import RunRecord, RunStatus, RunStore, owner_alive
from runbook_engine.engine.secrets import Sealer
from runbook_engine.engine.taps import ConnectionTap
from runbook_engine.errors import RunbookError, RunStateError, UserInputError
from runbook_engine.kube.cluster import Cluster, Obj, PatchType
from runbook_engine.kube.redact import redact_text
from runbook_engine.kube.refs import ObjectRef
from runbook_engine.spec.hosts import match_hosts
from runbook_engine.spec.inventory import load_inventory
from runbook_engine.spec.model import ClusterSpec, InventorySpec

STORE_VAR = "runbook_store"
NAMESPACE_VAR = "runbook_store_namespace"
DEFAULT_NAMESPACE = "runbook-system"
INDEX_NAME = "runbook-runs"
MANAGED_BY = {"app.kubernetes.io/managed-by": "runbook-engine"}
RUN_LABEL, STATUS_LABEL = "runbook.dev/run-id", "runbook.dev/status"
PARTS_ANNOTATION, DIGEST_ANNOTATION = "runbook.dev/parts", "runbook.dev/sha256"
EVENTS_ANNOTATION, FORMAT_ANNOTATION = "runbook.dev/events", "runbook.dev/format"
PAYLOAD_KEY, KEY_KEY = "journal.json.gz", "journal.key"
FORMAT = "1"
#: Compressed bytes per Secret: base64 makes 640 KiB about 853 KiB, under the 1 MiB object limit.
PART_BYTES = 640 * 1024
MAX_PARTS = 16
_REASON_CHARS = 300
#: Events the engine emits right after journaling a boundary another machine may continue from.
_DURABLE = frozenset({EventKind.RUN_START, EventKind.PHASE_END, EventKind.PAUSED, EventKind.RUN_END})

ClusterConnector = Callable[[ClusterSpec], AbstractContextManager[Cluster]]


class StoreMode(StrEnum):
    """Where a run is kept: the local journal only, or the local journal plus a replica in the cluster."""

    LOCAL = "local"
    CLUSTER = "cluster"


def store_mode(spec: ClusterSpec, option: str | None) -> StoreMode:
    """The store of a run on ``spec``: ``--store`` when given, else the ``runbook_store`` var, else local."""
    value = option or spec.vars.get(STORE_VAR) or StoreMode.LOCAL.value
    try:
        return StoreMode(str(value))
    except ValueError:
        raise UserInputError(f"{STORE_VAR} of cluster {spec.name} is {value!r}", spec.location,
                             hint="use `local` or `cluster`") from None


def check_store_settings(inventory: InventorySpec, clusters: Sequence[str], option: str | None) -> None:
    """Validate the store of every cluster a run will use before anything starts."""
    for name in clusters:
        store_mode(inventory.clusters[name], option)


def team_namespace(spec: ClusterSpec) -> str:
    return str(spec.vars.get(NAMESPACE_VAR) or DEFAULT_NAMESPACE)


def secret_name(run_id: str, part: int = 0) -> str:
    return f"runbook-run-{run_id}" if part == 0 else f"runbook-run-{run_id}-part-{part}"


@dataclass(frozen=True)
class ReplicaSummary:
    """One run as the cluster's index lists it (no Secret read needed)."""

    run_id: str
    status: str
    phase: str
    paused_reason: str
    updated: str
    cluster: str
    playbook: str

    def to_dict(self) -> dict[str, str]:
        return {"run_id": self.run_id, "status": self.status, "current_phase": self.phase,
                "paused_reason": self.paused_reason, "updated": self.updated, "cluster": self.cluster,
                "playbook": self.playbook}


@dataclass(frozen=True)
class Replica:
    """A run fetched from the cluster: its journal rows (sealed as exported) and the key that sealed them."""

    run_id: str
    rows: dict[str, list[dict[str, Any]]]
    key: bytes


class TeamStore:
    """The replicas kept in one cluster: publish a run, list the index, fetch or import a run."""

    def __init__(self, cluster: Cluster, namespace: str = DEFAULT_NAMESPACE, *, part_bytes: int = PART_BYTES) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.part_bytes = part_bytes

    @classmethod
    def for_spec(cls, cluster: Cluster, spec: ClusterSpec) -> TeamStore:
        return cls(cluster, team_namespace(spec))

    def _ref(self, kind: str, name: str) -> ObjectRef:
        return ObjectRef("v1", kind, self.namespace, name)

    # publishing -------------------------------------------------------------------------------
    def publish(self, store: RunStore, run_id: str) -> None:
        """Write the run's whole journal to the cluster (parts first, then the head, then the index)."""
        record = store.get_run(run_id)
        rows = store.export_run(record.id)
        payload = gzip.compress(json.dumps(rows, sort_keys=True, default=str).encode(), mtime=0)
        parts = [payload[i:i + self.part_bytes] for i in range(0, len(payload), self.part_bytes)] or [b""]
        if len(parts) > MAX_PARTS:
            raise RunStateError(
                f"run {record.id}'s journal is {len(payload) // 1024} KiB compressed, more than the team store "
                f"holds ({MAX_PARTS} Secrets of {self.part_bytes // 1024} KiB)",
                hint="the local journal still has the run; resume it on this machine, or split the playbook "
                     "into smaller runs (long `until` loops with many events make a journal large)")
        self._ensure_namespace()
        previous = self._parts_of(self.cluster.get(self._ref("Secret", secret_name(record.id))))
        for number, chunk in enumerate(parts[1:], start=1):
            self.cluster.apply(self._secret(record, number, {PAYLOAD_KEY: chunk}, {}))
        head = {PAYLOAD_KEY: parts[0], KEY_KEY: store.sealing_key()}
        notes = {PARTS_ANNOTATION: str(len(parts)), DIGEST_ANNOTATION: hashlib.sha256(payload).hexdigest(),
                 EVENTS_ANNOTATION: str(len(rows.get("events", ()))), FORMAT_ANNOTATION: FORMAT}
        self.cluster.apply(self._secret(record, 0, head, notes))
        for stale in range(len(parts), previous):
            self.cluster.delete(self._ref("Secret", secret_name(record.id, stale)))
        self._index(record)

    def _secret(self, record: RunRecord, part: int, data: Mapping[str, bytes], notes: Mapping[str, str]) -> Obj:
        labels = {**MANAGED_BY, RUN_LABEL: record.id, STATUS_LABEL: record.status.value}
        if part:
            labels["runbook.dev/part"] = str(part)
        return {
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": secret_name(record.id, part), "namespace": self.namespace, "labels": labels,
                         "annotations": dict(notes)},
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
        }

    def _ensure_namespace(self) -> None:
        ref = ObjectRef("v1", "Namespace", "", self.namespace)
        if self.cluster.get(ref) is None:
            self.cluster.apply({"apiVersion": "v1", "kind": "Namespace",
                                "metadata": {"name": self.namespace, "labels": dict(MANAGED_BY)}})

    def _index(self, record: RunRecord) -> None:
        ref = self._ref("ConfigMap", INDEX_NAME)
        if self.cluster.get(ref) is None:
            self.cluster.apply({"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": INDEX_NAME, "namespace": self.namespace,
                                             "labels": dict(MANAGED_BY)}})
        entry = {"status": record.status.value, "phase": record.current_phase,
                 "paused_reason": redact_text(record.paused_reason)[:_REASON_CHARS], "updated": record.updated,
                 "cluster": record.cluster, "playbook": Path(record.playbook).name}
        self.cluster.patch(ref, {"data": {record.id: json.dumps(entry, sort_keys=True)}}, patch_type=PatchType.MERGE)

    # reading ----------------------------------------------------------------------------------
    def runs(self) -> list[ReplicaSummary]:
        """The runs in the index, most recently updated first."""
        index = self.cluster.get(self._ref("ConfigMap", INDEX_NAME)) or {}
        out: list[ReplicaSummary] = []
        for run_id, text in (index.get("data") or {}).items():
            entry = json.loads(text)
            out.append(ReplicaSummary(run_id, str(entry.get("status", "")), str(entry.get("phase", "")),
                                      str(entry.get("paused_reason", "")), str(entry.get("updated", "")),
                                      str(entry.get("cluster", "")), str(entry.get("playbook", ""))))
        return sorted(out, key=lambda s: s.updated, reverse=True)

    def resolve(self, run_id: str) -> str:
        """The full id of the replicated run ``run_id`` names (a unique prefix is enough)."""
        if self.cluster.get(self._ref("Secret", secret_name(run_id))) is not None:
            return run_id
        matches = [s.run_id for s in self.runs() if s.run_id.startswith(run_id)]
        if len(matches) == 1:
            return matches[0]
        raise RunStateError(f"no run {run_id!r} in the team store of cluster {self.cluster.name}"
                            f" (namespace {self.namespace})",
                            hint="list them with `runbook runs --cluster -i INVENTORY`; a run is replicated "
                                 "only when it was started with --store cluster or `runbook_store: cluster`")

    def events_replicated(self, run_id: str) -> int:
        """How many journal events the replica of ``run_id`` holds (-1 when there is no replica)."""
        head = self.cluster.get(self._ref("Secret", secret_name(run_id)))
        if head is None:
            return -1
        return int(((head.get("metadata") or {}).get("annotations") or {}).get(EVENTS_ANNOTATION) or 0)

    def fetch(self, run_id: str) -> Replica:
        """The replica of ``run_id``: all parts read and checked against the digest."""
        full = self.resolve(run_id)
        head = self.cluster.get(self._ref("Secret", secret_name(full))) or {}
        notes = (head.get("metadata") or {}).get("annotations") or {}
        if notes.get(FORMAT_ANNOTATION) != FORMAT:
            raise RunStateError(f"the replica of run {full} has format {notes.get(FORMAT_ANNOTATION)!r}",
                                hint=f"import it with the runbook version that wrote it (this one reads {FORMAT})")
        chunks = [_data(head, PAYLOAD_KEY)]
        for number in range(1, self._parts_of(head)):
            part = self.cluster.get(self._ref("Secret", secret_name(full, number)))
            if part is None:
                raise RunStateError(f"part {number} of run {full}'s replica is missing", hint=_RETRY)
            chunks.append(_data(part, PAYLOAD_KEY))
        payload = b"".join(chunks)
        if hashlib.sha256(payload).hexdigest() != notes.get(DIGEST_ANNOTATION):
            raise RunStateError(f"run {full}'s replica does not match its digest", hint=_RETRY)
        rows = json.loads(gzip.decompress(payload))
        return Replica(full, rows, _data(head, KEY_KEY))

    def import_run(self, store: RunStore, run_id: str, inventory: Path) -> RunRecord:
        """Copy the replica of ``run_id`` into ``store`` (re-sealed with its key), paths relocated to ``inventory``."""
        replica = self.fetch(run_id)
        rows = dict(replica.rows)
        rows["runs"] = [relocate(run, inventory) for run in rows.get("runs", ())]
        return store.import_run(rows, Sealer(replica.key))

    @staticmethod
    def _parts_of(head: Obj | None) -> int:
        if head is None:
            return 0
        return int(((head.get("metadata") or {}).get("annotations") or {}).get(PARTS_ANNOTATION) or 1)


_RETRY = "the run may be replicating right now: try again in a moment"


def _data(secret: Obj, key: str) -> bytes:
    value = (secret.get("data") or {}).get(key)
    if value is None:
        raise RunStateError(f"Secret {secret.get('metadata', {}).get('name')} has no {key}", hint=_RETRY)
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise RunStateError(f"Secret {secret.get('metadata', {}).get('name')} has invalid {key}") from exc


def relocate(run: Mapping[str, Any], inventory: Path) -> dict[str, Any]:
    """The run row with its inventory set to this machine's and its playbook found relative to it.

    The playbook is looked for where it stood relative to the inventory on the machine that started
    the run (the same repository checked out elsewhere), then at its original path.
    """
    out = dict(run)
    old_inventory, old_playbook = Path(str(run["inventory"])), Path(str(run["playbook"]))
    new_inventory = inventory.resolve()
    moved = Path(os.path.normpath(new_inventory / os.path.relpath(old_playbook, old_inventory)))
    out["inventory"] = str(new_inventory)
    out["playbook"] = str(moved if moved.exists() or not old_playbook.exists() else old_playbook)
    return out


# choosing the cluster and bringing a run home -------------------------------------------------------
def pick_cluster(inventory: InventorySpec, limit: str | None) -> ClusterSpec:
    """The one cluster of the inventory (narrowed by ``--limit``) whose team store is read."""
    names = match_hosts(limit, inventory) if limit else tuple(inventory.clusters)
    if len(names) != 1:
        found = ", ".join(names) or "none"
        raise UserInputError(f"the team store is read from one cluster; {inventory.path} gives {found}",
                             hint="name the cluster with --limit CLUSTER")
    return inventory.clusters[names[0]]


def local_run(store: RunStore, run_id: str) -> RunRecord | None:
    try:
        return store.get_run(run_id)
    except RunStateError:
        return None


def ensure_local(store: RunStore, run_id: str, cluster: TeamStore, inventory: Path) -> RunRecord:
    """The run in the local journal, imported from the cluster when absent or behind the replica.

    A local copy is replaced only when the replica holds more events (another machine continued the
    run since) and no live process here is driving it.
    """
    local = local_run(store, run_id)
    if local is not None:
        busy = local.status is RunStatus.RUNNING and owner_alive(local.owner)
        if busy or cluster.events_replicated(local.id) <= len(store.events(local.id)):
            return local
    return cluster.import_run(store, run_id, inventory)


def bring_home(store: RunStore, run_id: str, inventory: Path | None, limit: str | None,
               connect: ClusterConnector) -> str:
    """The local id of ``run_id`` for ``resume``/``rollback``, current with its replica in the cluster.

    A run not in the local journal is fetched from the cluster of ``inventory``. A local run that
    uses the team store is compared with its replica first (through its own inventory unless one
    is given), so a machine never continues from a copy another machine has moved past.
    """
    local = local_run(store, run_id)
    if inventory is None:
        if local is None:
            raise RunStateError(f"no run {run_id!r} in the local journal",
                                hint="a run kept in its cluster (--store cluster) is fetched with -i INVENTORY "
                                     "[--limit CLUSTER]; list local runs with `runbook runs`")
        inventory = Path(local.inventory)
    spec = pick_cluster(load_inventory(inventory), limit or (local.cluster if local else None))
    if local is not None and store_mode(spec, local.options.get("store")) is StoreMode.LOCAL:
        return local.id
    with connect(spec) as cluster:
        return ensure_local(store, run_id, TeamStore.for_spec(cluster, spec), inventory).id


def cluster_runs(inventory: Path, limit: str | None, connect: ClusterConnector) -> list[ReplicaSummary]:
    """The runs the team store of the inventory's cluster lists (``runbook runs --cluster``)."""
    spec = pick_cluster(load_inventory(inventory), limit)
    with connect(spec) as cluster:
        return TeamStore.for_spec(cluster, spec).runs()


# the engine hook ------------------------------------------------------------------------------------
class Replicator(ConnectionTap):
    """Keeps the cluster replica of every team-store run current: wrap the connector, use as the sink.

    ``Engine(store, connect=replicator.connect, sink=replicator)``. Events go on to ``sink``
    unchanged; after each durable boundary of a run whose store is ``cluster`` the run is published
    through the connection the engine holds (or a new one, for the end of a rollback).
    """

    def wants(self, event: Event) -> bool:
        return event.kind in _DURABLE

    def on_event(self, run_id: str, spec: ClusterSpec) -> None:
        self.sync(run_id, spec)

    def sync(self, run_id: str, spec: ClusterSpec) -> None:
        """Publish ``run_id`` if it uses the team store; a failure becomes a warning event."""
        try:
            if not self._replicated(run_id, spec):
                return
            with self.cluster_for(spec) as cluster:
                TeamStore.for_spec(cluster, spec).publish(self.store, run_id)
        except (RunbookError, OSError) as exc:  # the run goes on: its local journal is complete
            self._warn(run_id, spec, exc)

    def _replicated(self, run_id: str, spec: ClusterSpec) -> bool:
        options = self.store.get_run(run_id).options
        if options.get("check") or options.get("simulate"):
            return False
        return store_mode(spec, options.get("store")) is StoreMode.CLUSTER

    def _warn(self, run_id: str, spec: ClusterSpec, exc: RunbookError | OSError) -> None:
        message = (f"team store: run {run_id} was not replicated to {spec.name} ({exc}); the local journal has "
                   "it, and the next phase boundary replicates it again")
        self._sink(Event(EventKind.LOG, redact_text(message), run_id, spec.name, data={"level": "warning"}))
