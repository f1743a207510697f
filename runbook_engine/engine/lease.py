"""The cluster lock: a ``coordination.k8s.io/v1`` Lease that keeps two runs off one cluster.

The Lease ``runbook-engine-lock`` (namespace configurable) names the run that holds it
(``holderIdentity`` = run id) and is renewed as the run progresses. Another run may take it only
once it has expired (``renewTime + leaseDurationSeconds`` in the past), so a crashed run's lock
does not block the cluster forever, and the crashed run itself may re-take its own lock.

The Lease also names the process driving the run (annotation ``runbook.dev/owner``,
``host:pid:start``). A run can be resumed from any machine (``team_store``), so the same run id on
two machines must not both hold the lock: while the Lease is live, the same run is refused to
another owner unless that owner is a dead process on this host.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field

from runbook_engine.engine.journal import owner_alive, owner_id
from runbook_engine.errors import RunStateError
from runbook_engine.kube.cluster import Cluster, Obj
from runbook_engine.kube.refs import ObjectRef

LEASE_NAME = "runbook-engine-lock"
OWNER_ANNOTATION = "runbook.dev/owner"
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _parse(value: object) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    for fmt in (_TIME_FORMAT, "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return dt.datetime.strptime(value, fmt).replace(tzinfo=dt.UTC)
        except ValueError:
            continue
    return None


@dataclass
class ClusterLock:
    """Acquire, renew and release the run lock on one cluster."""

    cluster: Cluster
    holder: str
    namespace: str = "default"
    duration_seconds: int = 300
    owner: str = field(default_factory=owner_id)  # the process driving the run (``host:pid:start``)
    renewed_at: dt.datetime | None = field(default=None, init=False)

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef("coordination.k8s.io/v1", "Lease", self.namespace, LEASE_NAME)

    def acquire(self) -> None:
        """Take the lock, or raise ``RunStateError`` naming the run that holds it."""
        lease = self.cluster.get(self.ref)
        if lease is not None:
            holder = str((lease.get("spec") or {}).get("holderIdentity") or "")
            if holder and holder != self.holder and not self._expired(lease):
                raise RunStateError(
                    f"cluster {self.cluster.name} is locked by run {holder}",
                    hint=f"wait for that run to finish or pause, or `runbook status {holder}`",
                )
            owner = str(((lease.get("metadata") or {}).get("annotations") or {}).get(OWNER_ANNOTATION) or "")
            if holder == self.holder and owner and owner != self.owner and not self._expired(lease) and _driving(owner):
                raise RunStateError(
                    f"run {holder} is being driven by {owner} on cluster {self.cluster.name}",
                    hint="wait for it to pause or finish (the lock is released then) or for its lock to expire",
                )
        self._write(acquired=True)

    def renew(self) -> None:
        self._write(acquired=False)

    def renew_if_due(self) -> None:
        """Renew once a third of the lease duration has passed (cheap to call on every progress tick)."""
        due = self.renewed_at is None or _now() - self.renewed_at > dt.timedelta(seconds=self.duration_seconds / 3)
        if due:
            self.renew()

    def release(self) -> None:
        lease = self.cluster.get(self.ref)
        if lease is not None and (lease.get("spec") or {}).get("holderIdentity") == self.holder:
            self.cluster.delete(self.ref)

    def _expired(self, lease: Obj) -> bool:
        spec = lease.get("spec") or {}
        renewed = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime"))
        if renewed is None:
            return True
        duration = int(spec.get("leaseDurationSeconds") or self.duration_seconds)
        return renewed + dt.timedelta(seconds=duration) < _now()

    def _write(self, *, acquired: bool) -> None:
        stamp = _now().strftime(_TIME_FORMAT)
        spec: Obj = {"holderIdentity": self.holder, "leaseDurationSeconds": self.duration_seconds,
                     "renewTime": stamp}
        if acquired:
            spec["acquireTime"] = stamp
        self.cluster.apply({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": LEASE_NAME, "namespace": self.namespace,
                         "annotations": {OWNER_ANNOTATION: self.owner}},
            "spec": spec,
        })
        self.renewed_at = _now()


def _driving(owner: str) -> bool:
    """Whether ``owner`` may still be driving its run: a live process here, or any process elsewhere."""
    if owner.partition(":")[0] == os.uname().nodename:
        return owner_alive(owner)
    return True  # another machine: its unexpired Lease is the only evidence, so it counts as alive
