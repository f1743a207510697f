"""Engine test helpers: a seeded platform, a stand-in check, the three-phase case, state comparison."""

from __future__ import annotations

import base64
import json
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from runbook_engine.checks.base import CHECKS, Check, CheckArgs, CheckContext, register
from runbook_engine.engine.events import Event
from runbook_engine.engine.modules import catalog
from runbook_engine.engine.objects import strip_server_fields
from runbook_engine.kube.cluster import FIELD_MANAGER, Cluster, PatchType, Propagation
from runbook_engine.kube.memory import MemoryCluster
from runbook_engine.kube.refs import ObjectRef
from runbook_engine.report.verdict import Evidence, Status, Verdict
from runbook_engine.spec.inventory import load_inventory
from runbook_engine.spec.loader import load_playbook
from runbook_engine.spec.model import InventorySpec, PlaybookSpec

CASES = Path(__file__).parent / "cases"
T = TypeVar("T")
PLANTED_SECRET = "s3cr3t-planted-value-7f1c"


class ConfigValueArgs(CheckArgs):
    namespace: str
    name: str
    key: str
    expect: str


class ConfigValue(Check[ConfigValueArgs]):
    """Passes when a ConfigMap holds an expected value (a stand-in for a health check)."""

    name = "config_value"
    Args = ConfigValueArgs

    def run(self, ctx: CheckContext, args: ConfigValueArgs) -> Verdict:
        obj = ctx.cluster.get(ObjectRef("v1", "ConfigMap", args.namespace, args.name)) or {}
        value = (obj.get("data") or {}).get(args.key)
        status = Status.PASS if value == args.expect else Status.FAIL
        command = f"kubectl -n {args.namespace} get configmap {args.name} -o jsonpath='{{.data.{args.key}}}'"
        return Verdict(self.name, ctx.title, status, f"{args.key}={value!r}, want {args.expect!r}",
                       evidence=(Evidence(command, str(value)),))


if "config_value" not in CHECKS:
    register(ConfigValue)


def seed_objects(*, healthy: bool = False) -> list[dict[str, Any]]:
    """The platform before any run: an app namespace with a deployment, configs and a Secret."""
    ns = "sre"
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"team": "sre"}}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": ns},
         "data": {"mode": "base"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "legacy", "namespace": ns},
         "data": {"old": "yes"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "health", "namespace": ns},
         "data": {"ready": "true" if healthy else "false"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-creds", "namespace": ns},
         "type": "Opaque", "data": {"password": base64.b64encode(PLANTED_SECRET.encode()).decode()}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": ns},
         "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "api"}},
                  "template": {"metadata": {"labels": {"app": "api"}},
                               "spec": {"containers": [{"name": "api", "image": "api:1"}]}}}},
    ]


def state_of(cluster: MemoryCluster) -> dict[str, dict[str, Any]]:
    """Every object a user manages, by ref, without server-managed fields (the run lock excluded)."""
    return {str(ObjectRef.of(o)): strip_server_fields(o) for o in cluster.objects() if o["kind"] != "Lease"}


def three_phase(tmp_path: Path, on_failure: str) -> Path:
    path = tmp_path / "playbook.yml"
    path.write_text((CASES / "three_phase.yml").read_text().replace("__ON_FAILURE__", on_failure))
    return path


def load(playbook: Path) -> tuple[PlaybookSpec, InventorySpec]:
    return load_playbook(playbook, catalog=catalog()), load_inventory(CASES / "inventory")


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)


class FileCluster(MemoryCluster):
    """A MemoryCluster persisted to a JSON file after every write, so it outlives a killed process.

    Every write call (not only effective ones) is appended to ``<file>.log``. ``KILL_BEFORE_WRITE=n``
    or ``KILL_AFTER_WRITE=n`` in the environment SIGKILLs the process right before or right after
    the n-th write of a non-Lease object: the instants a write-ahead journal must survive.
    """

    def __init__(self, path: Path, name: str = "lab") -> None:
        super().__init__(json.loads(path.read_text()), name=name)
        self.path = path
        self.calls = 0

    @classmethod
    def create(cls, path: Path, objects: list[dict[str, Any]]) -> FileCluster:
        path.write_text(json.dumps(objects))
        return cls(path)

    def apply(self, obj: Mapping[str, Any], *, field_manager: str = FIELD_MANAGER, dry_run: bool = False,
              force: bool = True) -> dict[str, Any]:
        ref = ObjectRef.of(obj)
        return self._write("apply", ref, dry_run, lambda: super(FileCluster, self).apply(
            obj, field_manager=field_manager, dry_run=dry_run, force=force))

    def patch(self, ref: ObjectRef, patch: Any, *, patch_type: PatchType = PatchType.MERGE, dry_run: bool = False,
              field_manager: str = FIELD_MANAGER) -> dict[str, Any]:
        return self._write("patch", ref, dry_run, lambda: super(FileCluster, self).patch(
            ref, patch, patch_type=patch_type, dry_run=dry_run, field_manager=field_manager))

    def delete(self, ref: ObjectRef, *, dry_run: bool = False,
               propagation: Propagation = Propagation.BACKGROUND) -> dict[str, Any] | None:
        return self._write("delete", ref, dry_run, lambda: super(FileCluster, self).delete(
            ref, dry_run=dry_run, propagation=propagation))

    def _write(self, op: str, ref: ObjectRef, dry_run: bool, call: Callable[[], T]) -> T:
        counted = not dry_run and ref.kind != "Lease"
        if counted:
            self.calls += 1
            self._maybe_die("KILL_BEFORE_WRITE")
        result = call()
        if not dry_run:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.objects()))
            os.replace(tmp, self.path)
            if counted:
                with open(self.path.with_suffix(".log"), "a") as log:
                    log.write(json.dumps({"op": op, "ref": str(ref)}) + "\n")
                self._maybe_die("KILL_AFTER_WRITE")
        return result

    def _maybe_die(self, variable: str) -> None:
        if os.environ.get(variable) == str(self.calls):
            os.kill(os.getpid(), signal.SIGKILL)


def write_log(path: Path) -> list[dict[str, str]]:
    log = path.with_suffix(".log")
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


#: Annotations controllers write on workloads: not part of what a user set.
CONTROLLER_ANNOTATIONS = ("deployment.kubernetes.io/revision",)


def user_state(cluster: Cluster, refs: Sequence[ObjectRef]) -> dict[str, Any]:
    """What a user set on ``refs`` on a live cluster (status and controller bookkeeping left out)."""
    state: dict[str, Any] = {}
    for ref in refs:
        obj = cluster.get(ref)
        if obj is not None:
            obj = strip_server_fields(obj)
            annotations = obj["metadata"].get("annotations") or {}
            for key in CONTROLLER_ANNOTATIONS:
                annotations.pop(key, None)
            if not annotations:
                obj["metadata"].pop("annotations", None)
        state[str(ref)] = obj
    return state
