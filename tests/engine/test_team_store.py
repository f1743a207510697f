"""The team store: a run paused on one machine is resumed, or rolled back, from another.

Machines are separate journal directories (and separate checkouts of playbook + inventory); the
cluster is a sandbox reached over HTTPS through its kubeconfig, as in production.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from runbook_engine.cli.main import main
from runbook_engine.engine.connect import Connector, fixed_connector
from runbook_engine.engine.events import Event, EventKind
from runbook_engine.engine.journal import ChangeState, RunStatus, RunStore, owner_id
from runbook_engine.engine.lease import OWNER_ANNOTATION, ClusterLock
from runbook_engine.engine.modules import catalog
from runbook_engine.engine.run_model import RunOptions
from runbook_engine.engine.runner import Engine
from runbook_engine.engine.team_store import (
    DEFAULT_NAMESPACE,
    INDEX_NAME,
    STORE_VAR,
    Replicator,
    StoreMode,
    TeamStore,
    ensure_local,
    secret_name,
    store_mode,
)
from runbook_engine.errors import ClusterError, RunStateError, UserInputError
from runbook_engine.kube.cluster import FIELD_MANAGER
from runbook_engine.kube.kube_cluster import KubeCluster
from runbook_engine.kube.memory import MemoryCluster
from runbook_engine.kube.refs import ObjectRef
from runbook_engine.sandbox.server import SandboxServer
from runbook_engine.spec.inventory import load_inventory
from runbook_engine.spec.loader import load_playbook

from .helpers import CASES, PLANTED_SECRET, Recorder, load, seed_objects, three_phase, user_state

CASE = CASES / "team_store"
PLANTED = (PLANTED_SECRET, base64.b64encode(PLANTED_SECRET.encode()).decode())
REFS = [
    ObjectRef("v1", "Namespace", "", "sre"),
    ObjectRef("v1", "ConfigMap", "sre", "settings"),
    ObjectRef("v1", "ConfigMap", "sre", "legacy"),
    ObjectRef("v1", "ConfigMap", "sre", "mesh-config"),
    ObjectRef("v1", "ConfigMap", "sre", "rollout-done"),
    ObjectRef("v1", "Secret", "sre", "db-creds"),
    ObjectRef("apps/v1", "Deployment", "sre", "api"),
]
GATE = '      pause_after: "verify the workloads, then resume"\n'


class Machine:
    """One operator's machine: its own checkout (playbook + inventory) and its own `.runbook`."""

    def __init__(self, root: Path, kubeconfig: Path, *, gate: bool = True) -> None:
        self.root = root
        self.state = root / ".runbook"
        self.playbook = root / "playbooks" / "rollout.yml"
        self.inventory = root / "inventory"
        self.playbook.parent.mkdir(parents=True)
        self.inventory.mkdir()
        text = (CASE / "rollout.yml").read_text()
        self.playbook.write_text(text if gate else text.replace(GATE, ""))
        self.inventory.joinpath("hosts.yml").write_text(
            f"all:\n  hosts:\n    lab:\n      kubeconfig: {kubeconfig}\n      app_namespace: sre\n")

    def cli(self, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
        code = main(["--state-dir", str(self.state), *args])
        out = capsys.readouterr()
        return code, out.out + out.err

    def engine(self, sink: Recorder | None = None) -> tuple[Engine, RunStore]:
        store = RunStore(self.state)
        replicator = Replicator(store, Connector(self.state), sink or Recorder())
        return Engine(store, connect=replicator.connect, sink=replicator), store


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SandboxServer]:
    with SandboxServer(tmp_path / "sandbox", scenario=CASE / "scenario.yaml") as running:
        yield running


def _cluster(server: SandboxServer) -> KubeCluster:
    return KubeCluster.from_kubeconfig(server.kubeconfig, None, "lab")


def _leaks(cluster: KubeCluster, text: str = "") -> list[str]:
    """Where a planted Secret value shows: the team store's non-Secret objects, the locks, or ``text``."""
    plain = [*cluster.list("v1", "ConfigMap", DEFAULT_NAMESPACE), *cluster.list("coordination.k8s.io/v1", "Lease"),
             cluster.get(ObjectRef("v1", "Namespace", "", DEFAULT_NAMESPACE))]
    places = {"non-Secret objects": json.dumps(plain), "console": text}
    return [where for where, body in places.items() for value in PLANTED if value in body]


def _payload(cluster: KubeCluster, run_id: str) -> str:
    head = cluster.get(ObjectRef("v1", "Secret", DEFAULT_NAMESPACE, secret_name(run_id))) or {}
    return gzip.decompress(base64.b64decode(head["data"]["journal.json.gz"])).decode()


