"""The journal's durability settings and sealing, and the Lease that keeps two runs off one cluster."""

from __future__ import annotations

import datetime as dt
import sqlite3
import stat
from pathlib import Path

import pytest

from runbook_engine.engine.connect import fixed_connector
from runbook_engine.engine.events import Event, EventKind
from runbook_engine.engine.journal import ChangeOrigin, ChangeState, RunStatus, RunStore
from runbook_engine.engine.lease import LEASE_NAME, ClusterLock
from runbook_engine.engine.run_model import RunOptions
from runbook_engine.engine.runner import Engine
from runbook_engine.errors import RunStateError
from runbook_engine.kube.change import Change, ChangeKind
from runbook_engine.kube.memory import MemoryCluster
from runbook_engine.kube.refs import ObjectRef

from .helpers import PLANTED_SECRET, load, seed_objects, three_phase

LEASE = ObjectRef("coordination.k8s.io/v1", "Lease", "default", LEASE_NAME)
SECRET = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "sre"},
          "stringData": {"token": PLANTED_SECRET}}


def _lease(holder: str, renewed: dt.datetime) -> dict[str, object]:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": LEASE_NAME, "namespace": "default"},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 60,
                     "renewTime": renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}}


def test_journal_is_private_wal_and_fully_synchronous(tmp_path: Path) -> None:
    store = RunStore(tmp_path / ".runbook")
    db = tmp_path / ".runbook" / "runs.db"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / ".runbook" / "journal.key").stat().st_mode) == 0o600
    assert store.pragma("journal_mode") == "wal"
    assert store.pragma("synchronous") == 2  # FULL
    store.close()


def test_secret_pre_images_are_sealed_on_disk_and_exact_when_read(tmp_path: Path) -> None:
    store = RunStore(tmp_path / ".runbook")
    run = store.create_run(playbook="p.yml", playbook_hash="h", inventory="inv", cluster="lab",
                           options={"extra_vars": {"token": PLANTED_SECRET}})
    change = Change(ChangeKind.DELETE, ObjectRef.of(SECRET), before=SECRET)
    [seq] = store.plan_changes(run.id, ChangeOrigin(0, "p", 0, "0/0/0", "t"), [change])
    store.add_event(Event(EventKind.CHANGE, "deleted", run.id, data={"before": SECRET}))
    store.close()

    raw = sqlite3.connect(tmp_path / ".runbook" / "runs.db")
    dumped = "\n".join(raw.iterdump())
    raw.close()
    assert PLANTED_SECRET not in dumped

    reopened = RunStore(tmp_path / ".runbook")
    [record] = reopened.changes(run.id)
    assert (record.seq, record.state, record.change.before) == (seq, ChangeState.PLANNED, SECRET)
    assert reopened.get_run(run.id).options["extra_vars"] == {"token": PLANTED_SECRET}
    assert PLANTED_SECRET not in str(reopened.events(run.id))
    reopened.close()


def test_a_live_lock_of_another_run_refuses_a_second_run(engine: Engine, cluster: MemoryCluster,
                                                         store: RunStore, tmp_path: Path) -> None:
    cluster.apply(_lease("other-run", dt.datetime.now(dt.UTC)), field_manager="other")
    writes = cluster.writes
    playbook, inventory = load(three_phase(tmp_path, "pause"))
    with pytest.raises(RunStateError, match="locked by run other-run"):
        engine.run(playbook, inventory, RunOptions())
    assert cluster.writes == writes
    [record] = store.list_runs()
    assert record.status is RunStatus.FAILED and "other-run" in record.paused_reason


def test_an_expired_lock_is_taken_over_and_released_at_the_end(
    store: RunStore, cluster: MemoryCluster, tmp_path: Path
) -> None:
    cluster.apply(_lease("crashed-run", dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)), field_manager="other")
    holders: list[str] = []

    def sink(event: Event) -> None:
        if event.kind is EventKind.TASK_START:
            holders.append(str(((cluster.get(LEASE) or {}).get("spec") or {}).get("holderIdentity")))

    engine = Engine(store, connect=fixed_connector({"lab": cluster}), sink=sink)
    playbook, inventory = load(three_phase(tmp_path, "pause"))
    [result] = engine.run(playbook, inventory, RunOptions())
    assert set(holders) == {result.run_id}
    assert cluster.get(LEASE) is None  # released when the run paused


def test_lock_renewal_keeps_the_holder(tmp_path: Path) -> None:
    cluster = MemoryCluster(seed_objects())
    lock = ClusterLock(cluster, "run-1")
    lock.acquire()
    lock.renew()
    assert (cluster.get(LEASE) or {})["spec"]["holderIdentity"] == "run-1"
    with pytest.raises(RunStateError):
        ClusterLock(cluster, "run-2").acquire()
    lock.release()
    ClusterLock(cluster, "run-2").acquire()


def test_a_refused_resume_leaves_the_paused_run_paused(engine: Engine, cluster: MemoryCluster, store: RunStore,
                                                      tmp_path: Path) -> None:
    playbook, inventory = load(three_phase(tmp_path, "pause"))
    [result] = engine.run(playbook, inventory, RunOptions())
    assert result.status is RunStatus.PAUSED
    cluster.apply(_lease("other-run", dt.datetime.now(dt.UTC)), field_manager="other")
    with pytest.raises(RunStateError, match="locked by run other-run"):
        engine.resume(result.run_id)
    assert store.get_run(result.run_id).status is RunStatus.PAUSED
