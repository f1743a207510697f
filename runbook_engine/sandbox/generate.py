"""Synthetic platforms for the sandbox: many namespaces of Deployments, StatefulSets, Services,
ServiceAccounts and the traffic flows between them, generated deterministically from a seed.

Used to rehearse on something platform-sized when no copy of a real platform is at hand, and to
benchmark the sandbox. The output is an ordinary scenario (see ``sandbox.scenario``), written as
JSON — a subset of YAML, so any YAML tool reads it — with one node, manifest, flow or fault per line:
a platform of thousands of objects then loads in a fraction of the time YAML parsing would take.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runbook_engine.errors import UserInputError
from runbook_engine.files import write_atomic

Obj = dict[str, Any]

_TEAMS = ("payments", "checkout", "search", "identity", "catalog", "billing", "shipping", "ledger", "growth",
          "notify", "reports", "pricing", "media", "support", "risk", "ads", "partners", "inventory")
_ROLES = ("api", "web", "gateway", "worker", "scheduler", "indexer", "frontend", "sync", "importer", "auth")


@dataclass(frozen=True)
class _Store:
    """A kind of datastore: image, port name and port; they speak server-first protocols."""

    name: str
    image: str
    port_name: str
    port: int


_DATASTORES = (
    _Store("postgres", "postgres:16.4", "postgres", 5432),
    _Store("redis", "redis:7.4.1-alpine", "redis", 6379),
    _Store("kafka", "redpandadata/redpanda:v24.2.7", "kafka", 9092),
    _Store("mysql", "mysql:8.4.2", "mysql", 3306),
)
_DATASTORE_SHARE = 0.15
_DEFAULT_SA_SHARE = 0.3
_PODS_PER_NODE = 80


@dataclass(frozen=True)
class _Workload:
    namespace: str
    name: str
    datastore: _Store | None
    port: int

    @property
    def protocol(self) -> str:
        return "server-first" if self.datastore else "http"


def generate_scenario(namespaces: int, workloads: int, flows: int, seed: int) -> dict[str, Any]:
    """A scenario with ``workloads`` spread over ``namespaces`` and up to ``flows`` distinct flows."""
    if namespaces < 1 or workloads < 0 or flows < 0:
        raise UserInputError("a generated platform needs at least one namespace and no negative counts",
                             hint="e.g. --namespaces 20 --workloads 500 --flows 1000")
    rng = random.Random(seed)
    spaces = [_namespace_name(i) for i in range(namespaces)]
    members = [_workload(rng, spaces[i % namespaces], i) for i in range(workloads)]
    manifests: list[Obj] = [_namespace(ns) for ns in spaces]
    replicas_total = 0
    for w in members:
        replicas = rng.choices((1, 2, 3), weights=(6, 3, 1))[0]
        replicas_total += replicas
        own_account = rng.random() >= _DEFAULT_SA_SHARE
        manifests += _objects(w, replicas, own_account)
    nodes = max(3, math.ceil(replicas_total / _PODS_PER_NODE))
    return {
        "name": f"generated-{namespaces}ns-{workloads}w-seed{seed}",
        "description": f"synthetic platform: {namespaces} namespaces, {workloads} workloads (seed {seed})",
        "nodes": [_node(i) for i in range(nodes)],
        "manifests": manifests,
        "flows": _flows(rng, members, flows),
    }


def write_scenario(scenario: dict[str, Any], path: Path) -> None:
    """Write a scenario as JSON (valid YAML), atomically (a temporary file renamed into place)."""
    path = Path(path)
    text = scenario_text(scenario)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text)


def scenario_text(scenario: dict[str, Any]) -> str:
    """The scenario as JSON: top-level keys one per line, each list item on a line of its own."""
    fields = []
    for key, value in scenario.items():
        if isinstance(value, list) and value:
            items = ",\n  ".join(json.dumps(item, separators=(", ", ": ")) for item in value)
            fields.append(f"{json.dumps(key)}: [\n  {items}\n]")
        else:
            fields.append(f"{json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(fields) + "\n}\n"


# -- pieces ------------------------------------------------------------------------------------------
def _workload(rng: random.Random, namespace: str, index: int) -> _Workload:
    if rng.random() < _DATASTORE_SHARE:
        store = rng.choice(_DATASTORES)
        return _Workload(namespace, f"{store.name}-{index}", store, store.port)
    return _Workload(namespace, f"{rng.choice(_TEAMS)}-{rng.choice(_ROLES)}-{index}", None, 8080)


def _namespace_name(index: int) -> str:
    team, round_ = _TEAMS[index % len(_TEAMS)], index // len(_TEAMS)
    return f"{team}-{round_ + 1}" if round_ else team


def _node(index: int) -> Obj:
    zone = "abc"[index % 3]
    return {"name": f"node-{index + 1:03d}", "labels": {"topology.kubernetes.io/zone": f"zone-{zone}",
                                                        "node.kubernetes.io/instance-type": "standard-8"}}


def _namespace(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"team": name}}}


def _objects(w: _Workload, replicas: int, own_account: bool) -> list[Obj]:
    labels = {"app": w.name, "app.kubernetes.io/name": w.name, "app.kubernetes.io/part-of": w.namespace}
    account = w.name if own_account else "default"
    out: list[Obj] = []
    if own_account:
        out.append({"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": w.name, "namespace": w.namespace, "labels": labels}})
    pod_spec = {"serviceAccountName": account, "containers": [_container(w)]}
    spec: Obj = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": w.name}},
        "template": {"metadata": {"labels": labels}, "spec": pod_spec},
    }
    if w.datastore:
        spec["serviceName"] = w.name
    port_name = _port_name(w)
    out.append({"apiVersion": "apps/v1", "kind": "StatefulSet" if w.datastore else "Deployment",
                "metadata": {"name": w.name, "namespace": w.namespace, "labels": labels}, "spec": spec})
    out.append({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": w.name, "namespace": w.namespace, "labels": labels},
                "spec": {"selector": {"app": w.name},
                         "ports": [{"name": port_name, "port": w.port, "targetPort": port_name, "protocol": "TCP"}]}})
    return out


def _port_name(w: _Workload) -> str:
    return w.datastore.port_name if w.datastore else "http"


def _container(w: _Workload) -> Obj:
    port_name = _port_name(w)
    return {
        "name": w.datastore.name if w.datastore else "app",
        "image": w.datastore.image if w.datastore else f"registry.example.com/{w.namespace}/{w.name}:1.0.0",
        "ports": [{"name": port_name, "containerPort": w.port, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "readinessProbe": (
            {"tcpSocket": {"port": port_name}} if w.datastore else {"httpGet": {"path": "/healthz", "port": port_name}}
        ),
    }


def _flows(rng: random.Random, members: list[_Workload], count: int) -> list[Obj]:
    """Distinct caller → service edges; apps call apps and datastores, mostly within their namespace."""
    callers = [w for w in members if w.datastore is None]
    if not callers or len(members) < 2:
        return []
    by_namespace: dict[str, list[_Workload]] = {}
    for w in members:
        by_namespace.setdefault(w.namespace, []).append(w)
    seen: set[tuple[str, str]] = set()
    out: list[Obj] = []
    for _ in range(count * 4):
        if len(out) >= count:
            break
        src = rng.choice(callers)
        pool = by_namespace[src.namespace] if rng.random() < 0.7 else members
        dst = rng.choice(pool)
        edge = (f"{src.namespace}/{src.name}", f"{dst.namespace}/{dst.name}:{dst.port}")
        if dst is src or edge in seen:
            continue
        seen.add(edge)
        out.append({"from": edge[0], "to": edge[1], "protocol": dst.protocol})
    return out