def _change_keys(store: RunStore, run_id: str) -> list[tuple[str, str, str]]:
    return [(c.phase, c.change.kind.value, str(c.change.ref)) for c in store.changes(run_id, undo=False)]


# across machines, on the sandbox over HTTPS --------------------------------------------------------------
def test_a_run_paused_on_one_machine_is_listed_resumed_and_completed_on_another(
    tmp_path: Path, server: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = Machine(tmp_path / "a", server.kubeconfig), Machine(tmp_path / "b", server.kubeconfig)
    code, out_a = a.cli(capsys, "run", str(a.playbook), "-i", str(a.inventory), "--store", "cluster")
    assert code == 2, out_a
    [run_id] = [r.id for r in RunStore(a.state).list_runs()]

    code, listing = b.cli(capsys, "runs", "--cluster", "-i", str(b.inventory), "--json")
    assert code == 0, listing
    [entry] = json.loads(listing)
    assert (entry["run_id"], entry["status"], entry["current_phase"]) == (run_id, "paused", "workloads")
    assert "verify the workloads" in entry["paused_reason"]

    code, out_b = b.cli(capsys, "resume", run_id, "-i", str(b.inventory))
    assert code == 0, out_b
    store_b = RunStore(b.state)
    record = store_b.get_run(run_id)
    assert record.status is RunStatus.COMPLETED
    assert record.playbook == str(b.playbook.resolve())  # found in B's checkout, beside B's inventory
    assert stat.S_IMODE((b.state / "journal.key").stat().st_mode) == 0o600

    with SandboxServer(tmp_path / "reference", scenario=CASE / "scenario.yaml") as other:
        reference = Machine(tmp_path / "ref", other.kubeconfig, gate=False)
        code, out_ref = reference.cli(capsys, "run", str(reference.playbook), "-i", str(reference.inventory))
        assert code == 0, out_ref
        assert user_state(_cluster(server), REFS) == user_state(_cluster(other), REFS)
    [reference_id] = [r.id for r in RunStore(reference.state).list_runs()]

    keys = _change_keys(store_b, run_id)
    assert keys == _change_keys(RunStore(reference.state), reference_id)
    assert len(keys) == len(set(keys)) == 7  # each change once: A's two phases and B's last one
    assert {c.state for c in store_b.changes(run_id)} == {ChangeState.APPLIED}
    labelled = [e for e in store_b.events(run_id) if e["kind"] == EventKind.TASK_START.value]
    assert [e["task"] for e in labelled].count("label the app namespace for injection") == 1

    cluster = _cluster(server)
    index = cluster.get(ObjectRef("v1", "ConfigMap", DEFAULT_NAMESPACE, INDEX_NAME)) or {}
    assert json.loads(index["data"][run_id])["status"] == "completed"
    assert _leaks(cluster, out_a + listing + out_b) == []

    code, out = a.cli(capsys, "resume", run_id)  # A's copy is behind the replica: refreshed, not replayed
    assert code == 4 and "already completed" in out, out
    assert RunStore(a.state).get_run(run_id).status is RunStatus.COMPLETED
    assert all(value not in _payload(cluster, run_id) for value in PLANTED)  # sealed in the replica too


def test_another_machine_rolls_back_a_phase_exactly(
    tmp_path: Path, server: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = Machine(tmp_path / "a", server.kubeconfig), Machine(tmp_path / "b", server.kubeconfig)
    cluster = _cluster(server)
    before: dict[str, Any] = {}

    class Snapshot(Recorder):
        def __call__(self, event: Event) -> None:
            if event.kind is EventKind.PHASE_START and event.phase == "workloads":
                before.update(user_state(cluster, REFS))

    engine, store_a = a.engine(Snapshot())
    [result] = engine.run(load_playbook(a.playbook, catalog=catalog()), load_inventory(a.inventory),
                          RunOptions(store=StoreMode.CLUSTER))
    store_a.close()
    assert result.status is RunStatus.PAUSED and user_state(cluster, REFS) != before

    code, out_b = b.cli(capsys, "rollback", result.run_id, "--phase", "workloads", "-i", str(b.inventory))
    assert code == 3, out_b
    assert user_state(cluster, REFS) == before  # created deleted, updated restored (the Secret too), deleted back
    secret = cluster.get(REFS[5]) or {}
    assert secret["data"]["password"] == PLANTED[1]  # restored from a pre-image sealed on machine A
    assert (cluster.get(REFS[0]) or {})["metadata"]["labels"]["istio-injection"] == "enabled"  # phase 1 kept
    index = cluster.get(ObjectRef("v1", "ConfigMap", DEFAULT_NAMESPACE, INDEX_NAME)) or {}
    assert json.loads(index["data"][result.run_id])["status"] == "rolled_back"
    assert _leaks(cluster, out_b) == []


def test_a_resume_is_refused_while_the_first_machine_holds_the_runs_lease(
    tmp_path: Path, server: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = Machine(tmp_path / "a", server.kubeconfig), Machine(tmp_path / "b", server.kubeconfig)
    code, out = a.cli(capsys, "run", str(a.playbook), "-i", str(a.inventory), "--store", "cluster")
    assert code == 2, out
    [run_id] = [r.id for r in RunStore(a.state).list_runs()]
    cluster = _cluster(server)
    held_by_a = ClusterLock(cluster, run_id, owner="operator-a.example:4242:977")  # A resumes the same run
    held_by_a.acquire()

    for command in (("resume", run_id), ("rollback", run_id)):
        code, out = b.cli(capsys, *command, "-i", str(b.inventory))
        assert code == 4, out
        assert "being driven by operator-a.example" in out
    assert RunStore(b.state).get_run(run_id).status is RunStatus.PAUSED
    assert cluster.get(REFS[4]) is None  # nothing of the last phase was written

    held_by_a.release()
    cluster.patch(REFS[1], {"data": {"mode": "hand-edited"}}, field_manager="operator")
    code, out = b.cli(capsys, "resume", run_id, "-i", str(b.inventory))  # re-verified on B first
    assert code == 2 and "drifted since the pause" in out and "ConfigMap/sre/settings" in out, out
    code, out = b.cli(capsys, "resume", run_id, "-i", str(b.inventory), "--accept-drift")
    assert code == 0, out


# the replica itself, on an in-memory cluster -----------------------------------------------------------
def _paused_run(tmp_path: Path, cluster: MemoryCluster, **extra: str) -> tuple[RunStore, str]:
    store = RunStore(tmp_path / "a" / ".runbook")
    replicator = Replicator(store, fixed_connector({"lab": cluster}))
    engine = Engine(store, connect=replicator.connect, sink=replicator)
    playbook, inventory = load(three_phase(tmp_path, "pause"))
    [result] = engine.run(playbook, inventory, RunOptions(store=StoreMode.CLUSTER, extra_vars=extra))
    assert result.status is RunStatus.PAUSED
    return store, result.run_id


def test_a_large_journal_is_split_into_parts_and_read_back_whole(tmp_path: Path) -> None:
    cluster = MemoryCluster(seed_objects(), name="lab")
    store, run_id = _paused_run(tmp_path, cluster)
    TeamStore(cluster, part_bytes=512).publish(store, run_id)
    parts = cluster.list("v1", "Secret", DEFAULT_NAMESPACE, f"runbook.dev/run-id={run_id}")
    assert len(parts) > 2
    assert TeamStore(cluster).fetch(run_id[:12]).rows == json.loads(json.dumps(store.export_run(run_id)))

    TeamStore(cluster).publish(store, run_id)  # fits one Secret again: the old parts are removed
    assert [s["metadata"]["name"] for s in cluster.list("v1", "Secret", DEFAULT_NAMESPACE)] == [secret_name(run_id)]
    with pytest.raises(RunStateError, match="more than the team store holds") as refused:
        TeamStore(cluster, part_bytes=16).publish(store, run_id)
    assert refused.value.hint and "local journal still has the run" in refused.value.hint


def test_an_import_is_resealed_with_the_local_key_and_renumbered(tmp_path: Path) -> None:
    cluster = MemoryCluster(seed_objects(), name="lab")
    store_a, run_id = _paused_run(tmp_path, cluster, token=PLANTED_SECRET)
    Engine(store_a, connect=fixed_connector({"lab": cluster})).rollback(run_id, phase="workloads")
    TeamStore(cluster).publish(store_a, run_id)

    store_b = RunStore(tmp_path / "b" / ".runbook")  # machine B already has its own key and runs
    _, other = load(three_phase(tmp_path, "pause"))
    store_b.create_run(playbook="p.yml", playbook_hash="h", inventory=str(other.path), cluster="lab", options={})
    key_b = (tmp_path / "b" / ".runbook" / "journal.key").read_bytes()
    record = TeamStore(cluster).import_run(store_b, run_id, CASES / "inventory")

    assert (tmp_path / "b" / ".runbook" / "journal.key").read_bytes() == key_b
    assert record.options["extra_vars"] == {"token": PLANTED_SECRET}  # readable with B's key
    originals = {c.seq: str(c.change.ref) for c in store_b.changes(run_id, undo=False)}
    undos = store_b.changes(run_id, undo=True)
    assert undos and all(u.undo_of in originals and originals[u.undo_of] == str(u.change.ref) for u in undos)
    assert [c.change for c in store_b.changes(run_id)] == [c.change for c in store_a.changes(run_id)]


def test_a_local_copy_behind_the_replica_is_refreshed(tmp_path: Path) -> None:
    cluster = MemoryCluster(seed_objects(), name="lab")
    store_a, run_id = _paused_run(tmp_path, cluster)
    store_b = RunStore(tmp_path / "b" / ".runbook")
    team = TeamStore(cluster)
    ensure_local(store_b, run_id, team, CASES / "inventory")
    Engine(store_a, connect=fixed_connector({"lab": cluster})).rollback(run_id)  # A continues the run
    team.publish(store_a, run_id)

    assert store_b.get_run(run_id).status is RunStatus.PAUSED
    assert ensure_local(store_b, run_id, team, CASES / "inventory").status is RunStatus.ROLLED_BACK


class _NoSecrets(MemoryCluster):
    """A cluster whose RBAC forbids writing Secrets in the team store's namespace."""

    def apply(self, obj: Mapping[str, Any], *, field_manager: str = FIELD_MANAGER, dry_run: bool = False,
              force: bool = True) -> dict[str, Any]:
        if obj.get("kind") == "Secret" and obj["metadata"].get("namespace") == DEFAULT_NAMESPACE:
            raise ClusterError("secrets is forbidden: cannot create resource in runbook-system")
        return super().apply(obj, field_manager=field_manager, dry_run=dry_run, force=force)


def test_a_replica_that_cannot_be_written_warns_and_the_run_goes_on(tmp_path: Path) -> None:
    cluster = _NoSecrets(seed_objects(), name="lab")
    recorder = Recorder()
    store = RunStore(tmp_path / ".runbook")
    replicator = Replicator(store, fixed_connector({"lab": cluster}), recorder)
    playbook, inventory = load(three_phase(tmp_path, "pause"))
    [result] = Engine(store, connect=replicator.connect, sink=replicator).run(
        playbook, inventory, RunOptions(store=StoreMode.CLUSTER))
    assert result.status is RunStatus.PAUSED
    warnings = [e.message for e in recorder.events if e.kind is EventKind.LOG]
    assert warnings and all("was not replicated" in w and "forbidden" in w for w in warnings)


def test_the_inventory_var_selects_the_team_store_and_store_local_overrides_it(tmp_path: Path) -> None:
    playbook, inventory = load(three_phase(tmp_path, "pause"))
    spec = inventory.clusters["lab"]
    teamed = spec.model_copy(update={"vars": {**spec.vars, STORE_VAR: "cluster"}})
    team_inventory = inventory.model_copy(update={"clusters": {"lab": teamed}})
    namespace = ObjectRef("v1", "Namespace", "", DEFAULT_NAMESPACE)
    for store_dir, options, replicated in (("var", RunOptions(), True),
                                           ("local", RunOptions(store=StoreMode.LOCAL), False)):
        cluster = MemoryCluster(seed_objects(), name="lab")
        store = RunStore(tmp_path / store_dir)
        replicator = Replicator(store, fixed_connector({"lab": cluster}))
        Engine(store, connect=replicator.connect, sink=replicator).run(playbook, team_inventory, options)
        assert (cluster.get(namespace) is not None) is replicated, store_dir

    wrong = spec.model_copy(update={"vars": {STORE_VAR: "etcd"}})
    with pytest.raises(UserInputError, match="runbook_store of cluster lab is 'etcd'"):
        store_mode(wrong, None)
    assert store_mode(wrong, "local") is StoreMode.LOCAL


def test_the_same_run_is_refused_to_another_live_owner_only(tmp_path: Path) -> None:
    cluster = MemoryCluster(seed_objects(), name="lab")
    elsewhere = ClusterLock(cluster, "run-1", owner="elsewhere.example:1:1")
    elsewhere.acquire()
    with pytest.raises(RunStateError, match=r"being driven by elsewhere\.example"):
        ClusterLock(cluster, "run-1").acquire()
    elsewhere.release()
    ClusterLock(cluster, "run-1", owner=f"{os.uname().nodename}:999999999:1").acquire()  # then crashed here
    mine = ClusterLock(cluster, "run-1")
    mine.acquire()  # a dead process on this host does not keep its run
    lease = cluster.get(mine.ref) or {}
    assert lease["metadata"]["annotations"][OWNER_ANNOTATION] == mine.owner == owner_id()
