"""Small helpers the sandbox's controllers share: keys, owner references, names, hashes, conditions.

Everything here mirrors what the real kube-controller-manager does with the same data: owner
references with ``controller: true``, the ``pod-template-hash`` (an FNV-32a of the pod template,
encoded with the API machinery's "safe" alphabet), five-character random name suffixes, conditions
that keep their ``lastTransitionTime`` while their status does not change.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from runbook_engine.sandbox.store import Key, Obj, Store, now_rfc3339

#: The alphabet Kubernetes uses for generated names and hashes: no vowels, no look-alikes.
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

POD = ("v1", "Pod")
SERVICE = ("v1", "Service")
NODE = ("v1", "Node")
NAMESPACE = ("v1", "Namespace")
ENDPOINTS = ("v1", "Endpoints")
SERVICE_ACCOUNT = ("v1", "ServiceAccount")
DEPLOYMENT = ("apps/v1", "Deployment")
REPLICA_SET = ("apps/v1", "ReplicaSet")
STATEFUL_SET = ("apps/v1", "StatefulSet")
DAEMON_SET = ("apps/v1", "DaemonSet")
JOB = ("batch/v1", "Job")

TEMPLATE_HASH_LABEL = "pod-template-hash"
REVISION_HASH_LABEL = "controller-revision-hash"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"


class PodPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


TERMINAL_PHASES = frozenset({PodPhase.SUCCEEDED.value, PodPhase.FAILED.value})


@dataclass(frozen=True)
class Wake:
    """When a controller wants to look at an object again, and whether the object is still settling.

    ``transitional`` wake-ups (a pod about to start, a first restart) keep ``settle()`` waiting;
    steady ones (periodic probes, crash-loop back-off) do not.
    """

    after: float
    transitional: bool = False


def key_of(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return (str(obj.get("apiVersion")), str(obj.get("kind")), str(meta.get("namespace") or ""), str(meta["name"]))


def meta_of(obj: Obj) -> dict[str, Any]:
    meta: dict[str, Any] = obj.setdefault("metadata", {})
    return meta


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in ((obj.get("metadata") or {}).get("labels") or {}).items()}


def uid_of(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("uid", ""))


def owner_reference(owner: Mapping[str, Any]) -> dict[str, Any]:
    """The ``ownerReferences`` entry a controller puts on what it creates."""
    meta = owner.get("metadata") or {}
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def controller_uid(obj: Mapping[str, Any]) -> str | None:
    """The uid of the object's managing controller (the owner reference with ``controller: true``)."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def controller_ref(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def random_suffix(rng: random.Random, length: int = 5) -> str:
    return "".join(rng.choice(SAFE_ALPHABET) for _ in range(length))


def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for byte in data:
        h ^= byte
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    """Map each character onto the safe alphabet, as apimachinery's ``rand.SafeEncodeString`` does."""
    return "".join(SAFE_ALPHABET[ord(ch) % len(SAFE_ALPHABET)] for ch in text)


def template_hash(template: Mapping[str, Any], collision_count: int = 0) -> str:
    """The ``pod-template-hash`` of a pod template: stable for equal templates, new for any change."""
    canonical = json.dumps(template, sort_keys=True, separators=(",", ":"))
    if collision_count:
        canonical += str(collision_count)
    return safe_encode(str(fnv32a(canonical.encode())))


def scaled_value(value: int | str | None, total: int, *, round_up: bool, default: str) -> int:
    """Resolve an int-or-percent field such as ``maxSurge`` against ``total``."""
    raw = default if value is None else value
    if isinstance(raw, int):
        return raw
    text = str(raw).strip()
    if text.endswith("%"):
        exact = int(text[:-1]) * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(text)


def condition(
    kind: str, status: bool, reason: str, message: str, previous: list[dict[str, Any]] | None
) -> dict[str, Any]:
    """A status condition; keeps the previous ``lastTransitionTime`` when the status is unchanged."""
    value = "True" if status else "False"
    stamp = now_rfc3339()
    old = next((c for c in previous or [] if c.get("type") == kind), None)
    transition = old.get("lastTransitionTime", stamp) if old and old.get("status") == value else stamp
    out = {"type": kind, "status": value, "lastTransitionTime": transition, "reason": reason, "message": message}
    if old and old.get("status") == value and old.get("reason") == reason and "lastUpdateTime" in old:
        out["lastUpdateTime"] = old["lastUpdateTime"]
    return out


def pod_ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def pod_active(pod: Mapping[str, Any]) -> bool:
    """Counted by its controller: not finished and not being deleted."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in TERMINAL_PHASES and not (pod.get("metadata") or {}).get("deletionTimestamp")


def pod_phase(pod: Mapping[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase") or PodPhase.PENDING.value)


def write_status(store: Store, obj: Obj, status: dict[str, Any]) -> bool:
    """Store a new ``status`` unless it is unchanged; conflicts surface to the caller for a retry."""
    if obj.get("status") == status:
        return False
    obj["status"] = status
    store.update(obj, expect_rv=str(meta_of(obj).get("resourceVersion", "")) or None, copy_result=False)
    return True


def annotate(obj: Obj, key: str, value: str) -> bool:
    """Set an annotation; says whether it changed."""
    annotations: dict[str, Any] = meta_of(obj).setdefault("annotations", {})
    if annotations.get(key) == value:
        return False
    annotations[key] = value
    return True


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector during a bulk load or settle.

    Loading or settling a large platform allocates millions of short-lived, acyclic dicts (reference
    counting frees them); each full collection would walk every live object, which makes bulk work
    grow quadratically with platform size. The previous state is restored on exit.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
